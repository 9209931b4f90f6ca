"""``--grpc-restricted-protocol`` on the gRPC port: each RPC's group, and Triton's refusal.

As Triton 2.51: the metadata key a restricted group needs is ``triton-grpc-protocol-`` and the flag's
header; the first entry of that key decides and its value must match exactly; a call without it ends
UNAVAILABLE, "This protocol is restricted, expecting header 'triton-grpc-protocol-KEY'", before its
request is looked at (a stream before its first message is read). Only the handlers of restricted
groups are wrapped: the others pay nothing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from tritonlite.frontends import access
from tritonlite.frontends.access import Restriction, Restrictions
from tritonlite.frontends.grpc.transport.call import Call

HEADER_PREFIX = "triton-grpc-protocol-"

GROUP_BY_METHOD = {
    "ServerLive": access.HEALTH,
    "ServerReady": access.HEALTH,
    "ModelReady": access.HEALTH,
    "ServerMetadata": access.METADATA,
    "ModelMetadata": access.METADATA,
    "ModelInfer": access.INFERENCE,
    "ModelStreamInfer": access.INFERENCE,
    "ModelConfig": access.MODEL_CONFIG,
    "ModelStatistics": access.STATISTICS,
    "RepositoryIndex": access.MODEL_REPOSITORY,
    "RepositoryModelLoad": access.MODEL_REPOSITORY,
    "RepositoryModelUnload": access.MODEL_REPOSITORY,
    "SystemSharedMemoryStatus": access.SHARED_MEMORY,
    "SystemSharedMemoryRegister": access.SHARED_MEMORY,
    "SystemSharedMemoryUnregister": access.SHARED_MEMORY,
    "CudaSharedMemoryStatus": access.SHARED_MEMORY,
    "CudaSharedMemoryRegister": access.SHARED_MEMORY,
    "CudaSharedMemoryUnregister": access.SHARED_MEMORY,
    "TraceSetting": access.TRACE,
    "LogSettings": access.LOGGING,
}


def _allows(context: Call, key: str, value: str) -> bool:
    for name, given in context.invocation_metadata() or ():
        if name == key:
            return given == value
    return False


def restrict(rpc: Callable, method: str, restrictions: Restrictions) -> Callable:
    """The handler ``rpc`` of ``method``, refusing calls without its group's header when that group is
    restricted; ``rpc`` itself otherwise."""
    restriction: Restriction | None = restrictions.get(GROUP_BY_METHOD.get(method))
    if restriction is None:
        return rpc
    key = HEADER_PREFIX + restriction.header
    value = restriction.value
    message = f"This protocol is restricted, expecting header '{key}'"

    if inspect.isasyncgenfunction(rpc):

        @functools.wraps(rpc)
        async def streaming(requests: AsyncIterator[Any], context: Call) -> AsyncIterator[Any]:
            if not _allows(context, key, value):
                await context.abort(grpc.StatusCode.UNAVAILABLE, message)
            async for response in rpc(requests, context):
                yield response

        return streaming

    @functools.wraps(rpc)
    async def unary(request: Any, context: Call) -> Any:
        if not _allows(context, key, value):
            await context.abort(grpc.StatusCode.UNAVAILABLE, message)
        return await rpc(request, context)

    return unary
