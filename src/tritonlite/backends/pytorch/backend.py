"""Triton's PyTorch (LibTorch) backend: a TorchScript ``model.pt`` run with whole batches.

torch is imported when a PyTorch model loads (``pip install tritonlite[torch]``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

import numpy as np

from tritonlite.backends.base import InstanceSpec
from tritonlite.backends.framework import TensorInstance, backend_missing, bool_parameter, int_parameter
from tritonlite.backends.pytorch.naming import input_positions, output_positions
from tritonlite.core.errors import TritonError, internal, unavailable

log = logging.getLogger(__name__)

DEFAULT_FILENAME = "model.pt"


def import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise backend_missing("torch", "torch", "pytorch", exc) from None
    if not hasattr(torch, "jit"):  # e.g. a stray folder named torch on sys.path
        raise backend_missing("torch", "torch", "pytorch", ImportError("no torch.jit"))
    return torch


def torch_dtypes(torch: Any) -> dict[Any, str]:
    """torch dtype -> config data type."""
    table = {
        torch.bool: "TYPE_BOOL",
        torch.uint8: "TYPE_UINT8",
        torch.int8: "TYPE_INT8",
        torch.int16: "TYPE_INT16",
        torch.int32: "TYPE_INT32",
        torch.int64: "TYPE_INT64",
        torch.float16: "TYPE_FP16",
        torch.float32: "TYPE_FP32",
        torch.float64: "TYPE_FP64",
        torch.bfloat16: "TYPE_BF16",
    }
    for name, config_type in (("uint16", "TYPE_UINT16"), ("uint32", "TYPE_UINT32"), ("uint64", "TYPE_UINT64")):
        if hasattr(torch, name):
            table[getattr(torch, name)] = config_type
    return table


def forward_signature(module: Any) -> tuple[list[str] | None, bool]:
    """(forward's argument names without self, whether it takes one Dict[str, Tensor])."""
    try:
        arguments = list(module.forward.schema.arguments)
    except (AttributeError, RuntimeError):
        return None, False
    names = [a.name for a in arguments if a.name != "self"]
    dict_input = len(names) == 1 and str(arguments[-1].type).startswith("Dict[str")
    return names, dict_input


_NO_CONTEXT = contextlib.nullcontext()


class PyTorchInstance(TensorInstance):
    """One TorchScript module on the instance's device (cpu, or cuda:N for KIND_GPU)."""

    def __init__(self, spec: InstanceSpec) -> None:
        super().__init__(spec)
        torch = import_torch()
        self.torch = torch
        config = spec.config
        name = spec.model_name
        path = spec.version_path / (config.default_model_filename or DEFAULT_FILENAME)
        if not path.is_file():
            raise unavailable(f"unable to find '{path}' for model instance '{name}'")
        if spec.kind == "GPU":
            if not torch.cuda.is_available() or spec.device_id >= torch.cuda.device_count():
                raise unavailable(
                    f"unable to load model '{name}': instance '{spec.instance_name}' (KIND_GPU device "
                    f"{spec.device_id}) needs CUDA, and this torch ({torch.__version__}) sees "
                    f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} GPU(s)"
                )
            self.device = torch.device(f"cuda:{spec.device_id}")
        else:
            self.device = torch.device("cpu")
        self.inference_mode = bool_parameter(config, "INFERENCE_MODE", True, name)
        self.optimized = not bool_parameter(config, "DISABLE_OPTIMIZED_EXECUTION", False, name)
        # reads torch's process-wide optimizer setting (None on a torch without it: always set it)
        self._optimizer_setting = getattr(torch._C, "_get_graph_executor_optimize", None)
        self.clean_cache = bool_parameter(config, "ENABLE_CACHE_CLEANING", False, name)
        _apply_thread_counts(torch, config, name)
        try:
            with warnings.catch_warnings():  # recent torch calls TorchScript deprecated; it is what Triton runs
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(path), map_location=self.device)
        except Exception as exc:
            raise internal(f"failed to load model '{name}': {exc}") from None
        self.module.eval()
        forward_args, dict_input = forward_signature(self.module)
        self.dict_input = dict_input
        convention, positions = input_positions(name, list(self.inputs), forward_args, dict_input)
        self.input_convention = convention
        self.input_order = sorted(self.inputs, key=lambda n: positions[n])
        self.output_convention, self.output_index = output_positions(name, self.output_names)
        self.config_types = torch_dtypes(torch)

    # -- tensors in and out --------------------------------------------------------------------

    def _to_torch(self, name: str, array: np.ndarray) -> Any:
        torch = self.torch
        info = self.inputs[name]
        if info.datatype == "BYTES":
            return [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in array.flat]
        if info.datatype == "BF16":
            tensor = torch.from_numpy(np.ascontiguousarray(array).view(np.int16).copy()).view(torch.bfloat16)
        elif array.flags.writeable:
            tensor = torch.from_numpy(array)
        else:  # a view of the request body: torch wants to own writable memory
            tensor = torch.from_numpy(array.copy())
        return tensor.to(self.device, non_blocking=True) if self.device.type != "cpu" else tensor

    def _to_numpy(self, name: str, value: Any) -> np.ndarray:
        torch = self.torch
        info = self.outputs[name]
        if isinstance(value, list | tuple) and all(isinstance(v, str | bytes) for v in value):
            out = np.empty(len(value), dtype=object)
            out[:] = [v.encode("utf-8") if isinstance(v, str) else v for v in value]
            return out
        if not isinstance(value, torch.Tensor):
            raise internal(
                f"output '{name}' of model '{self.model_name}' is a {type(value).__name__}, expected a tensor "
                "(or a list of strings for a TYPE_STRING output)"
            )
        produced = self.config_types.get(value.dtype, str(value.dtype))
        if produced != info.config_type:
            raise internal(
                f"unexpected datatype {produced} for inference output '{name}', expecting type {info.config_type}"
            )
        value = value.detach()
        if value.device.type != "cpu":
            value = value.cpu()
        if value.dtype == torch.bfloat16:
            return value.view(torch.int16).numpy().view(np.uint16)
        return value.numpy()

    # -- execute -------------------------------------------------------------------------------

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        torch = self.torch
        grad = torch.inference_mode() if self.inference_mode else torch.no_grad()
        # Each context below costs ~10 µs a batch; entered only when the setting differs: a
        # thread's current CUDA device is already the instance's for cuda:0 (the default), and
        # most models keep the default optimizer setting. Tensors are moved to self.device
        # explicitly either way.
        device = _NO_CONTEXT
        if self.device.type == "cuda" and torch.cuda.current_device() != self.device.index:
            device = torch.cuda.device(self.device)
        optimize = _NO_CONTEXT
        current = self._optimizer_setting
        if current is None or current() != self.optimized:
            optimize = torch.jit.optimized_execution(self.optimized)
        with grad, device, optimize:
            if self.dict_input:
                result = self.module({name: self._to_torch(name, inputs[name]) for name in self.input_order})
            else:
                result = self.module(*[self._to_torch(name, inputs[name]) for name in self.input_order])
            values = list(result) if isinstance(result, tuple | list) and not _is_string_list(result) else [result]
            produced = {}
            for name in outputs:
                index = self.output_index[name]
                if index >= len(values):
                    raise internal(
                        f"model '{self.model_name}' returned {len(values)} output(s); output '{name}' is number "
                        f"{index} ({self.output_convention})"
                    )
                produced[name] = self._to_numpy(name, values[index])
        if self.clean_cache and self.device.type == "cuda":
            torch.cuda.empty_cache()
        return produced

    def describe_error(self, exc: BaseException) -> TritonError:
        return internal(f"PyTorch execute failure: {exc}")

    def finalize(self) -> None:
        self.module = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _apply_thread_counts(torch: Any, config: Any, model_name: str) -> None:
    """INTRA_OP_THREAD_COUNT / INTER_OP_THREAD_COUNT: process-wide in torch, as in Triton's backend."""
    intra = int_parameter(config, "INTRA_OP_THREAD_COUNT", 0, model_name)
    if intra > 0:
        torch.set_num_threads(intra)
    inter = int_parameter(config, "INTER_OP_THREAD_COUNT", 0, model_name)
    if inter > 0:
        try:
            torch.set_num_interop_threads(inter)
        except RuntimeError as exc:  # torch allows it once, before any inter-op work
            log.warning("INTER_OP_THREAD_COUNT of model '%s' not applied: %s", model_name, exc)
