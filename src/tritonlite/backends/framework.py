"""What the tensor backends (ONNX Runtime, PyTorch, TensorRT) share.

They take a whole batch from the dynamic batcher: ``TensorInstance.execute`` gathers the
requests into one array per input (``backends.tensor_batch``), applies the config's
``reshape``, runs the framework once, turns outputs back into the config's shapes and hands
each request its rows. Subclasses implement ``infer`` (and may check single requests first).
Nothing here imports a framework.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tritonlite.backends.base import BackendInstance, InstanceSpec
from tritonlite.backends.tensor_batch import gather_inputs, scatter_outputs
from tritonlite.core.datatypes import CONFIG_TO_DATATYPE
from tritonlite.core.errors import TritonError, internal, invalid_arg
from tritonlite.core.reshape import shape_text, to_config_shape, to_model_shape
from tritonlite.core.types import InferRequest, InferResponse
from tritonlite.protocol import model_config_pb2 as mc


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of the model config."""

    name: str
    config_type: str  # TYPE_FP32, TYPE_STRING, ...
    datatype: str  # wire name: FP32, BYTES, ...
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None
    optional: bool = False
    is_shape_tensor: bool = False

    @property
    def model_dims(self) -> tuple[int, ...]:
        """The shape the framework model sees (without the batch dimension)."""
        return self.dims if self.reshape is None else self.reshape


def tensor_info(tensor: Any) -> TensorInfo:
    config_type = mc.DataType.Name(tensor.data_type)
    return TensorInfo(
        name=tensor.name,
        config_type=config_type,
        datatype=CONFIG_TO_DATATYPE.get(config_type, ""),
        dims=tuple(tensor.dims),
        reshape=tuple(tensor.reshape.shape) if tensor.HasField("reshape") else None,
        optional=getattr(tensor, "optional", False),
        is_shape_tensor=getattr(tensor, "is_shape_tensor", False),
    )


# ---- config parameters ------------------------------------------------------------------------


def string_parameter(config: Any, key: str, default: str | None = None) -> str | None:
    if key in config.parameters:
        return config.parameters[key].string_value
    return default


def int_parameter(config: Any, key: str, default: int, model_name: str) -> int:
    value = string_parameter(config, key)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise invalid_arg(
            f"failed to convert '{value}' to integer for parameter '{key}' of model '{model_name}'"
        ) from None


_TRUE = ("true", "1", "on", "yes")
_FALSE = ("false", "0", "off", "no")


