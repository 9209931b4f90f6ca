"""Checks of a request against the model's inputs and outputs, as Triton makes them.

The error texts are Triton's (captured from the reference server, see
tests/reference_data), so clients that match on them keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

from tritonlite.core.datatypes import ELEMENT_SIZE, element_count
from tritonlite.core.errors import invalid_arg
from tritonlite.core.types import InferRequest


@dataclass(frozen=True)
class TensorSpec:
    """An input or output as the model config declares it."""

    name: str
    datatype: str
    dims: tuple[int, ...]
    optional: bool = False
    is_shape_tensor: bool = False
    reshape: tuple[int, ...] | None = None


def _shape_matches(dims: tuple[int, ...], shape: list[int]) -> bool:
    if len(dims) != len(shape):
        return False
    for want, got in zip(dims, shape, strict=True):
        if want != -1 and want != got:
            return False
    return True


def _fmt(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def validate_request(
    request: InferRequest,
    model_name: str,
    inputs: dict[str, TensorSpec],
    outputs: dict[str, TensorSpec],
    required: int,
    max_batch_size: int,
) -> int:
    """Validate a request; returns its batch size (0 for a model without batching)."""
    if request.outputs:
        for requested in request.outputs:
            if requested.name not in outputs:
                raise invalid_arg(f"unexpected inference output '{requested.name}' for model '{model_name}'")
    batch_size = 0
    given = 0
    for tensor in request.inputs:
        spec = inputs.get(tensor.name)
        if spec is None:
            raise invalid_arg(f"unexpected inference input '{tensor.name}' for model '{model_name}'")
        if not spec.optional:
            given += 1
        if tensor.datatype != spec.datatype:
            raise invalid_arg(
                f"inference input '{tensor.name}' data-type is '{tensor.datatype}', "
                f"but model '{model_name}' expects '{spec.datatype}'"
            )
        shape = tensor.shape
        if max_batch_size > 0:
            if len(shape) == 0:
                raise invalid_arg(
                    f"inference input '{tensor.name}' for model '{model_name}' has no batch dimension"
                )
            this_batch = shape[0]
            if batch_size == 0:
                batch_size = this_batch
            elif this_batch != batch_size:
                raise invalid_arg(
                    f"input '{tensor.name}' batch size does not match other inputs for '{model_name}'"
                )
            if this_batch > max_batch_size or this_batch < 1:
                raise invalid_arg(
                    f"inference request batch-size must be <= {max_batch_size} for '{model_name}'"
                )
            shape = shape[1:]
        if not _shape_matches(spec.dims, shape):
            raise invalid_arg(
                f"unexpected shape for input '{tensor.name}' for model '{model_name}'. "
                f"Expected {_fmt(spec.dims)}, got {_fmt(shape)}"
            )
        item = ELEMENT_SIZE[spec.datatype]
        if item:
            expected = element_count(tensor.shape) * item
            got = tensor.data.nbytes
            if got != expected:
                raise invalid_arg(
                    f"input byte size mismatch for input '{tensor.name}' for model '{model_name}'. "
                    f"Expected {expected}, got {got}"
                )
    if given < required:
        missing = [name for name, spec in inputs.items() if not spec.optional]
        present = {t.name for t in request.inputs}
        raise invalid_arg(
            f"expected {required} inputs but got {len(request.inputs)} inputs for model '{model_name}'. "
            f"Got input(s) {_names(present)}, but missing required input(s) "
            f"{_names([n for n in missing if n not in present])}. Please provide all required input(s)."
        )
    return batch_size


def _names(names) -> str:
    return "[" + ",".join(f"'{n}'" for n in names) + "]"
