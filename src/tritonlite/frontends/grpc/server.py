"""The gRPC frontend: GRPCInferenceService on grpc.aio, errors as Triton's status codes."""

from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import DecodeError

from tritonlite import logging_setup
from tritonlite.core.errors import DecoupledModelError, ErrorKind, TritonError, invalid_arg
from tritonlite.engine import Engine
from tritonlite.frontends.grpc.codec import decode_request, encode_response, encode_response_parts
from tritonlite.frontends.grpc.wire import join_response, split_request
from tritonlite.protocol import grpc_service_pb2 as pb
from tritonlite.protocol import grpc_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

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


async def _abort(context: grpc.aio.ServicerContext, exc: TritonError):
    message = DECOUPLED_MESSAGE if isinstance(exc, DecoupledModelError) else exc.message
    await context.abort(CODE_BY_KIND[exc.kind], message)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Every RPC of GRPCInferenceService, translated to engine calls."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=self.engine.is_live())

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.engine.is_ready())

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.engine.models.is_ready(request.name, request.version))

    async def ServerMetadata(self, request, context):
        meta = self.engine.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    async def ModelMetadata(self, request, context):
        try:
            meta = self.engine.model_metadata(request.name, request.version)
        except TritonError as exc:
            await _abort(context, exc)
        response = pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"])
        for kind, target in (("inputs", response.inputs), ("outputs", response.outputs)):
            for tensor in meta[kind]:
                target.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        return response

    async def ModelConfig(self, request, context):
        try:
            model = self.engine.ready_model(request.name, request.version)
        except TritonError as exc:
            await _abort(context, exc)
        return pb.ModelConfigResponse(config=model.config)

    async def ModelInfer(self, data: bytes, context) -> bytes:
        """Takes and returns the message's bytes: tensors stay views of the wire buffers (see wire.py)."""
        try:
            request, raw = split_request(data)
        except DecodeError:
            await context.abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        tracer = self.engine.tracer
        trace = tracer.start(request.model_name) if tracer.active else None
        shm = self.engine.shared_memory
        try:
            core_request = decode_request(request, shm, raw)
            if trace is None:
                return join_response(*encode_response_parts(await self.engine.infer(core_request), core_request, shm))
            trace.stamp("GRPC_WAITREAD_START", core_request.arrival_ns or None)
            trace.stamp("GRPC_WAITREAD_END")
            core_request.trace = trace
            response = await self.engine.infer(core_request)
            trace.stamp("INFER_RESPONSE_COMPLETE")
            trace.stamp("GRPC_SEND_START")
            message = join_response(*encode_response_parts(response, core_request, shm))
            trace.stamp("GRPC_SEND_END")
            tracer.finish(trace, request.model_name)
            return message
        except TritonError as exc:
            await _abort(context, exc)
        except Exception as exc:
            log.exception("gRPC infer on '%s' failed", request.model_name)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")

    async def ModelStreamInfer(self, request_iterator, context):
        """Bidirectional stream: every response of every request, in the order they come.

        As Triton: each response carries the ``triton_final_response`` parameter; a final flag
        without a response is sent only to requests with ``triton_enable_empty_final_response``;
        an error is sent in the stream (``error_message``) and the stream goes on.
        """
        queue: asyncio.Queue = asyncio.Queue()
        pending: set[asyncio.Task] = set()

        async def run(message: pb.ModelInferRequest) -> None:
            try:
                await _stream_one(self.engine, message, queue.put_nowait)
            except Exception as exc:
                log.exception("stream infer failed")
                queue.put_nowait(
                    pb.ModelStreamInferResponse(
                        error_message=f"internal error: {type(exc).__name__}: {exc}",
                        infer_response=pb.ModelInferResponse(id=message.id),
                    )
                )

        async def read() -> None:
            async for message in request_iterator:
                task = asyncio.ensure_future(run(message))
                pending.add(task)
                task.add_done_callback(pending.discard)
            queue.put_nowait(None)

        async def finish() -> None:  # the client closed its side: end once every request answered
            if pending:
                await asyncio.gather(*list(pending), return_exceptions=True)
            queue.put_nowait(_STREAM_DONE)

        reader = asyncio.ensure_future(read())
        reading = True
        closer = None
        try:
            while True:
                item = await queue.get()
                if item is None:
                    reading = False
                    closer = asyncio.ensure_future(finish())
                    continue
                if item is _STREAM_DONE:
                    return
                yield item
        finally:
            if reading:
                reader.cancel()
            if closer is not None:
                closer.cancel()
            for task in list(pending):
                task.cancel()

    async def ModelStatistics(self, request, context):
        try:
            stats = self.engine.statistics(request.name, request.version)
        except TritonError as exc:
            await _abort(context, exc)
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

    async def RepositoryIndex(self, request, context):
        response = pb.RepositoryIndexResponse()
        for row in self.engine.models.index(request.ready):
            response.models.add(
                name=row["name"],
                version=row.get("version", ""),
                state=row.get("state", ""),
                reason=row.get("reason", ""),
            )
        return response

    async def RepositoryModelLoad(self, request, context):
        parameters = {}
        for key, value in request.parameters.items():
            which = value.WhichOneof("parameter_choice")
            parameters[key] = getattr(value, which) if which else None
        try:
            await self.engine.load_model(request.model_name, parameters)
        except TritonError as exc:
            await _abort(context, exc)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request, context):
        dependents = False
        if "unload_dependents" in request.parameters:
            dependents = request.parameters["unload_dependents"].bool_param
        try:
            await self.engine.unload_model(request.model_name, dependents)
        except TritonError as exc:
            await _abort(context, exc)
        return pb.RepositoryModelUnloadResponse()

    async def SystemSharedMemoryStatus(self, request, context):
        try:
            regions = self.engine.shared_memory.system.status(request.name)
        except TritonError as exc:
            await _abort(context, exc)
        response = pb.SystemSharedMemoryStatusResponse()
        for region in regions:
            entry = response.regions[region["name"]]
            entry.name, entry.key = region["name"], region["key"]
            entry.offset, entry.byte_size = region["offset"], region["byte_size"]
        return response

    async def SystemSharedMemoryRegister(self, request, context):
        try:
            self.engine.shared_memory.system.register(request.name, request.key, request.offset, request.byte_size)
        except TritonError as exc:
            await _abort(context, exc)
        return pb.SystemSharedMemoryRegisterResponse()

    async def SystemSharedMemoryUnregister(self, request, context):
        self.engine.shared_memory.system.unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    async def CudaSharedMemoryStatus(self, request, context):
        try:
            regions = self.engine.shared_memory.cuda.status(request.name)
        except TritonError as exc:
            await _abort(context, exc)
        response = pb.CudaSharedMemoryStatusResponse()
        for region in regions:
            entry = response.regions[region["name"]]
            entry.name, entry.device_id, entry.byte_size = region["name"], region["device_id"], region["byte_size"]
        return response

    async def CudaSharedMemoryRegister(self, request, context):
        try:
            self.engine.shared_memory.cuda.register(
                request.name, request.raw_handle, request.device_id, request.byte_size
            )
        except TritonError as exc:
            await _abort(context, exc)
        return pb.CudaSharedMemoryRegisterResponse()

    async def CudaSharedMemoryUnregister(self, request, context):
        self.engine.shared_memory.cuda.unregister(request.name)
        return pb.CudaSharedMemoryUnregisterResponse()

    async def TraceSetting(self, request, context):
        update: dict = {}
        for key, value in request.settings.items():
            values = list(value.value)
            if key == "trace_level":
                update[key] = values or None
            else:
                update[key] = values[0] if values else None
        try:
            if update:
                settings = self.engine.update_trace_settings(update, request.model_name)
            else:
                settings = self.engine.trace_settings(request.model_name)
        except TritonError as exc:
            await _abort(context, exc)
        response = pb.TraceSettingResponse()
        for key, value in settings.items():
            response.settings[key].value.extend(value if isinstance(value, list) else [value])
        return response

    async def LogSettings(self, request, context):
        update = {}
        for key, value in request.settings.items():
            which = value.WhichOneof("parameter_choice")
            update[key] = getattr(value, which) if which else None
        try:
            settings = logging_setup.update(update) if update else logging_setup.current.as_json()
        except TritonError:
            if update.get("log_format") not in (None, *logging_setup.LOG_FORMATS):
                exc = TritonError(
                    ErrorKind.INVALID_ARG, f"invalid argument for log_format, got: {update['log_format']}"
                )
            await _abort(context, exc)
        response = pb.LogSettingsResponse()
        for key, value in settings.items():
            if isinstance(value, bool):
                response.settings[key].bool_param = value
            elif isinstance(value, int):
                response.settings[key].uint32_param = value
            else:
                response.settings[key].string_param = value
        return response


