"""Runs a Triton ``model.py`` in-process: import it, make a TritonPythonModel, call execute."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from tritonlite.backends.base import BackendInstance, InstanceSpec
from tritonlite.backends.python import triton_python_backend_utils as pb_utils
from tritonlite.core.config_json import config_to_json
from tritonlite.core.datatypes import datatype_of
from tritonlite.core.errors import ErrorKind, TritonError, internal, invalid_arg, unavailable
from tritonlite.core.reshape import to_config_shape, to_model_shape
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.core.validation import tensor_spec

log = logging.getLogger(__name__)

PB_UTILS_MODULE = "triton_python_backend_utils"

_module_ids = itertools.count()
_import_lock = threading.Lock()

_KIND_BY_CODE = {
    pb_utils.TritonError.UNKNOWN: ErrorKind.UNKNOWN,
    pb_utils.TritonError.INTERNAL: ErrorKind.INTERNAL,
    pb_utils.TritonError.NOT_FOUND: ErrorKind.NOT_FOUND,
    pb_utils.TritonError.INVALID_ARG: ErrorKind.INVALID_ARG,
    pb_utils.TritonError.UNAVAILABLE: ErrorKind.UNAVAILABLE,
    pb_utils.TritonError.UNSUPPORTED: ErrorKind.UNSUPPORTED,
    pb_utils.TritonError.ALREADY_EXISTS: ErrorKind.ALREADY_EXISTS,
    pb_utils.TritonError.CANCELLED: ErrorKind.CANCELLED,
}


def install_pb_utils() -> None:
    """Make ``import triton_python_backend_utils`` find tritonlite's implementation."""
    sys.modules.setdefault(PB_UTILS_MODULE, pb_utils)


def model_file(spec_path: Path, config: Any) -> Path:
    return spec_path / (config.default_model_filename or "model.py")


def import_model_module(path: Path, model_name: str) -> ModuleType:
    """Import a model.py as a fresh module (two models may both be called model.py)."""
    install_pb_utils()
    if not path.is_file():
        raise unavailable(f"unable to find '{path}' for model '{model_name}'")
    folder = str(path.parent)
    module_name = f"tritonlite_model_{model_name}_{next(_module_ids)}"
    with _import_lock:
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)  # helper modules beside model.py import as in Triton
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise unavailable(f"unable to import '{path}' for model '{model_name}'")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise unavailable(_describe_exception(f"failed to load model '{model_name}'", exc)) from None
        finally:
            _forget_helpers(folder)
    if not hasattr(module, "TritonPythonModel"):
        raise unavailable(f"{path} for model '{model_name}' does not define class TritonPythonModel")
    return module


def _forget_helpers(folder: str) -> None:
    """Drop the helper modules a model imported from its own folder from ``sys.modules``.

    Triton runs each model in its own process, so two models may both have a ``utils.py``;
    the model keeps the helpers it imported, and the next model imports its own afresh.
    """
    prefix = os.path.join(folder, "")
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and file.startswith(prefix) and not name.startswith("tritonlite_model_"):
            del sys.modules[name]


def auto_complete(path: Path, model_name: str, config_json: dict) -> dict:
    """Run the model's ``auto_complete_config`` (if it has one) on the config as JSON."""
    module = import_model_module(path, model_name)
    hook = getattr(module.TritonPythonModel, "auto_complete_config", None)
    if hook is None:
        return config_json
    wrapper = pb_utils.ModelConfig(config_json)
    try:
        result = hook(wrapper)
    except Exception as exc:
        raise unavailable(_describe_exception("auto_complete_config failed", exc)) from None
    return (result or wrapper).as_dict()


def describe_exception(exc: BaseException, skip_frames: int = 1) -> str:
    """An exception as Triton's python backend shows it: type, message, then the model's frames.

    ``Exception: boom\n\nAt:\n  /models/m/1/model.py(6): execute\n`` (innermost frame first;
    ``skip_frames`` drops tritonlite's own frames at the outer end).
    """
    frames = traceback.extract_tb(exc.__traceback__)[skip_frames:]
    frames = [f for f in frames if not f.filename.startswith("<frozen ")]  # importlib's own machinery
    where = "".join(f"  {f.filename}({f.lineno}): {f.name}\n" for f in reversed(frames))
    return f"{type(exc).__name__}: {exc}\n\nAt:\n{where}"


