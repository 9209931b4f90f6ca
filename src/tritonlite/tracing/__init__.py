"""Triton's trace extension: sampled requests leave timestamped records in a JSON file."""
