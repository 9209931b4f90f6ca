"""uvicorn reads big bodies in big pieces once read_buffer is installed; bodies above it still arrive whole."""

from __future__ import annotations

import numpy as np
import tritonclient.http as httpclient
from conftest import EXAMPLES
from serverutil import RunningServer
from uvicorn.protocols.http import httptools_impl

from tritonlite.frontends.http import read_buffer


def test_install_raises_the_pause_limit_and_never_lowers_it(monkeypatch):
    monkeypatch.setattr(httptools_impl, "HIGH_WATER_LIMIT", 65536)
    assert read_buffer.install(1 << 20)
    assert httptools_impl.HIGH_WATER_LIMIT == 1 << 20
    assert read_buffer.install(4096)
    assert httptools_impl.HIGH_WATER_LIMIT == 1 << 20


def test_bodies_larger_than_the_buffer_arrive_whole():
    rows = (read_buffer.READ_BUFFER_BYTES // 4) + 12345  # just over the buffer, in FP32 values
    data = np.random.default_rng(5).standard_normal((1, rows)).astype(np.float32)
    server = RunningServer([EXAMPLES])
    try:
        client = httpclient.InferenceServerClient(server.http)
        tensor = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data, binary_data=True)
        result = client.infer("identity", [tensor])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
    finally:
        server.stop()
