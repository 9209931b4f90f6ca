"""The python backend: Triton ``model.py`` files run in-process, unmodified."""
