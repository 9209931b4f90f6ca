"""Triton's DALI backend: a serialized DALI pipeline (``model.dali``) run as a model."""
