"""Triton's ONNX Runtime backend: one ``InferenceSession`` per instance, whole batches per run."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritonlite.backends.base import InstanceSpec
from tritonlite.backends.framework import TensorInstance, backend_missing, compare_dims
from tritonlite.backends.onnxruntime.options import (
    ONNX_TO_CONFIG,
    check_providers,
    missing_provider_message,
    onnx_dims,
    onnx_type_name,
    provider_plan,
    session_settings,
)
from tritonlite.core.errors import TritonError, internal, invalid_arg, unavailable
from tritonlite.core.reshape import shape_text
from tritonlite.core.types import InferRequest
from tritonlite.protocol import model_config_pb2 as mc

log = logging.getLogger(__name__)

DEFAULT_FILENAME = "model.onnx"
DEFAULT_MAX_BATCH_SIZE = 4
MAX_BATCH_SETTING = "default-max-batch-size"


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise backend_missing("onnxruntime", "onnx", "onnxruntime", exc) from None
    if not hasattr(onnxruntime, "InferenceSession"):  # e.g. a stray folder named onnxruntime on sys.path
        raise backend_missing("onnxruntime", "onnx", "onnxruntime", ImportError("no InferenceSession"))
    return onnxruntime


def model_file(version_path: Path, config: Any) -> Path:
    """The .onnx file: ``default_model_filename`` (model.onnx), or model.onnx inside it if it is a folder."""
    path = version_path / (config.default_model_filename or DEFAULT_FILENAME)
    if path.is_dir():
        path = path / DEFAULT_FILENAME
    return path


_ORT_MESSAGE = re.compile(r"^\[ONNXRuntimeError\] : (\d+) : [A-Z_]+ : (.*)$", re.DOTALL)


def ort_error(exc: BaseException) -> TritonError:
    """An ONNX Runtime exception as Triton words it: ``onnx runtime error <code>: <message>`` (INTERNAL)."""
    text = str(exc)
    found = _ORT_MESSAGE.match(text)
    if found:
        return internal(f"onnx runtime error {found.group(1)}: {found.group(2)}")
    return internal(f"onnx runtime error: {type(exc).__name__}: {text}")


@dataclass(frozen=True)
class OnnxTensor:
    """An input or output as the ONNX model declares it."""

    name: str
    type: str  # ONNX Runtime's type string, e.g. tensor(float)
    dims: tuple[int, ...]  # -1 for symbolic or unknown dimensions

    @property
    def config_type(self) -> str | None:
        return ONNX_TO_CONFIG.get(self.type)


def describe(args: list[Any]) -> list[OnnxTensor]:
    return [OnnxTensor(arg.name, arg.type, onnx_dims(arg.shape)) for arg in args]


def load_session(ort: Any, path: Path, options: Any = None, providers: list | None = None) -> Any:
    try:
        if providers is None:
            return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        return ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=[name for name, _ in providers],
            provider_options=[opts for _, opts in providers],
        )
    except Exception as exc:
        raise ort_error(exc) from None


# ---- auto-complete ----------------------------------------------------------------------------


def default_max_batch_size(settings: dict[str, dict[str, str]]) -> int:
    """``--backend-config=onnxruntime,default-max-batch-size=N`` (or the global setting); 4 by default."""
    value = settings.get("onnxruntime", {}).get(MAX_BATCH_SETTING)
    if value is None:
        value = settings.get("", {}).get(MAX_BATCH_SETTING)
    if value is None:
        return DEFAULT_MAX_BATCH_SIZE
    try:
        return int(value)
    except ValueError:
        raise invalid_arg(f"failed to convert '{value}' to integer for backend setting '{MAX_BATCH_SETTING}'") from None


def complete_from_model(
    config: mc.ModelConfig,
    inputs: list[OnnxTensor],
    outputs: list[OnnxTensor],
    max_batch_size: int,
    model_name: str,
) -> None:
    """Triton's ORT auto-complete, in place: max_batch_size, dynamic_batching, inputs, outputs.

    A batching model (every input and output has a variable first dimension) with no
    max_batch_size gets ``max_batch_size`` (the default-max-batch-size setting); one whose
    max_batch_size ends up above 1 and has no scheduler gets ``dynamic_batching {}``. Inputs
    (outputs) are filled only when the config lists none.
    """
    can_batch = all(len(t.dims) > 0 and t.dims[0] == -1 for t in (*inputs, *outputs))
    if can_batch:
        if config.max_batch_size == 0:
            config.max_batch_size = max(max_batch_size, 0)
            log.warning(  # Triton's words, its typo included
                "autofilled max_batch_size to %d for model '%s' since batching is supporrted but no max_batch_size "
                "is specified in model configuration. Must specify max_batch_size to utilize autofill with a larger "
                "max batch size",
                config.max_batch_size,
                model_name,
            )
        if (
            config.max_batch_size > 1
            and not config.HasField("dynamic_batching")
            and not config.HasField("sequence_batching")
        ):
            config.dynamic_batching.SetInParent()
    elif config.max_batch_size != 0:
        raise invalid_arg(
            f"autofill failed for model '{model_name}': model does not support batching while non-zero "
            "max_batch_size is specified"
        )
    if len(config.input) == 0:
        _fill(config.input, inputs, config.max_batch_size, model_name)
    if len(config.output) == 0:
        _fill(config.output, outputs, config.max_batch_size, model_name)


def _fill(target: Any, tensors: list[OnnxTensor], max_batch_size: int, model_name: str) -> None:
    for tensor in tensors:
        if tensor.config_type is None:
            raise invalid_arg(
                f"unable to autofill for '{model_name}', unsupported data-type '{onnx_type_name(tensor.type)}'"
            )
        entry = target.add(name=tensor.name, data_type=mc.DataType.Value(tensor.config_type))
        dims = tensor.dims[1:] if max_batch_size > 0 else tensor.dims
        if dims:
            entry.dims.extend(dims)
        else:  # a scalar (per batch item): dims may not be empty, so [1] reshaped to []
            entry.dims.append(1)
            if max_batch_size > 0:
                entry.reshape.SetInParent()


def complete_onnx_config(
    config: mc.ModelConfig, model_path: Path, version_path: Path | None, settings: dict[str, dict[str, str]]
) -> mc.ModelConfig:
    """Auto-complete an ONNX model's config from the model (skipped when it lists inputs and outputs)."""
    has_inputs = len(config.input) + len(config.batch_input) > 0
    if (has_inputs and len(config.output) > 0) or version_path is None:
        return config
    path = model_file(version_path, config)
    if not path.is_file():
        return config  # reported when the version loads
    name = config.name or model_path.name
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = load_session(ort, path, options)
    completed = mc.ModelConfig()
    completed.CopyFrom(config)
    inputs, outputs = describe(session.get_inputs()), describe(session.get_outputs())
    complete_from_model(completed, inputs, outputs, default_max_batch_size(settings), name)
    return completed