def complete_python_config(config: Any, model_path: Path, version_path: Path) -> Any:
    """The config after the model's ``auto_complete_config`` (unchanged when it has none)."""
    from google.protobuf import json_format

    from tritonlite.protocol import model_config_pb2 as mc

    path = model_file(version_path, config)
    if not path.is_file():
        return config  # reported when the version loads
    before = config_to_json(config)
    name = config.name or model_path.name
    after = auto_complete(path, name, config_to_json(config))
    if after == before:
        return config
    completed = mc.ModelConfig()
    try:
        json_format.ParseDict(after, completed)
    except json_format.ParseError as exc:
        raise invalid_arg(f"auto_complete_config of '{name}' produced an invalid config: {exc}") from None
    return completed


def _describe_exception(prefix: str, exc: BaseException) -> str:
    return f"{prefix}: {describe_exception(exc)}"


class PythonInstance(BackendInstance):
    """One TritonPythonModel object; execute runs on the instance's own thread."""

    def __init__(self, spec: InstanceSpec) -> None:
        self.spec = spec
        config = spec.config
        self.output_datatypes = {out.name: _wire_datatype(out.data_type) for out in config.output}
        self.all_output_names = [out.name for out in config.output]
        # Triton drops an output the config lacks (implicit state outputs go to the sequence batcher)
        states = [state.output_name for state in config.sequence_batching.state]
        self.declared_outputs = frozenset(self.all_output_names + states)
        # the model sees an input's (output's) reshape, the client its dims
        self.batched = config.max_batch_size > 0
        self.input_reshapes = {t.name: tensor_spec(t) for t in config.input if t.HasField("reshape")}
        self.output_reshapes = {t.name: tensor_spec(t) for t in config.output if t.HasField("reshape")}
        self.decoupled = config.model_transaction_policy.decoupled
        self.metric_finalizers: list = []  # the custom metrics this instance's model made
        # in a stub process: whether the request at an index of the execute was cancelled (its
        # flag in memory shared with tritonlite); in-process the request itself says so
        self.cancel_flags: Callable[[int], bool] | None = None
        module = import_model_module(model_file(spec.version_path, config), spec.model_name)
        self.model = module.TritonPythonModel()
        args = {
            "model_config": orjson.dumps(spec.config_json).decode(),
            "model_instance_kind": spec.kind,
            "model_instance_name": spec.instance_name,
            "model_instance_device_id": str(spec.device_id),
            "model_repository": str(spec.model_path),
            "model_version": str(spec.version),
            "model_name": spec.model_name,
        }
        initialize = getattr(self.model, "initialize", None)
        if initialize is not None:
            self._enter()
            try:
                initialize(args)
            except Exception as exc:
                raise internal(describe_exception(exc)) from None

    def execute(self, requests: list[InferRequest]) -> list[InferResponse | TritonError | None]:
        started = time.perf_counter_ns()
        self._enter()
        pb_requests = [self._to_pb(request) for request in requests]
        flags = self.cancel_flags
        if flags is not None:  # in-process, is_cancelled() reads the request itself (_to_pb)
            for index, pb_request in enumerate(pb_requests):
                pb_request._cancelled = _flag_probe(flags, index)
        if self.decoupled:
            for request, pb_request in zip(requests, pb_requests, strict=True):
                pb_request._response_sender = pb_utils.InferenceResponseSender(
                    self._sender(request), pb_request.is_cancelled
                )
        converted = time.perf_counter_ns()
        try:
            pb_responses = self.model.execute(pb_requests)
        except Exception as exc:
            error = internal(
                f"Failed to process the request(s) for model '{self.spec.instance_name}', "
                f"message: {describe_exception(exc)}"
            )
            return [error] * len(requests)
        if self.decoupled:
            self.timings = (converted - started, time.perf_counter_ns() - converted, 0)
            if pb_responses is not None:
                error = internal(
                    f"Failed to process the request(s) for model '{self.spec.instance_name}', message: "
                    f"Python model '{self.spec.instance_name}' is using the decoupled mode and the execute "
                    "function must return None."
                )
                return [error] * len(requests)
            return [None] * len(requests)  # the responses travel through each request's stream
        if pb_responses is None and any(r._sent for r in pb_requests):
            pb_responses = [_only_sent(r) for r in pb_requests]  # answered through the sender, as Triton allows
        if pb_responses is None or len(pb_responses) != len(requests):
            got = "None" if pb_responses is None else str(len(pb_responses))
            error = internal(
                f"Number of InferenceResponse objects do not match the number of InferenceRequest "
                f"objects. InferenceRequest(s) size is:{len(requests)}, and "
                f"InferenceResponse(s) size is:{got}\n"
            )
            return [error] * len(requests)
        executed = time.perf_counter_ns()
        results = [self._from_pb(req, resp) for req, resp in zip(requests, pb_responses, strict=True)]
        self.timings = (converted - started, executed - converted, time.perf_counter_ns() - executed)
        return results

    def _sender(self, request: InferRequest):
        """What a decoupled request's ``send`` does: convert the response, hand it to the stream."""
        stream = request.stream

        def send(response: Any, flags: int) -> None:
            final = bool(flags & pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            if stream is None:
                return
            if response is None:
                if final:
                    stream.put(None, True)
                return
            result = self._from_pb(request, response)
            stream.put(result, final or isinstance(result, TritonError))

        return send

    def _enter(self) -> None:
        """This thread runs this instance now: custom metrics name it in errors and belong to it."""
        context = pb_utils._context
        if getattr(context, "finalizers", None) is not self.metric_finalizers:  # set once per thread
            context.instance_name = self.spec.instance_name
            context.finalizers = self.metric_finalizers

    def is_ready(self) -> bool:
        """The model's own ``is_ready()`` when it has one (as newer Triton python backends ask it);
        one that raises is not ready."""
        probe = getattr(self.model, "is_ready", None)
        if probe is None:
            return True
        try:
            return bool(probe())
        except Exception:
            log.exception("is_ready of model '%s' failed", self.spec.model_name)
            return False

    def finalize(self) -> None:
        finalize = getattr(self.model, "finalize", None)
        if finalize is not None:
            try:
                finalize()
            except Exception:
                log.exception("finalize of model '%s' failed", self.spec.model_name)
        for release in reversed(self.metric_finalizers):  # metrics before their families
            release()
        self.metric_finalizers.clear()

    def _to_pb(self, request: InferRequest) -> pb_utils.InferenceRequest:
        reshapes, batched = self.input_reshapes, self.batched
        inputs = [
            pb_utils.Tensor(
                t.name, to_model_shape(t.data, reshapes[t.name], batched) if t.name in reshapes else t.data, t.datatype
            )
            for t in request.inputs
        ]
        if request.outputs:
            names = [out.name for out in request.outputs]
        else:
            names = self.all_output_names
        pb_request = pb_utils.InferenceRequest(
            model_name=request.model_name,
            requested_output_names=names,
            inputs=inputs,
            request_id=request.id,
            correlation_id=request.correlation_id,
            flags=request.flags,
            timeout=request.timeout_us,
            parameters=orjson.dumps(request.parameters).decode() if request.parameters else "{}",
        )
        pb_request._core = request
        return pb_request

    def _from_pb(self, request: InferRequest, response: Any) -> InferResponse | TritonError:
        if not isinstance(response, pb_utils.InferenceResponse):
            return internal(
                f"Expected an 'InferenceResponse' object in the execute function return list, "
                f"found type '{type(response).__name__}'."
            )
        error = response.error()
        if error is not None:
            return TritonError(_KIND_BY_CODE.get(error.code(), ErrorKind.INTERNAL), error.message())
        # the outputs asked for, or every declared one: an output the config lacks never reaches the client
        wanted = self.declared_outputs if not request.outputs else {out.name for out in request.outputs}
        reshapes = self.output_reshapes
        outputs = []
        for tensor in response.output_tensors():
            name = tensor.name()
            if name not in wanted:
                continue
            array = tensor.as_numpy()
            if name in reshapes:
                array = to_config_shape(array, reshapes[name], self.batched)
            datatype = tensor._wire or datatype_of(array)
            if datatype == "UINT16" and self.output_datatypes.get(name) == "BF16":
                datatype = "BF16"
            outputs.append(InferTensor(name, datatype, list(array.shape), array))
        return InferResponse(
            request.model_name,
            str(self.spec.version),
            request.id,
            outputs,
            response._parameters or None,
        )


def _flag_probe(flags: Callable[[int], bool], index: int) -> Callable[[], bool]:
    return lambda: flags(index)


def _only_sent(pb_request: pb_utils.InferenceRequest) -> Any:
    """The response a model that is not decoupled sent through the response sender (or None)."""
    sent = pb_request._sent
    return sent[-1] if sent else None


def _wire_datatype(config_type: int) -> str:
    from tritonlite.core.datatypes import CONFIG_TO_DATATYPE
    from tritonlite.protocol import model_config_pb2 as mc

    return CONFIG_TO_DATATYPE.get(mc.DataType.Name(config_type), "")
