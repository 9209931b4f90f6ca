"""InputLayout: what the head caches keep per input, and the tensor it makes from new bytes (a view)."""

from __future__ import annotations

import numpy as np

from tritonlite.core.types import InferTensor
from tritonlite.frontends.input_layout import InputLayout


def test_of_counts_elements_and_bytes():
    layout = InputLayout.of(InferTensor("X", "FP16", [2, 3], np.zeros((2, 3), np.float16)))
    assert layout == InputLayout("X", "FP16", (2, 3), 6, 12)


def test_tensor_views_the_new_bytes():
    layout = InputLayout("X", "INT32", (2, 2), 4, 16)
    buffer = bytearray(np.arange(4, dtype=np.int32).tobytes())
    tensor = layout.tensor(memoryview(buffer))
    assert (tensor.name, tensor.datatype, tensor.shape) == ("X", "INT32", [2, 2])
    assert tensor.data.tolist() == [[0, 1], [2, 3]]
    buffer[0] = 7  # a view of the request's bytes, not a copy
    assert tensor.data[0, 0] == 7
    tensor.shape.append(1)  # each request gets its own shape list
    assert layout.tensor(memoryview(buffer)).shape == [2, 2]
