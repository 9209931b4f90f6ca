"""Schedulers: decide which instance runs which requests, and when."""
