"""Prometheus metrics with Triton's names, served on the metrics port."""
