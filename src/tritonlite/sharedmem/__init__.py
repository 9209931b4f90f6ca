"""Shared memory regions registered by clients: tensors that bypass HTTP and gRPC."""
