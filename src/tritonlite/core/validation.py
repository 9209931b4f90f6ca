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


def tensor_spec(tensor) -> TensorSpec:
    """The TensorSpec of a config input or output (ModelInput / ModelOutput message)."""
    from tritonlite.core.datatypes import CONFIG_TO_DATATYPE
    from tritonlite.protocol import model_config_pb2 as mc

    reshape = tuple(tensor.reshape.shape) if tensor.HasField("reshape") else None
    return TensorSpec(
        name=tensor.name,
        datatype=CONFIG_TO_DATATYPE.get(mc.DataType.Name(tensor.data_type), "INVALID"),
        dims=tuple(tensor.dims),
        optional=getattr(tensor, "optional", False),
        is_shape_tensor=tensor.is_shape_tensor,
        reshape=reshape,
    )


def _shape_matches(dims: tuple[int, ...], shape: list[int]) -> bool:
    if len(dims) != len(shape):
        return False
    for want, got in zip(dims, shape, strict=True):
        if want != -1 and want != got:
            return False
    return True


def _fmt(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


# the name a raw binary request's single tensor carries until it is bound to the model's input
RAW_INPUT_NAME = "raw_input"


def request_prefix(request: InferRequest) -> str:
    """Triton's prefix on request errors: ``[request id: <id>] ``."""
    return f"[request id: {request.id or '<id_unknown>'}] "


def _quoted_list(names) -> str:
    # Triton builds "['a','b']" by appending "'name'," then dropping the last character, so an
    # empty list renders as "]". Kept as it is: clients may match on it.
    text = "[" + "".join(f"'{n}'," for n in names)
    return text[:-1] + "]"


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
    given = request.inputs
    if len(given) == 1 and len(inputs) == 1 and given[0].name == RAW_INPUT_NAME and RAW_INPUT_NAME not in inputs:
        return _validate_raw(request, model_name, next(iter(inputs.values())), max_batch_size)
    if len(given) > len(inputs) or len(given) < required:
        present = [t.name for t in given]
        missing = [n for n, s in inputs.items() if not s.optional and n not in present]
        # Triton: "expected N inputs" only when no input is optional; an empty request lists "[]"
        if required == len(inputs):
            expected = f"expected {required} inputs"
        else:
            expected = f"expected number of inputs between {required} and {len(inputs)}"
        raise invalid_arg(
            f"{request_prefix(request)}{expected} but got {len(given)} inputs for model "
            f"'{model_name}'. Got input(s) {_quoted_list(reversed(present)) if present else '[]'}, but missing "
            f"required input(s) {_quoted_list(missing)}. Please provide all required input(s)."
        )
    batch_size = 0
    for tensor in given:
        spec = inputs.get(tensor.name)
        if spec is None:
            raise invalid_arg(f"unexpected inference input '{tensor.name}' for model '{model_name}'")
        if tensor.datatype != spec.datatype:
            raise invalid_arg(
                f"{request_prefix(request)}inference input '{tensor.name}' data-type is '{tensor.datatype}', "
                f"but model '{model_name}' expects '{spec.datatype}'"
            )
        shape = tensor.shape
        if max_batch_size > 0:
            if batch_size == 0 and shape:
                batch_size = shape[0]
                if batch_size > max_batch_size:
                    raise invalid_arg(
                        f"{request_prefix(request)}inference request batch-size must be <= {max_batch_size} "
                        f"for '{model_name}'"
                    )
            if not shape or not _shape_matches(spec.dims, shape[1:]) or shape[0] != batch_size:
                raise invalid_arg(
                    f"{request_prefix(request)}unexpected shape for input '{tensor.name}' for model "
                    f"'{model_name}'. Expected {_fmt((-1, *spec.dims))}, got {_fmt(shape)}. {_BATCH_NOTE}"
                )
        elif not _shape_matches(spec.dims, shape):
            raise invalid_arg(
                f"{request_prefix(request)}unexpected shape for input '{tensor.name}' for model "
                f"'{model_name}'. Expected {_fmt(spec.dims)}, got {_fmt(shape)}. "
            )
        item = ELEMENT_SIZE[spec.datatype]
        if item:
            expected = element_count(shape) * item
            got = tensor.data.nbytes
            if got != expected:
                raise invalid_arg(
                    f"{request_prefix(request)}input byte size mismatch for input '{tensor.name}' for model "
                    f"'{model_name}'. Expected {expected}, got {got}"
                )
    return batch_size


def _validate_raw(request: InferRequest, model_name: str, spec: TensorSpec, max_batch_size: int) -> int:
    tensor = request.inputs[0]
    item = ELEMENT_SIZE[spec.datatype]
    if item:
        expected = element_count(tensor.shape) * item
        if tensor.data.nbytes != expected:
            raise invalid_arg(
                f"{request_prefix(request)}input byte size mismatch for input '{tensor.name}' for model "
                f"'{model_name}'. Expected {expected}, got {tensor.data.nbytes}"
            )
    tensor.name = spec.name
    return tensor.shape[0] if max_batch_size > 0 and tensor.shape else 0


_BATCH_NOTE = (
    "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be "
    "prepended to each input shape. If you want to specify the full shape including the batch dim in "
    "your input dims config, try setting max_batch_size to zero. See the model configuration docs for "
    "more info on max_batch_size."
)
