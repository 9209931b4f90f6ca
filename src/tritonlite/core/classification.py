"""The classification extension: replace an output by its top-k "value:index[:label]" strings."""

from __future__ import annotations

import numpy as np

from tritonlite.core.datatypes import bytes_array
from tritonlite.core.errors import invalid_arg
from tritonlite.core.types import InferTensor


def classify(tensor: InferTensor, class_count: int, labels: list[str] | None, batched: bool) -> InferTensor:
    """Top ``class_count`` entries of each (batch) row, as Triton formats them."""
    if tensor.datatype == "BYTES":
        raise invalid_arg(f"class result not available for output '{tensor.name}' due to unsupported type 'BYTES'")
    data = np.asarray(tensor.data)
    rows = data.reshape(data.shape[0], -1) if batched and data.ndim > 0 else data.reshape(1, -1)
    k = min(class_count, rows.shape[1])
    items: list[bytes] = []
    for row in rows:
        order = np.argsort(-row.astype(np.float64), kind="stable")[:k]
        for index in order:
            value = row[index]
            # Triton prints integers as integers and floating point values with six decimals
            number = f"{int(value)}" if data.dtype.kind in "iub" else f"{float(value):f}"
            text = f"{number}:{int(index)}"
            if labels is not None and int(index) < len(labels):
                text += f":{labels[int(index)]}"
            items.append(text.encode("utf-8"))
    shape = [rows.shape[0], k] if batched else [k]
    return InferTensor(tensor.name, "BYTES", shape, bytes_array(items, shape))