# ---- the instance -----------------------------------------------------------------------------


def validate_against_model(
    config: mc.ModelConfig,
    model_name: str,
    inputs: list[OnnxTensor],
    outputs: list[OnnxTensor],
    initializers: list[OnnxTensor],
) -> None:
    """Triton's checks of the config's inputs and outputs against the ONNX model, with its texts."""
    expected = sum(1 for t in config.input if not t.optional) + len(config.batch_input)
    if len(inputs) != expected:
        raise invalid_arg(
            f"unable to load model '{model_name}', configuration expects {expected} inputs, "
            f"model provides {len(inputs)}"
        )
    known = {t.name: t for t in (*inputs, *initializers)}
    for tensor in config.input:
        if tensor.optional and config.max_batch_size != 0:
            raise invalid_arg(
                f"unable to load model '{model_name}', optional input '{tensor.name}' is not supported for "
                "models that support batching"
            )
        model_tensor = known.get(tensor.name)
        if model_tensor is None:
            raise invalid_arg(
                f"unexpected inference input '{tensor.name}', allowed inputs are: {', '.join(sorted(known))}"
            )
        _check_tensor(config, model_name, "input", tensor, model_tensor, exact=False)
    produced = {t.name: t for t in outputs}
    for tensor in config.output:
        model_tensor = produced.get(tensor.name)
        if model_tensor is None:
            raise invalid_arg(
                f"unexpected inference output '{tensor.name}', allowed outputs are: {', '.join(sorted(produced))}"
            )
        _check_tensor(config, model_name, "output", tensor, model_tensor, exact=True)


