"""Triton-compatible protocol messages (package ``inference``).

Generated from ``proto/model_config.proto`` and ``proto/grpc_service.proto``
by ``scripts/generate_protocol.py``; do not edit the ``*_pb2*`` modules by
hand. The messages are wire- and text-format-compatible with Triton
Inference Server and tritonclient:

* :mod:`tritonlite.protocol.model_config_pb2` -- ``ModelConfig`` (config.pbtxt)
* :mod:`tritonlite.protocol.grpc_service_pb2` -- gRPC requests/responses
* :mod:`tritonlite.protocol.grpc_service_pb2_grpc` -- ``GRPCInferenceService``
  stub/servicer (imports :mod:`grpc`, so it is not imported here)

The descriptors are registered in a private descriptor pool,
:data:`DESCRIPTOR_POOL`, rather than protobuf's default pool: tritonclient
registers the same fully-qualified names in the default pool, and the two
would clash whenever their .proto contents differ. Use :data:`DESCRIPTOR_POOL`
wherever a pool is needed (e.g. to resolve ``inference.*`` names by string).
"""

from tritonlite.protocol import grpc_service_pb2, model_config_pb2

DESCRIPTOR_POOL = model_config_pb2.DESCRIPTOR.pool

__all__ = ["DESCRIPTOR_POOL", "grpc_service_pb2", "model_config_pb2"]
