"""The gRPC frontend: GRPCInferenceService's handlers, errors as Triton's status codes, served by
``transport/`` (HTTP/2 on the server's event loop)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from tritonlite.core.errors import DecoupledModelError, ErrorKind, TritonError, invalid_arg
from tritonlite.core.types import InferRequest, InferResponse
from tritonlite.engine import Engine
from tritonlite.frontends.access import Restrictions
from tritonlite.frontends.grpc.channel_options import GrpcChannelOptions
from tritonlite.frontends.grpc.codec import decode_request, encode_response, encode_response_parts, split_infer_request
from tritonlite.frontends.grpc.head_cache import DecodedHead, HeadCache
from tritonlite.frontends.grpc.restricted import restrict
from tritonlite.frontends.grpc.transport.call import Abort, Call, Method
from tritonlite.frontends.grpc.transport.server import GrpcServer
from tritonlite.frontends.grpc.wire import join_response, join_serialized
from tritonlite.protocol import grpc_service_pb2 as pb
from tritonlite.protocol import grpc_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

Context = Call

CODE_BY_KIND = {
    ErrorKind.UNKNOWN: grpc.StatusCode.UNKNOWN,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.INVALID_ARG: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.UNSUPPORTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.CANCELLED: grpc.StatusCode.CANCELLED,
}

MAX_MESSAGE_BYTES = 2**31 - 1


# Triton's answer to ModelInfer on a decoupled model (its HTTP text differs)
DECOUPLED_MESSAGE = "ModelInfer RPC doesn't support models with decoupled transaction policy"

# Each log setting's SettingValue field and Triton's word for its type, in the order Triton checks them
LOG_SETTING_FIELDS = {
    "log_file": ("string_param", "string"),
    "log_info": ("bool_param", "boolean"),
    "log_warning": ("bool_param", "boolean"),
    "log_error": ("bool_param", "boolean"),
    "log_verbose_level": ("uint32_param", "int32"),
    "log_format": ("string_param", "string"),
}


def error_status(exc: Exception, rpc_name: str) -> tuple[grpc.StatusCode, str]:
    """The status code and message that end an RPC which raised ``exc``: Triton's for a core error;
    any other exception is a bug, logged and answered INTERNAL."""
    if isinstance(exc, TritonError):
        message = DECOUPLED_MESSAGE if isinstance(exc, DecoupledModelError) else exc.message
        # Triton's messages are C strings: one quoting a NUL (a shared-memory key) ends there
        return CODE_BY_KIND[exc.kind], message.split("\0", 1)[0]
    log.error("gRPC %s failed", rpc_name, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def answering_errors(rpc: Callable) -> Callable:
    """The RPC handler ``rpc`` (unary or streaming), ending the call with ``error_status`` when it raises,
    so that handlers are written for the happy path only."""
    if inspect.isasyncgenfunction(rpc):

        @functools.wraps(rpc)
        async def streaming(requests: AsyncIterator[Message], context: Context) -> AsyncIterator[Message]:
            try:
                async for response in rpc(requests, context):
                    yield response
            except Abort:
                raise
            except Exception as exc:
                await context.abort(*error_status(exc, rpc.__name__))

        return streaming

    @functools.wraps(rpc)
    async def unary(request: Any, context: Context) -> Any:
        try:
            return await rpc(request, context)
        except Abort:
            raise
        except Exception as exc:
            await context.abort(*error_status(exc, rpc.__name__))

    return unary


def parameter_value(parameter: Message) -> bool | int | str | bytes | None:
    """The value a parameter message holds in its ``parameter_choice`` oneof, None when unset."""
    field = parameter.WhichOneof("parameter_choice")
    return getattr(parameter, field) if field else None


def log_settings_update(settings: Mapping[str, pb.LogSettingsRequest.SettingValue], formats: tuple[str, ...]) -> dict:
    """The update a LogSettings request asks for; Triton's gRPC errors for a value of the wrong type
    or an unknown log format. Settings it does not know are ignored, as in Triton."""
    update: dict = {}
    for key, (field, type_name) in LOG_SETTING_FIELDS.items():
        if key in settings:
            if settings[key].WhichOneof("parameter_choice") != field:
                raise invalid_arg(f"expect {type_name} for '{key}'")
            update[key] = parameter_value(settings[key])
    if update.get("log_format", formats[0]) not in formats:
        raise invalid_arg(f"invalid argument for log_format, got: {update['log_format']}")
    return update


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Every RPC of GRPCInferenceService, translated to engine calls.

    The handlers raise core errors; ``service_handlers`` wraps each in ``answering_errors``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.heads = HeadCache()

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.engine.is_live())

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.engine.is_ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.engine.model_ready(request.name, request.version))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> pb.ServerMetadataResponse:
        meta = self.engine.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> pb.ModelMetadataResponse:
        meta = self.engine.model_metadata(request.name, request.version)
        response = pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"])
        for kind, target in (("inputs", response.inputs), ("outputs", response.outputs)):
            for tensor in meta[kind]:
                target.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        return response

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Context) -> pb.ModelConfigResponse:
        model = self.engine.ready_model(request.name, request.version)
        return pb.ModelConfigResponse(config=model.config)

    async def ModelInfer(self, data: bytes, context: Context) -> bytes:
        """Takes and returns the message's bytes: tensors stay views of the wire buffers (see wire.py);
        a head seen before is not parsed again (see head_cache.py)."""
        head, raw = split_infer_request(data)
        core_request, entry = self.heads.decode(head, raw, self.engine.shared_memory)
        tracer = self.engine.tracer
        trace = tracer.start(core_request.model_name) if tracer.active else None
        if trace is None:
            return self._answer(await self.engine.infer(core_request), core_request, entry)
        trace.stamp("GRPC_WAITREAD_START", core_request.arrival_ns or None)
        trace.stamp("GRPC_WAITREAD_END")
        core_request.trace = trace
        response = await self.engine.infer(core_request)
        trace.stamp("INFER_RESPONSE_COMPLETE")
        trace.stamp("GRPC_SEND_START")
        answer = self._answer(response, core_request, entry)
        trace.stamp("GRPC_SEND_END")
        tracer.finish(trace, core_request.model_name)
        return answer

    def _answer(self, response: InferResponse, request: InferRequest, head: DecodedHead | None) -> bytes:
        """The serialized ModelInferResponse: its message part reused from ``head`` where it can be."""
        if head is not None:
            message = head.encode(response)
            if message is not None:
                return join_serialized(message, head.raw_outputs(response))
        return join_response(*encode_response_parts(response, request, self.engine.shared_memory))

    async def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: Context
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Bidirectional stream: every response of every request, in the order they come.

        As Triton: each response carries the ``triton_final_response`` parameter; a final flag
        without a response is sent only to requests with ``triton_enable_empty_final_response``;
        an error is sent in the stream (``error_message``) and the stream goes on.
        """
        outbox: asyncio.Queue = asyncio.Queue()
        answering: set[asyncio.Task] = set()

        async def answer(message: pb.ModelInferRequest) -> None:
            try:
                await _answer_stream_request(self.engine, message, outbox.put_nowait)
            except Exception as exc:
                log.exception("stream infer failed")
                outbox.put_nowait(
                    pb.ModelStreamInferResponse(
                        error_message=f"internal error: {type(exc).__name__}: {exc}",
                        infer_response=pb.ModelInferResponse(id=message.id),
                    )
                )

        async def read_requests() -> None:
            async for message in requests:
                task = asyncio.ensure_future(answer(message))
                answering.add(task)
                task.add_done_callback(answering.discard)
            outbox.put_nowait(_CLIENT_DONE)

        async def end_when_answered() -> None:  # the client closed its side: end once every request answered
            if answering:
                await asyncio.gather(*list(answering), return_exceptions=True)
            outbox.put_nowait(_STREAM_DONE)

        reader = asyncio.ensure_future(read_requests())
        reading = True
        closing = None
        try:
            while True:
                item = await outbox.get()
                if item is _CLIENT_DONE:
                    reading = False
                    closing = asyncio.ensure_future(end_when_answered())
                    continue
                if item is _STREAM_DONE:
                    return
                yield item
        finally:
            if reading:
                reader.cancel()
            if closing is not None:
                closing.cancel()
            for task in list(answering):
                task.cancel()

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Context) -> pb.ModelStatisticsResponse:
        stats = self.engine.statistics(request.name, request.version)
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Context) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for row in self.engine.repository_index(request.ready):
            response.models.add(
                name=row["name"],
                version=row.get("version", ""),
                state=row.get("state", ""),
                reason=row.get("reason", ""),
            )
        return response

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        parameters = {key: parameter_value(value) for key, value in request.parameters.items()}
        await self.engine.load_model(request.model_name, parameters)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        dependents = False
        if "unload_dependents" in request.parameters:
            dependents = request.parameters["unload_dependents"].bool_param
        await self.engine.unload_model(request.model_name, dependents)
        return pb.RepositoryModelUnloadResponse()

    async def SystemSharedMemoryStatus(
        self, request: pb.SystemSharedMemoryStatusRequest, context: Context
    ) -> pb.SystemSharedMemoryStatusResponse:
        response = pb.SystemSharedMemoryStatusResponse()
        for region in self.engine.system_shm_status(request.name):
            entry = response.regions[region["name"]]
            entry.name, entry.key = region["name"], region["key"]
            entry.offset, entry.byte_size = region["offset"], region["byte_size"]
        return response

    async def SystemSharedMemoryRegister(
        self, request: pb.SystemSharedMemoryRegisterRequest, context: Context
    ) -> pb.SystemSharedMemoryRegisterResponse:
        self.engine.system_shm_register(request.name, request.key, request.offset, request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    async def SystemSharedMemoryUnregister(
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: Context
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        self.engine.system_shm_unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    async def CudaSharedMemoryStatus(
        self, request: pb.CudaSharedMemoryStatusRequest, context: Context
    ) -> pb.CudaSharedMemoryStatusResponse:
        response = pb.CudaSharedMemoryStatusResponse()
        for region in self.engine.cuda_shm_status(request.name):
            entry = response.regions[region["name"]]
            entry.name, entry.device_id, entry.byte_size = region["name"], region["device_id"], region["byte_size"]
        return response

    async def CudaSharedMemoryRegister(
        self, request: pb.CudaSharedMemoryRegisterRequest, context: Context
    ) -> pb.CudaSharedMemoryRegisterResponse:
        self.engine.cuda_shm_register(request.name, request.raw_handle, request.device_id, request.byte_size)
        return pb.CudaSharedMemoryRegisterResponse()

    async def CudaSharedMemoryUnregister(
        self, request: pb.CudaSharedMemoryUnregisterRequest, context: Context
    ) -> pb.CudaSharedMemoryUnregisterResponse:
        self.engine.cuda_shm_unregister(request.name)
        return pb.CudaSharedMemoryUnregisterResponse()

    async def TraceSetting(self, request: pb.TraceSettingRequest, context: Context) -> pb.TraceSettingResponse:
        update: dict = {}
        for key, value in request.settings.items():
            values = list(value.value)
            if key == "trace_level":
                update[key] = values or None
            else:
                update[key] = values[0] if values else None
        if update:
            settings = self.engine.update_trace_settings(update, request.model_name)
        else:
            settings = self.engine.trace_settings(request.model_name)
        response = pb.TraceSettingResponse()
        for key, value in settings.items():
            response.settings[key].value.extend(value if isinstance(value, list) else [value])
        return response

    async def LogSettings(self, request: pb.LogSettingsRequest, context: Context) -> pb.LogSettingsResponse:
        update = log_settings_update(request.settings, self.engine.log_formats())
        settings = self.engine.update_log_settings(update) if update else self.engine.log_settings()
        response = pb.LogSettingsResponse()
        for key, value in settings.items():
            if isinstance(value, bool):
                response.settings[key].bool_param = value
            elif isinstance(value, int):
                response.settings[key].uint32_param = value
            else:
                response.settings[key].string_param = value
        return response


_CLIENT_DONE = object()  # the client closed its side of a stream
_STREAM_DONE = object()  # every request of a stream is answered
EMPTY_FINAL_PARAMETER = "triton_enable_empty_final_response"
FINAL_PARAMETER = "triton_final_response"


async def _answer_stream_request(
    engine: Engine, message: pb.ModelInferRequest, send: Callable[[pb.ModelStreamInferResponse], None]
) -> None:
    """Run one request of a stream, sending a ModelStreamInferResponse per response (Triton's shapes)."""
    empty_final = False
    try:
        request = decode_request(message)
        flag = request.parameters.pop(EMPTY_FINAL_PARAMETER, None)
        empty_final = flag is True
        async for response, final in engine.infer_stream(request):
            if isinstance(response, TritonError):  # failed while running: names the model
                reply = pb.ModelInferResponse(model_name=message.model_name, id=message.id)
                reply.parameters[FINAL_PARAMETER].bool_param = True
                send(pb.ModelStreamInferResponse(error_message=response.message, infer_response=reply))
            elif response is not None:
                reply = encode_response(response)
                reply.parameters[FINAL_PARAMETER].bool_param = final
                send(pb.ModelStreamInferResponse(infer_response=reply))
            elif final and empty_final:
                reply = pb.ModelInferResponse(model_name=message.model_name, id=message.id)
                reply.parameters[FINAL_PARAMETER].bool_param = True
                send(pb.ModelStreamInferResponse(infer_response=reply))
            if final:
                return
    except TritonError as exc:  # refused before it ran: Triton answers with the request id alone
        reply = pb.ModelInferResponse(id=message.id)
        send(pb.ModelStreamInferResponse(error_message=exc.message, infer_response=reply))


SERVICE = "inference.GRPCInferenceService"
# methods whose handler takes and returns the serialized message itself
RAW_METHODS = frozenset({"ModelInfer"})
# methods whose responses --grpc-infer-response-compression-level compresses
INFER_METHODS = frozenset({"ModelInfer", "ModelStreamInfer"})


def service_methods(servicer: InferenceServicer, restrictions: Restrictions | None = None) -> dict[str, Method]:
    """Every method of the service by its path, from the service's descriptor: each handler answers core
    errors with their status (``answering_errors``) and refuses calls of a restricted group without
    its header (``restrict``); RAW_METHODS skip protobuf (de)serialization."""
    methods = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        raw = method.name in RAW_METHODS
        rpc = answering_errors(getattr(servicer, method.name))
        if restrictions:
            rpc = restrict(rpc, method.name, restrictions)
        methods[f"/{SERVICE}/{method.name}"] = Method(
            handler=rpc,
            streaming=method.client_streaming,
            decode=None if raw else message_factory.GetMessageClass(method.input_type).FromString,
            encode=None if raw else message_factory.GetMessageClass(method.output_type).SerializeToString,
            compressed=method.name in INFER_METHODS,
        )
    return methods


def build_server(
    engine: Engine,
    address: str,
    restrictions: Restrictions | None = None,
    ssl_context: ssl.SSLContext | None = None,
    channel: GrpcChannelOptions | None = None,
) -> GrpcServer:
    """The gRPC server bound to address ("host:port"), not yet started; with ``ssl_context``, TLS only;
    ``channel`` holds the transport settings of Triton's --grpc-* flags. Raises OSError when the
    address cannot be bound."""
    methods = service_methods(InferenceServicer(engine), restrictions)
    return GrpcServer(methods, address, channel, ssl_context, MAX_MESSAGE_BYTES)