_STREAM_DONE = object()
EMPTY_FINAL_PARAMETER = "triton_enable_empty_final_response"
FINAL_PARAMETER = "triton_final_response"


async def _stream_one(engine: Engine, message: pb.ModelInferRequest, emit) -> None:
    """Run one request of a stream, emitting a ModelStreamInferResponse per response (Triton's shapes)."""
    empty_final = False
    try:
        request = decode_request(message)
        flag = request.parameters.pop(EMPTY_FINAL_PARAMETER, None)
        empty_final = flag is True
        async for response, final in engine.infer_stream(request):
            if isinstance(response, TritonError):  # failed while running: names the model
                reply = pb.ModelInferResponse(model_name=message.model_name, id=message.id)
                reply.parameters[FINAL_PARAMETER].bool_param = True
                emit(pb.ModelStreamInferResponse(error_message=response.message, infer_response=reply))
            elif response is not None:
                reply = encode_response(response)
                reply.parameters[FINAL_PARAMETER].bool_param = final
                emit(pb.ModelStreamInferResponse(infer_response=reply))
            elif final and empty_final:
                reply = pb.ModelInferResponse(model_name=message.model_name, id=message.id)
                reply.parameters[FINAL_PARAMETER].bool_param = True
                emit(pb.ModelStreamInferResponse(infer_response=reply))
            if final:
                return
    except TritonError as exc:  # refused before it ran: Triton answers with the request id alone
        reply = pb.ModelInferResponse(id=message.id)
        emit(pb.ModelStreamInferResponse(error_message=exc.message, infer_response=reply))


