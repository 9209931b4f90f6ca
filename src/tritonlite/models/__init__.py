"""Model lifecycle: load, serve, unload; states and readiness."""
