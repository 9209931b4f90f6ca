"""OpenAI-compatible routes (``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``, ``/v1/embeddings``).

Models follow the contract of Triton's OpenAI frontend (``text_input`` in, ``text_output`` out);
requests go through the engine like any other. See ``routes.py``.
"""
