"""Triton's TensorFlow backend for SavedModels: ``1/model.savedmodel/``, run through one signature.

Inputs and outputs are the serving signature's keys (``serving_default``, or the
``TF_SIGNATURE_DEF`` parameter); auto-complete fills them, ``max_batch_size`` and
``dynamic_batching`` from the signature as Triton's TF backend does. Whole batches run through the
signature at once (``framework.TensorInstance``). KIND_CPU instances run on ``/CPU:0``, KIND_GPU
ones on ``/GPU:<id>`` when TensorFlow sees that GPU. TensorFlow is imported only when a
TensorFlow model loads (``pip install tritonlite[tensorflow]``); see ``runtime.py`` for its threads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritonlite.backends.base import InstanceSpec
from tritonlite.backends.framework import TensorInstance, compare_dims, int_parameter, string_parameter
from tritonlite.backends.tensorflow.runtime import ThreadSettings, default_threads, import_tensorflow
from tritonlite.core.errors import TritonError, internal, invalid_arg, unavailable
from tritonlite.core.reshape import shape_text
from tritonlite.protocol import model_config_pb2 as mc

log = logging.getLogger(__name__)

DEFAULT_FILENAME = "model.savedmodel"
DEFAULT_SIGNATURE = "serving_default"
DEFAULT_MAX_BATCH_SIZE = 4
MAX_BATCH_SETTING = "default-max-batch-size"

# tf.DType.name -> config data type
TF_TO_CONFIG: dict[str, str] = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "string": "TYPE_STRING",
}


@dataclass(frozen=True)
class TfTensor:
    """A signature input or output: its key (the config's name), type and shape."""

    name: str
    config_type: str  # TYPE_INVALID for a type Triton cannot carry
    dims: tuple[int, ...] | None  # -1 for an unknown size; None for an unknown rank

    @property
    def rank(self) -> int:
        return 0 if self.dims is None else len(self.dims)


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # keeps the SavedModel's variables alive
    signature: Any
    inputs: list[TfTensor]
    outputs: list[TfTensor]


def model_path_of(version_path: Path, config: mc.ModelConfig) -> Path:
    return version_path / (config.default_model_filename or DEFAULT_FILENAME)


def _spec(name: str, spec: Any) -> TfTensor:
    shape = spec.shape
    dims = None if shape.rank is None else tuple(-1 if d is None else int(d) for d in shape.as_list())
    return TfTensor(name, TF_TO_CONFIG.get(spec.dtype.name, "TYPE_INVALID"), dims)


def load_model(tf: Any, path: Path, model_name: str, signature_name: str, tag: str) -> LoadedModel:
    try:
        model = tf.saved_model.load(str(path), tags=[tag] if tag else None)
    except Exception as exc:
        raise internal(f"failed to load model '{model_name}': {type(exc).__name__}: {exc}") from None
    signatures = getattr(model, "signatures", {})
    if signature_name not in signatures:
        raise invalid_arg(
            f"unable to load model '{model_name}', the SavedModel has no signature '{signature_name}' "
            f"(it has: {', '.join(sorted(signatures)) or 'none'})"
        )
    signature = signatures[signature_name]
    _, keyword = signature.structured_input_signature
    inputs = [_spec(name, spec) for name, spec in keyword.items()]
    outputs = [_spec(name, spec) for name, spec in signature.structured_outputs.items()]
    return LoadedModel(model, signature, inputs, outputs)


def thread_settings(config: mc.ModelConfig, model_name: str, settings: dict[str, str]) -> ThreadSettings:
    """Triton's TF_NUM_INTRA_THREADS / TF_NUM_INTER_THREADS (0: the default), else the backend settings."""
    defaults = default_threads()
    values = []
    explicit = False
    for key, setting, default in (
        ("TF_NUM_INTRA_THREADS", "intra-op-threads", defaults.intra_op),
        ("TF_NUM_INTER_THREADS", "inter-op-threads", defaults.inter_op),
    ):
        fallback = default
        if setting in settings:
            try:
                fallback = int(settings[setting])
            except ValueError:
                raise invalid_arg(f"failed to convert '{settings[setting]}' to integer for '{setting}'") from None
            explicit = explicit or fallback > 0
        value = int_parameter(config, key, 0, model_name)
        if value < 0:
            raise invalid_arg(f"parameter '{key}' must be non-negative number for TensorFlow model '{model_name}'")
        explicit = explicit or value > 0
        values.append(value or max(fallback, 1))
    return ThreadSettings(values[0], values[1], explicit)


# ---- auto-complete ----------------------------------------------------------------------------


def default_max_batch_size(settings: dict[str, dict[str, str]]) -> int:
    value = settings.get("tensorflow", {}).get(MAX_BATCH_SETTING, settings.get("", {}).get(MAX_BATCH_SETTING))
    if value is None:
        return DEFAULT_MAX_BATCH_SIZE
    try:
        return int(value)
    except ValueError:
        raise invalid_arg(f"failed to convert '{value}' to integer for backend setting '{MAX_BATCH_SETTING}'") from None


def complete_from_signature(
    config: mc.ModelConfig, inputs: list[TfTensor], outputs: list[TfTensor], max_batch_size: int, model_name: str
) -> None:
    """Triton's TF auto-complete (``AutoCompleteHelper``), in place."""
    signature_batches = all(t.rank > 0 and t.dims[0] == -1 for t in (*inputs, *outputs))  # type: ignore[index]
    if not signature_batches and config.max_batch_size > 0:
        raise internal(
            f"unable to autofill for '{model_name}', configuration specified max-batch {config.max_batch_size} "
            "but model signature does not support batching"
        )
    batching = signature_batches
    if signature_batches and config.max_batch_size == 0:
        hinted = False
        for configured, model in ((config.input, inputs), (config.output, outputs)):
            by_name = {t.name: t for t in model}
            for tensor in configured:
                found = by_name.get(tensor.name)
                if found is None or not len(tensor.dims):
                    continue
                should_batch = found.rank == len(tensor.dims) + 1
                if hinted and should_batch != batching:
                    raise internal(
                        f"unable to autofill for '{model_name}', model tensor configurations are contradicting "
                        "each other in terms of whether batching is supported"
                    )
                hinted, batching = True, should_batch
    if config.max_batch_size == 0:
        config.max_batch_size = max(max_batch_size, 0) if batching else 0
        if batching:
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
    _fill(config.input, inputs, batching, model_name, "input")
    _fill(config.output, outputs, batching, model_name, "output")


def _fill(target: Any, tensors: list[TfTensor], batching: bool, model_name: str, key: str) -> None:
    if len(target):  # the config lists them: only the ranks are checked
        by_name = {t.name: t for t in tensors}
        for configured in target:
            found = by_name.get(configured.name)
            if found is None or found.dims is None:
                continue
            rank = found.rank - 1 if batching else found.rank
            if len(configured.dims) != rank:
                raise invalid_arg(
                    f"Number of dimensions ({len(configured.dims)}) given for '{model_name}' in configuration "
                    f"does not match the rank ({rank}) of the loaded model."
                )
        return
    for tensor in tensors:
        if tensor.dims is None:
            raise invalid_arg(
                f"Unable to autofill for '{model_name}': the rank of model tensor '{tensor.name}' is 0 which is "
                "not supported"
            )
        if tensor.config_type == "TYPE_INVALID":
            raise invalid_arg(
                f"unsupported datatype 'TYPE_INVALID' for tensor '{tensor.name}' for model '{model_name}'"
            )
        entry = target.add(name=tensor.name, data_type=mc.DataType.Value(tensor.config_type))
        dims = tensor.dims[1:] if batching else tensor.dims
        if dims:
            entry.dims.extend(dims)
        else:  # dims may not be empty: [1] reshaped to []
            entry.dims.append(1)
            entry.reshape.SetInParent()


def complete_tensorflow_config(
    config: mc.ModelConfig, model_path: Path, version_path: Path | None, settings: dict[str, dict[str, str]]
) -> mc.ModelConfig:
    """Auto-complete a SavedModel's config from its signature (nothing for GraphDef, as in Triton)."""
    if version_path is None or config.platform == "tensorflow_graphdef":
        return config
    path = model_path_of(version_path, config)
    if not path.exists():
        return config  # reported when the version loads
    name = config.name or model_path.name
    signature = string_parameter(config, "TF_SIGNATURE_DEF") or DEFAULT_SIGNATURE
    tag = string_parameter(config, "TF_GRAPH_TAG") or ""
    tf = import_tensorflow(thread_settings(config, name, settings.get("tensorflow", {})))
    try:
        with tf.device("/CPU:0"):
            loaded = load_model(tf, path, name, signature, tag)
    except TritonError as exc:
        raise internal(f"unable to auto-complete model configuration for '{name}', {exc.message}") from None
    completed = mc.ModelConfig()
    completed.CopyFrom(config)
    complete_from_signature(completed, loaded.inputs, loaded.outputs, default_max_batch_size(settings), name)
    return completed


# ---- the instance -----------------------------------------------------------------------------


def validate_against_signature(
    config: mc.ModelConfig, model_name: str, inputs: list[TfTensor], outputs: list[TfTensor]
) -> None:
    """Triton's SavedModel checks of the config against the signature, with its texts."""
    expected = len(config.input) + len(config.batch_input)
    if len(inputs) != expected:
        raise invalid_arg(
            f"unable to load model '{model_name}', configuration expects {len(config.input)} inputs, "
            f"model provides {len(inputs)}"
        )
    for kind, configured, model, exact in (
        ("input", config.input, inputs, False),
        ("output", config.output, outputs, True),
    ):
        by_name = {t.name: t for t in model}
        for tensor in configured:
            found = by_name.get(tensor.name)
            if found is None:
                raise invalid_arg(
                    f"unexpected inference {kind} '{tensor.name}', allowed {kind}s are: {', '.join(sorted(by_name))}"
                )
            dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
            if found.dims is not None:
                if kind == "input" and tensor.allow_ragged_batch:
                    if found.dims != (-1,):
                        raise invalid_arg(
                            f"unable to load model '{model_name}', configuration expects model provides input with "
                            f"shape [-1]  for ragged input '{tensor.name}', model provides {shape_text(found.dims)}"
                        )
                else:
                    compare_dims(model_name, tensor.name, found.dims, dims, config.max_batch_size, exact)
            config_type = mc.DataType.Name(tensor.data_type)
            if config_type != found.config_type:
                raise invalid_arg(
                    f"unable to load model '{model_name}', configuration expects datatype {config_type} for {kind} "
                    f"'{tensor.name}', model provides {found.config_type}"
                )


class TensorFlowInstance(TensorInstance):
    """One SavedModel signature on the instance's device."""

    def __init__(self, spec: InstanceSpec) -> None:
        super().__init__(spec)
        config = spec.config
        if config.platform == "tensorflow_graphdef":
            raise unavailable(
                f"model '{spec.model_name}': tritonlite runs TensorFlow SavedModels only, not 'tensorflow_graphdef'"
            )
        path = model_path_of(spec.version_path, config)
        if not path.exists():
            raise unavailable(f"unable to find '{path}' for model instance '{spec.instance_name}'")
        signature = string_parameter(config, "TF_SIGNATURE_DEF") or DEFAULT_SIGNATURE
        tag = string_parameter(config, "TF_GRAPH_TAG") or ""
        tf = import_tensorflow(thread_settings(config, spec.model_name, spec.backend_settings))
        self.tf = tf
        self.device = "/CPU:0"
        if spec.kind == "GPU":
            gpus = tf.config.list_physical_devices("GPU")
            if spec.device_id >= len(gpus):
                raise unavailable(
                    f"instance '{spec.instance_name}' of model '{spec.model_name}' is KIND_GPU on GPU "
                    f"{spec.device_id}, but TensorFlow sees {len(gpus)} GPU(s) (tensorflow-cpu sees none; "
                    "install the 'tensorflow' package built with CUDA)"
                )
            self.device = f"/GPU:{spec.device_id}"
        with tf.device(self.device):
            self.loaded = load_model(tf, path, spec.model_name, signature, tag)
        validate_against_signature(config, spec.model_name, self.loaded.inputs, self.loaded.outputs)
        self.signature = self.loaded.signature

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        tf = self.tf
        with tf.device(self.device):
            feeds = {name: tf.constant(array) for name, array in inputs.items()}
            results = self.signature(**feeds)
        return {name: np.asarray(results[name].numpy()) for name in outputs}

    def describe_error(self, exc: BaseException) -> TritonError:
        message = getattr(exc, "message", None) or str(exc)
        return internal(f"{type(exc).__name__}: {message}")

    def finalize(self) -> None:
        self.signature = None
        self.loaded = None  # type: ignore[assignment]