def parse_bool(value: str, key: str, model_name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise invalid_arg(f"failed to convert '{value}' to boolean for parameter '{key}' of model '{model_name}'")


def bool_parameter(config: Any, key: str, default: bool, model_name: str) -> bool:
    value = string_parameter(config, key)
    if value is None or value.strip() == "":
        return default
    return parse_bool(value, key, model_name)


# ---- shapes -----------------------------------------------------------------------------------


def compare_dims(
    model_name: str,
    tensor_name: str,
    model_shape: list[int] | tuple[int, ...],
    dims: list[int] | tuple[int, ...],
    max_batch_size: int,
    exact: bool,
) -> None:
    """Triton's check that the config's dims fit the framework model's shape (-1: any size).

    With ``exact`` (outputs) a model dimension of -1 must also be -1 in the config.
    """
    model_shape = [int(d) for d in model_shape]
    if max_batch_size > 0:
        if not model_shape or model_shape[0] != -1:
            raise invalid_arg(
                f"model '{model_name}', tensor '{tensor_name}': for the model to support batching the shape "
                "should have at least 1 dimension and the first dimension must be -1; but shape expected by "
                f"the model is {shape_text(model_shape)}"
            )
        full = [-1, *dims]
    else:
        full = list(dims)
    ok = len(model_shape) == len(full) and all(
        m == c for m, c in zip(model_shape, full, strict=True) if exact or m != -1
    )
    if ok:
        return
    if max_batch_size > 0:
        specified = (
            f"{len(full)} dimensions (an initial batch dimension because max_batch_size > 0 followed by the "
            f"explicit tensor shape, making complete shape {shape_text(full)})"
        )
    else:
        specified = f"{len(full)} dimensions (shape {shape_text(full)})"
    raise invalid_arg(
        f"model '{model_name}', tensor '{tensor_name}': the model expects {len(model_shape)} dimensions "
        f"(shape {shape_text(model_shape)}) but the model configuration specifies {specified}"
    )


# ---- the shared execute -----------------------------------------------------------------------


def requested_outputs(requests: list[InferRequest], all_names: list[str]) -> list[str]:
    """The outputs a batch needs: all of them if any request asked for none in particular."""
    wanted: set[str] = set()
    for request in requests:
        if not request.outputs:
            return list(all_names)
        for out in request.outputs:
            wanted.add(out.name)
        if len(wanted) >= len(all_names):  # every output already (names the model lacks fail validation)
            return list(all_names)
    return [name for name in all_names if name in wanted]


class TensorInstance(BackendInstance):
    """An instance that runs a whole batch through a framework at once."""

    def __init__(self, spec: InstanceSpec) -> None:
        self.spec = spec
        config = spec.config
        self.model_name = spec.model_name
        self.version = str(spec.version)
        self.max_batch_size = config.max_batch_size
        self.batched = config.max_batch_size > 0
        self.inputs = {t.name: tensor_info(t) for t in config.input}
        self.outputs = {t.name: tensor_info(t) for t in config.output}
        self.output_names = list(self.outputs)
        self.output_datatypes = {name: info.datatype for name, info in self.outputs.items()}
        self.needs_request_check = False

    # -- to implement --------------------------------------------------------------------------

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Run the framework on model-shaped inputs; return the named outputs (model shapes)."""
        raise NotImplementedError

    def check_request(self, request: InferRequest) -> TritonError | None:
        """A problem with one request alone (it fails; the rest of the batch runs)."""
        return None

    def describe_error(self, exc: BaseException) -> TritonError:
        """A framework exception as the error every request of the failed batch gets."""
        return internal(f"{type(exc).__name__}: {exc}")

    # -- the batch -----------------------------------------------------------------------------

    def execute(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        started = time.perf_counter_ns()
        results: list[InferResponse | TritonError | None] = [None] * len(requests)
        runnable = requests
        if self.needs_request_check:
            runnable = []
            for index, request in enumerate(requests):
                problem = self.check_request(request)
                if problem is None:
                    runnable.append(request)
                else:
                    results[index] = problem
        gathered = inferred = started
        batch_results: list[InferResponse | TritonError] = []
        if runnable:
            try:
                inputs = gather_inputs(runnable)
                inputs = {
                    name: to_model_shape(array, self.inputs[name], self.batched) if name in self.inputs else array
                    for name, array in inputs.items()
                }
                gathered = time.perf_counter_ns()
                raw = self.infer(inputs, requested_outputs(runnable, self.output_names))
                inferred = time.perf_counter_ns()
                outputs = {
                    name: to_config_shape(array, self.outputs[name], self.batched) for name, array in raw.items()
                }
                batch_results = list(scatter_outputs(runnable, outputs, self.output_datatypes, self.version))
            except TritonError as exc:
                batch_results = [exc] * len(runnable)
            except Exception as exc:  # the framework's own error, for every request of the batch
                batch_results = [self.describe_error(exc)] * len(runnable)
            if gathered == started:
                gathered = time.perf_counter_ns()
            if inferred == started:
                inferred = gathered
        finished = time.perf_counter_ns()
        it = iter(batch_results)
        merged = [result if result is not None else next(it) for result in results]
        self.timings = (gathered - started, inferred - gathered, finished - inferred)
        return merged


def backend_missing(package: str, extra: str, backend: str, exc: BaseException) -> TritonError:
    """UNAVAILABLE for a framework that is not installed, with the install hint."""
    from tritonlite.core.errors import unavailable

    return unavailable(
        f"the {backend} backend needs the '{package}' package, which cannot be imported ({exc}); "
        f"install it with: pip install tritonlite[{extra}]"
    )