SERVICE = "inference.GRPCInferenceService"
# methods whose handler takes and returns the serialized message itself
RAW_METHODS = frozenset({"ModelInfer"})


def service_handlers(servicer: InferenceServicer) -> dict[str, grpc.RpcMethodHandler]:
    """A handler per method of the service, from its descriptor; RAW_METHODS skip protobuf (de)serialization."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        raw = method.name in RAW_METHODS
        make = grpc.stream_stream_rpc_method_handler if method.client_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=None if raw else request_type.FromString,
            response_serializer=None if raw else response_type.SerializeToString,
        )
    return handlers


class _UnknownMethod(grpc.GenericRpcHandler):
    """Answers RPCs the service does not have as Triton does: UNIMPLEMENTED with no message."""

    def service(self, handler_call_details):
        async def reject(request, context):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "")

        return grpc.unary_unary_rpc_method_handler(reject)


def build_server(engine: Engine, address: str) -> grpc.aio.Server:
    """A grpc.aio server bound to address ("host:port"), not yet started."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    handlers = service_handlers(InferenceServicer(engine))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
    server.add_generic_rpc_handlers((_UnknownMethod(),))
    if server.add_insecure_port(address) == 0:
        raise invalid_arg(f"failed to bind the gRPC service to {address}")
    return server
