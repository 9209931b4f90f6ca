"""Gather a batch of requests into one tensor per input, and split outputs back per request.

For backends that run whole tensors (ONNX Runtime, TensorRT, PyTorch): the dynamic batcher
hands them requests whose non-batch shapes match, they run one concatenated batch, and every
request gets a view of its rows of each output (no copy).
"""

from __future__ import annotations

import numpy as np

from tritonlite.core.errors import internal
from tritonlite.core.types import InferRequest, InferResponse, InferTensor


def batch_sizes(requests: list[InferRequest]) -> list[int]:
    """Rows each request contributes (its inputs' first dimension)."""
    sizes = []
    for request in requests:
        sizes.append(request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 1)
    return sizes


def gather_inputs(requests: list[InferRequest]) -> dict[str, np.ndarray]:
    """One array per input name: the requests' rows stacked along the batch dimension.

    A batch of one request is passed through as is (no copy).
    """
    if len(requests) == 1:
        return {tensor.name: tensor.data for tensor in requests[0].inputs}
    names = [tensor.name for tensor in requests[0].inputs]
    gathered: dict[str, np.ndarray] = {}
    for name in names:
        parts = []
        for request in requests:
            for tensor in request.inputs:
                if tensor.name == name:
                    parts.append(tensor.data)
                    break
            else:
                raise internal(f"request '{request.id}' in a batch has no input '{name}'")
        gathered[name] = np.concatenate(parts, axis=0)
    return gathered


def scatter_outputs(
    requests: list[InferRequest],
    outputs: dict[str, np.ndarray],
    datatypes: dict[str, str],
    model_version: str,
) -> list[InferResponse]:
    """Split each output along the batch dimension; request i gets rows [start_i, start_i + size_i)."""
    sizes = batch_sizes(requests)
    total = sum(sizes)
    for name, array in outputs.items():
        if len(requests) > 1 and (array.ndim == 0 or array.shape[0] != total):
            raise internal(
                f"output '{name}' has batch dimension {array.shape[0] if array.ndim else 'none'}, "
                f"expected {total} for a batch of {len(requests)} requests"
            )
    named = [(name, array, datatypes[name]) for name, array in outputs.items()]
    single = len(requests) == 1
    responses = []
    start = 0
    for request, size in zip(requests, sizes, strict=True):
        wanted = request.outputs
        if wanted and len(wanted) == 1 and len(named) == 1 and wanted[0].name == named[0][0]:
            wanted = None  # the one output there is: no filtering
        elif wanted:
            wanted = {out.name for out in wanted}
        tensors = []
        end = start + size
        for name, array, datatype in named:
            if wanted and name not in wanted:
                continue
            rows = array if single else array[start:end]
            tensors.append(InferTensor(name, datatype, list(rows.shape), rows))
        responses.append(InferResponse(request.model_name, model_version, request.id, tensors))
        start = end
    return responses
