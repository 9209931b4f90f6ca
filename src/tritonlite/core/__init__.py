"""The protocol-independent core: types, errors, data types and request validation."""
