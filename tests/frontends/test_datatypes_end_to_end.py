"""Every Triton datatype through identity models, with the real tritonclient (http, grpc, aio)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aiogrpcclient
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient
from conftest import DATATYPES


def sample(wire: str) -> np.ndarray:
    """A small array of the datatype with non-trivial values (as tritonclient represents it)."""
    if wire == "BOOL":
        return np.array([True, False, True], dtype=bool)
    if wire == "BYTES":
        return np.array([b"hello", "wörld".encode(), b"\x00\xffraw"], dtype=np.object_)
    if wire == "BF16":
        values = [1.0, -2.5, 3.0, 0.15625]  # exactly representable in bf16
        try:  # tritonclient >= 2.68 wants ml_dtypes.bfloat16, older ones float32
            import ml_dtypes

            return np.array(values, dtype=ml_dtypes.bfloat16)
        except ImportError:
            return np.array(values, dtype=np.float32)
    if wire in ("FP16", "FP32", "FP64"):
        return np.array(
            [1.5, -2.25, 3.0e3, 0.0], dtype={"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[wire]
        )
    dtype = np.dtype(wire.lower())
    info = np.iinfo(dtype)
    return np.array([info.min, 0, 1, info.max], dtype=dtype)


def json_capable(wire: str) -> bool:
    return wire not in ("BF16", "FP16")  # Triton rejects both in JSON


@pytest.mark.parametrize("wire", [w for w, _ in DATATYPES])
@pytest.mark.parametrize("binary", [True, False])
def test_http_identity_every_datatype(server, wire, binary):
    if not binary and not json_capable(wire):
        pytest.skip(f"{wire} has no JSON representation")
    data = sample(wire)
    if wire == "BYTES" and not binary:
        data = data[:2]  # JSON strings must be UTF-8
    client = httpclient.InferenceServerClient(server.http)
    inp = httpclient.InferInput("INPUT0", list(data.shape), wire)
    inp.set_data_from_numpy(data, binary_data=binary)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)
    result = client.infer(f"dtype_{wire.lower()}", [inp], outputs=[out])
    got = result.as_numpy("OUTPUT0")
    assert result.get_output("OUTPUT0")["datatype"] == wire
    assert got.shape == data.shape
    if wire == "BYTES":  # JSON strings come back as str
        assert [g.encode() if isinstance(g, str) else g for g in got] == list(data)
    else:
        np.testing.assert_array_equal(
            np.asarray(got, dtype=np.float64 if wire == "BF16" else got.dtype),
            np.asarray(data, dtype=np.float64 if wire == "BF16" else data.dtype),
        )


@pytest.mark.parametrize("wire", [w for w, _ in DATATYPES])
def test_grpc_identity_every_datatype(server, wire):
    data = sample(wire)
    client = grpcclient.InferenceServerClient(server.grpc)
    inp = grpcclient.InferInput("INPUT0", list(data.shape), wire)
    inp.set_data_from_numpy(data)
    result = client.infer(f"dtype_{wire.lower()}", [inp])
    got = result.as_numpy("OUTPUT0")
    assert result.get_output("OUTPUT0").datatype == wire
    if wire == "BYTES":
        assert list(got) == list(data)
    else:
        np.testing.assert_array_equal(
            np.asarray(got, dtype=np.float64 if wire == "BF16" else got.dtype),
            np.asarray(data, dtype=np.float64 if wire == "BF16" else data.dtype),
        )


def test_grpc_aio_and_http_aio_add_sub(server):
    a = np.arange(4, dtype=np.float32)
    b = np.full(4, 0.5, dtype=np.float32)

    async def run():
        grpc_client = aiogrpcclient.InferenceServerClient(server.grpc)
        http_client = aiohttpclient.InferenceServerClient(server.http)
        try:
            assert await grpc_client.is_server_live()
            assert await grpc_client.is_model_ready("add_sub")
            g_inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("INPUT1", [4], "FP32")]
            g_inputs[0].set_data_from_numpy(a)
            g_inputs[1].set_data_from_numpy(b)
            h_inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
            h_inputs[0].set_data_from_numpy(a)
            h_inputs[1].set_data_from_numpy(b)
            results = await asyncio.gather(
                *[grpc_client.infer("add_sub", g_inputs) for _ in range(8)],
                *[http_client.infer("add_sub", h_inputs) for _ in range(8)],
            )
            for result in results:
                np.testing.assert_allclose(result.as_numpy("OUTPUT0"), a + b)
                np.testing.assert_allclose(result.as_numpy("OUTPUT1"), a - b)
        finally:
            await grpc_client.close()
            await http_client.close()

    asyncio.run(run())


def test_grpc_typed_contents(server):
    """Inputs in InferTensorContents (not raw) are accepted, as Triton does."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    request = service_pb2.ModelInferRequest(model_name="add_sub")
    for name, values in (("INPUT0", [1, 2, 3, 4]), ("INPUT1", [4, 3, 2, 1])):
        tensor = request.inputs.add(name=name, datatype="FP32", shape=[4])
        tensor.contents.fp32_contents.extend(values)
    response = stub.ModelInfer(request)
    assert [o.name for o in response.outputs] == ["OUTPUT0", "OUTPUT1"]
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], np.float32), [5, 5, 5, 5])
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[1], np.float32), [-3, -1, 1, 3])
    channel.close()