def _check_tensor(config: Any, model_name: str, kind: str, tensor: Any, model: OnnxTensor, exact: bool) -> None:
    config_type = mc.DataType.Name(tensor.data_type)
    if model.config_type is None:
        raise internal(
            f"unsupported datatype {onnx_type_name(model.type)} for {kind} '{tensor.name}' for model '{model_name}'"
        )
    if config_type != model.config_type:
        raise invalid_arg(
            f"unable to load model '{model_name}', configuration expects datatype {config_type} for {kind} "
            f"'{tensor.name}', model provides {model.config_type}"
        )
    dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
    if model.dims:
        compare_dims(model_name, tensor.name, model.dims, dims, config.max_batch_size, exact)
    elif any(d != 1 for d in dims):
        raise invalid_arg(
            f"unable to load model '{model_name}', scalar tensor '{tensor.name}', should only provide 1 in the "
            f"model configuration when the model doesn't support batching. Model configuration provided: "
            f"{shape_text(dims)}."
        )


class OnnxRuntimeInstance(TensorInstance):
    """One ONNX Runtime session on the instance's device."""

    def __init__(self, spec: InstanceSpec) -> None:
        super().__init__(spec)
        ort = import_onnxruntime()
        self.ort = ort
        config = spec.config
        path = model_file(spec.version_path, config)
        if not path.is_file():
            raise unavailable(f"unable to find '{path}' for model instance '{spec.model_name}'")
        settings = session_settings(config, spec.model_name)
        kind = spec.kind if spec.kind == "GPU" else "CPU"
        plan = provider_plan(config, kind, spec.device_id, spec.model_name)
        available = list(ort.get_available_providers())
        check_providers(plan, available, spec.model_name, spec.instance_name, kind, spec.device_id)
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings.graph_level)
        options.execution_mode = getattr(ort.ExecutionMode, settings.execution_mode)
        if settings.intra_op_threads > 0:
            options.intra_op_num_threads = settings.intra_op_threads
        if settings.inter_op_threads > 0:
            options.inter_op_num_threads = settings.inter_op_threads
        if settings.enable_mem_arena is not None:
            options.enable_cpu_mem_arena = settings.enable_mem_arena
        if settings.enable_mem_pattern is not None:
            options.enable_mem_pattern = settings.enable_mem_pattern
        for key, value in settings.config_entries.items():
            options.add_session_config_entry(key, value)
        options.log_severity_level = 3
        self.session = load_session(ort, path, options, plan)
        used = list(self.session.get_providers())
        for provider, _ in plan:
            if provider not in used:  # ONNX Runtime falls back to CPU with only a warning
                raise unavailable(
                    missing_provider_message(provider, used, spec.model_name, spec.instance_name, kind, spec.device_id)
                    + "; the provider failed to initialize"
                )
        self.providers = used
        model_inputs = describe(self.session.get_inputs())
        model_outputs = describe(self.session.get_outputs())
        initializers = describe(self.session.get_overridable_initializers())
        validate_against_model(config, spec.model_name, model_inputs, model_outputs, initializers)
        self.run_options = ort.RunOptions()
        for key, value in settings.run_config_entries.items():
            self.run_options.add_run_config_entry(key, value)
        self.string_inputs = {name for name, info in self.inputs.items() if info.datatype == "BYTES"}
        self.string_outputs = {name for name, info in self.outputs.items() if info.datatype == "BYTES"}
        self.needs_request_check = bool(self.string_inputs)

    def check_request(self, request: InferRequest) -> TritonError | None:
        for tensor in request.inputs:
            if tensor.name in self.string_inputs:
                for index, item in enumerate(tensor.data.reshape(-1)):
                    if isinstance(item, bytes | bytearray):
                        try:
                            item.decode("utf-8")
                        except UnicodeDecodeError:
                            return invalid_arg(
                                f"[request id: {request.id or '<id_unknown>'}] element {index} of input "
                                f"'{tensor.name}' is not valid UTF-8; ONNX Runtime's string tensors hold text"
                            )
        return None

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        feeds = {name: (_to_text(array) if name in self.string_inputs else array) for name, array in inputs.items()}
        results = self.session.run(outputs, feeds, self.run_options)
        produced = {}
        for name, array in zip(outputs, results, strict=True):
            if name in self.string_outputs or array.dtype.kind in ("U", "O"):
                array = _to_bytes(array)
            produced[name] = array
        return produced

    def describe_error(self, exc: BaseException) -> TritonError:
        return ort_error(exc)

    def finalize(self) -> None:
        self.session = None


def _to_text(array: np.ndarray) -> np.ndarray:
    flat = [item.decode("utf-8") if isinstance(item, bytes | bytearray) else str(item) for item in array.reshape(-1)]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(array.shape)


def _to_bytes(array: np.ndarray) -> np.ndarray:
    flat = [item.encode("utf-8") if isinstance(item, str) else bytes(item) for item in array.reshape(-1)]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(array.shape)
