"""CUDA shared memory with tritonclient's cuda_shared_memory utilities (runs only with a GPU).

The client process creates device buffers and shares them through CUDA IPC handles; the
server opens them, reads inputs and writes outputs. Skipped cleanly without CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EXAMPLES
from serverutil import RunningServer


def _gpu_ready() -> bool:
    try:
        import cuda.bindings.runtime  # noqa: F401 - tritonclient's CUDA shared memory needs it
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU with cupy and cuda-python")


@pytest.fixture(scope="module")
def server():
    running = RunningServer([EXAMPLES])
    yield running
    running.stop()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_inputs_and_outputs_in_cuda_regions(server, protocol):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    import tritonclient.utils.cuda_shared_memory as cudashm

    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(server.http if protocol == "http" else server.grpc)
    a = np.arange(4, dtype=np.float32)
    b = np.full(4, 0.25, dtype=np.float32)
    inputs_region = cudashm.create_shared_memory_region(f"cin_{protocol}", 32, 0)
    outputs_region = cudashm.create_shared_memory_region(f"cout_{protocol}", 32, 0)
    try:
        cudashm.set_shared_memory_region(inputs_region, [a, b])
        client.register_cuda_shared_memory(f"cin_{protocol}", cudashm.get_raw_handle(inputs_region), 0, 32)
        client.register_cuda_shared_memory(f"cout_{protocol}", cudashm.get_raw_handle(outputs_region), 0, 32)
        inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_shared_memory(f"cin_{protocol}", 16)
        inputs[1].set_shared_memory(f"cin_{protocol}", 16, offset=16)
        outputs = [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]
        outputs[0].set_shared_memory(f"cout_{protocol}", 16)
        outputs[1].set_shared_memory(f"cout_{protocol}", 16, offset=16)
        client.infer("add_sub", inputs, outputs=outputs)
        got = cudashm.get_contents_as_numpy(outputs_region, np.float32, [8])
        np.testing.assert_array_equal(got[:4], a + b)
        np.testing.assert_array_equal(got[4:], a - b)
        status = client.get_cuda_shared_memory_status()
        names = [r["name"] for r in status] if protocol == "http" else list(status.regions)
        assert f"cin_{protocol}" in names and f"cout_{protocol}" in names
    finally:
        client.unregister_cuda_shared_memory()
        cudashm.destroy_shared_memory_region(inputs_region)
        cudashm.destroy_shared_memory_region(outputs_region)
