"""Counters and latency accumulators of each model version, read by the statistics API and metrics."""
