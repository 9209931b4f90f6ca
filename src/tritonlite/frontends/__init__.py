"""Frontends translate a wire protocol (HTTP, gRPC) to engine calls and engine errors to status codes."""
