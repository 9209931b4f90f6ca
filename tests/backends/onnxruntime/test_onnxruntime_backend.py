"""The ONNX Runtime backend on its own: sessions, batches of several requests, types, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx_models import add_sub, identity, make_spec, reduce_sum_rows, scale_with_weights, write_model  # noqa: E402

from tritonlite.backends import create_instance  # noqa: E402
from tritonlite.core.errors import ErrorKind, TritonError  # noqa: E402
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput  # noqa: E402

ADD_SUB_CONFIG = """
backend: "onnxruntime"
max_batch_size: 8
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] }]
"""


def request(rid: str, outputs: list[str] | None = None, **inputs: np.ndarray) -> InferRequest:
    from tritonlite.core.datatypes import datatype_of

    tensors = [InferTensor(name, datatype_of(a), list(a.shape), a) for name, a in inputs.items()]
    wanted = [RequestedOutput(name) for name in outputs] if outputs is not None else None
    return InferRequest("m", "", rid, tensors, wanted)


def by_name(response: InferResponse) -> dict[str, np.ndarray]:
    assert isinstance(response, InferResponse), response
    return {t.name: t.data for t in response.outputs}


@pytest.fixture
def add_sub_instance(tmp_path):
    folder = write_model(tmp_path, "add_sub", add_sub())
    instance = create_instance("onnxruntime", make_spec(folder, ADD_SUB_CONFIG))
    yield instance
    instance.finalize()


def test_batch_of_requests_gets_each_its_rows(add_sub_instance):
    rng = np.random.default_rng(0)
    sizes = [1, 3, 2]
    a = [rng.standard_normal((n, 4)).astype(np.float32) for n in sizes]
    b = [rng.standard_normal((n, 4)).astype(np.float32) for n in sizes]
    requests = [request(str(i), INPUT0=a[i], INPUT1=b[i]) for i in range(3)]
    results = add_sub_instance.execute(requests)
    assert len(results) == 3
    for i, result in enumerate(results):
        out = by_name(result)
        assert result.id == str(i) and result.model_version == "1"
        np.testing.assert_allclose(out["OUTPUT0"], a[i] + b[i], rtol=1e-6)
        np.testing.assert_allclose(out["OUTPUT1"], a[i] - b[i], rtol=1e-6)
        assert [t.shape for t in result.outputs] == [[sizes[i], 4], [sizes[i], 4]]
        assert {t.datatype for t in result.outputs} == {"FP32"}
    input_ns, infer_ns, output_ns = add_sub_instance.timings
    assert input_ns > 0 and infer_ns > 0 and output_ns > 0


def test_outputs_equal_a_direct_session_run(tmp_path, add_sub_instance):
    model = tmp_path / "direct.onnx"
    import onnx

    onnx.save(add_sub(), str(model))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    y = np.ones((6, 4), np.float32)
    expected = session.run(None, {"INPUT0": x, "INPUT1": y})
    results = add_sub_instance.execute(
        [request("a", INPUT0=x[:2], INPUT1=y[:2]), request("b", INPUT0=x[2:], INPUT1=y[2:])]
    )
    got0 = np.concatenate([by_name(r)["OUTPUT0"] for r in results])
    got1 = np.concatenate([by_name(r)["OUTPUT1"] for r in results])
    np.testing.assert_array_equal(got0, expected[0])
    np.testing.assert_array_equal(got1, expected[1])


def test_only_requested_outputs_are_returned(add_sub_instance):
    x = np.ones((1, 4), np.float32)
    results = add_sub_instance.execute(
        [
            request("0", ["OUTPUT1"], INPUT0=x, INPUT1=x),
            request("1", None, INPUT0=x, INPUT1=x),
            request("2", ["OUTPUT0"], INPUT0=x, INPUT1=x),
        ]
    )
    assert [t.name for t in results[0].outputs] == ["OUTPUT1"]
    assert sorted(t.name for t in results[1].outputs) == ["OUTPUT0", "OUTPUT1"]
    assert [t.name for t in results[2].outputs] == ["OUTPUT0"]
    np.testing.assert_array_equal(by_name(results[0])["OUTPUT1"], np.zeros((1, 4), np.float32))


def test_outputs_are_views_of_one_batch_result(add_sub_instance):
    x = np.ones((2, 4), np.float32)
    first, second = add_sub_instance.execute([request("0", INPUT0=x, INPUT1=x), request("1", INPUT0=x, INPUT1=x)])
    assert by_name(first)["OUTPUT0"].base is not None
    assert np.shares_memory(by_name(first)["OUTPUT0"], by_name(second)["OUTPUT0"]) is False


def test_a_failed_run_fails_every_request_with_the_ort_message(tmp_path):
    folder = write_model(tmp_path, "add_sub", add_sub())
    instance = create_instance("onnxruntime", make_spec(folder, ADD_SUB_CONFIG))
    bad = np.ones((1, 4), np.float64)  # the validation would refuse it; here it reaches ONNX Runtime
    results = instance.execute([request("0", INPUT0=bad, INPUT1=bad), request("1", INPUT0=bad, INPUT1=bad)])
    for result in results:
        assert isinstance(result, TritonError)
        assert result.kind == ErrorKind.INTERNAL
        assert result.message.startswith("onnx runtime error 2: ")
        assert "Unexpected input data type" in result.message


def test_string_tensors_round_trip_as_bytes(tmp_path):
    folder = write_model(tmp_path, "strings", identity("STRING"))
    config = """
backend: "onnxruntime"
max_batch_size: 4
input [{ name: "IN" data_type: TYPE_STRING dims: [ 2 ] }]
output [{ name: "OUT" data_type: TYPE_STRING dims: [ 2 ] }]
"""
    instance = create_instance("onnxruntime", make_spec(folder, config))
    a = np.array([[b"hello", "wörld".encode()]], dtype=object)
    b = np.array([[b"", b"x"], [b"y", b"z"]], dtype=object)
    first, second = instance.execute([request("0", IN=a), request("1", IN=b)])
    out = by_name(first)["OUT"]
    assert out.dtype == object and out.tolist() == [[b"hello", "wörld".encode()]]
    assert by_name(second)["OUT"].tolist() == [[b"", b"x"], [b"y", b"z"]]
    assert first.outputs[0].datatype == "BYTES"


def test_a_request_with_invalid_utf8_fails_alone(tmp_path):
    folder = write_model(tmp_path, "strings", identity("STRING"))
    config = """
backend: "onnxruntime"
max_batch_size: 4
input [{ name: "IN" data_type: TYPE_STRING dims: [ 2 ] }]
output [{ name: "OUT" data_type: TYPE_STRING dims: [ 2 ] }]
"""
    instance = create_instance("onnxruntime", make_spec(folder, config))
    good = np.array([[b"a", b"b"]], dtype=object)
    bad = np.array([[b"\xff", b"b"]], dtype=object)
    results = instance.execute([request("good", IN=good), request("bad", IN=bad), request("good2", IN=good)])
    assert by_name(results[0])["OUT"].tolist() == [[b"a", b"b"]]
    assert isinstance(results[1], TritonError) and results[1].kind == ErrorKind.INVALID_ARG
    assert "[request id: bad]" in results[1].message and "UTF-8" in results[1].message
    assert by_name(results[2])["OUT"].tolist() == [[b"a", b"b"]]


def test_fp16(tmp_path):
    folder = write_model(tmp_path, "half", identity("FLOAT16", ("batch", 3)))
    config = """
backend: "onnxruntime"
max_batch_size: 2
input [{ name: "IN" data_type: TYPE_FP16 dims: [ 3 ] }]
output [{ name: "OUT" data_type: TYPE_FP16 dims: [ 3 ] }]
"""
    instance = create_instance("onnxruntime", make_spec(folder, config))
    x = np.array([[0.5, -1.25, 65504]], dtype=np.float16)
    (result,) = instance.execute([request("0", IN=x)])
    out = by_name(result)["OUT"]
    assert out.dtype == np.float16 and result.outputs[0].datatype == "FP16"
    np.testing.assert_array_equal(out, x)


def test_model_without_batching(tmp_path):
    folder = write_model(tmp_path, "fixed", add_sub(batch=None, width=3))
    config = """
platform: "onnxruntime_onnx"
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 3 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 3 ] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 3 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 3 ] }]
"""
    instance = create_instance("onnxruntime", make_spec(folder, config))
    x = np.array([1, 2, 3], np.float32)
    (result,) = instance.execute([request("0", INPUT0=x, INPUT1=x)])
    np.testing.assert_array_equal(by_name(result)["OUTPUT0"], 2 * x)


def test_reshape_gives_the_config_shape(tmp_path):
    folder = write_model(tmp_path, "sums", reduce_sum_rows())
    config = """
backend: "onnxruntime"
max_batch_size: 4
input [{ name: "IN" data_type: TYPE_FP32 dims: [ 3 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } }]
"""
    instance = create_instance("onnxruntime", make_spec(folder, config))
    a = np.ones((2, 3), np.float32)
    b = np.full((1, 3), 2, np.float32)
    first, second = instance.execute([request("0", IN=a), request("1", IN=b)])
    assert first.outputs[0].shape == [2, 1]
    np.testing.assert_array_equal(by_name(first)["OUT"], [[3.0], [3.0]])
    np.testing.assert_array_equal(by_name(second)["OUT"], [[6.0]])


def test_folder_model_with_external_weights(tmp_path):
    import onnx

    folder = tmp_path / "folder_model"
    target = folder / "1" / "model.onnx"
    target.mkdir(parents=True)
    onnx.save(
        scale_with_weights(),
        str(target / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (target / "weights.bin").is_file()
    config = """
backend: "onnxruntime"
max_batch_size: 4
input [{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] }]
"""
    instance = create_instance("onnxruntime", make_spec(folder, config))
    (result,) = instance.execute([request("0", IN=np.ones((1, 4), np.float32))])
    np.testing.assert_array_equal(by_name(result)["OUT"], [[1, 2, 3, 4]])


def test_parameters_and_graph_level_are_accepted(tmp_path):
    folder = write_model(tmp_path, "add_sub", add_sub())
    config = (
        ADD_SUB_CONFIG
        + """
optimization { graph { level: 2 } }
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
parameters { key: "inter_op_thread_count" value: { string_value: "1" } }
parameters { key: "execution_mode" value: { string_value: "1" } }
parameters { key: "enable_mem_arena" value: { string_value: "false" } }
"""
    )
    instance = create_instance("onnxruntime", make_spec(folder, config))
    x = np.ones((1, 4), np.float32)
    (result,) = instance.execute([request("0", INPUT0=x, INPUT1=x)])
    np.testing.assert_array_equal(by_name(result)["OUTPUT0"], 2 * x)


def test_bad_execution_mode_is_refused(tmp_path):
    folder = write_model(tmp_path, "add_sub", add_sub())
    config = ADD_SUB_CONFIG + 'parameters { key: "execution_mode" value: { string_value: "3" } }\n'
    with pytest.raises(TritonError) as caught:
        create_instance("onnxruntime", make_spec(folder, config))
    assert caught.value.kind == ErrorKind.INVALID_ARG
    assert "execution_mode are 0 or 1 but got 3" in caught.value.message


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has the CUDA provider"
)
def test_gpu_instance_without_cuda_provider_is_unavailable_with_the_providers_listed(tmp_path):
    folder = write_model(tmp_path, "add_sub", add_sub())
    with pytest.raises(TritonError) as caught:
        create_instance("onnxruntime", make_spec(folder, ADD_SUB_CONFIG, kind="GPU", device=1))
    error = caught.value
    assert error.kind == ErrorKind.UNAVAILABLE
    assert "CUDAExecutionProvider" in error.message and "KIND_GPU device 1" in error.message
    assert "CPUExecutionProvider" in error.message  # the available ones are listed
    assert "onnxruntime-gpu" in error.message


@pytest.mark.skipif(
    "TensorrtExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has the TensorRT provider"
)
def test_tensorrt_accelerator_needs_the_tensorrt_provider(tmp_path):
    folder = write_model(tmp_path, "add_sub", add_sub())
    config = (
        ADD_SUB_CONFIG + 'optimization { execution_accelerators { gpu_execution_accelerator [{ name: "tensorrt" }] } }'
    )
    with pytest.raises(TritonError) as caught:
        create_instance("onnxruntime", make_spec(folder, config, kind="GPU"))
    assert caught.value.kind == ErrorKind.UNAVAILABLE
    assert "TensorrtExecutionProvider" in caught.value.message


def test_corrupt_model_fails_with_the_ort_reason(tmp_path):
    folder = tmp_path / "corrupt"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.onnx").write_bytes(b"this is not an onnx model")
    with pytest.raises(TritonError) as caught:
        create_instance("onnxruntime", make_spec(folder, ADD_SUB_CONFIG))
    assert caught.value.message.startswith("onnx runtime error ")
    assert "model.onnx" in caught.value.message


def test_missing_model_file(tmp_path):
    folder = tmp_path / "missing"
    (folder / "1").mkdir(parents=True)
    with pytest.raises(TritonError) as caught:
        create_instance("onnxruntime", make_spec(folder, ADD_SUB_CONFIG))
    assert caught.value.kind == ErrorKind.UNAVAILABLE
    assert caught.value.message == f"unable to find '{folder / '1' / 'model.onnx'}' for model instance 'missing'"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1"', 'TYPE_INT32 dims: [ 4 ] }, { name: "INPUT1"'),
            "unable to load model 'add_sub', configuration expects datatype TYPE_INT32 for input 'INPUT0', "
            "model provides TYPE_FP32",
        ),
        (
            ('name: "INPUT1"', 'name: "OTHER"'),
            "unexpected inference input 'OTHER', allowed inputs are: INPUT0, INPUT1",
        ),
        (
            ('name: "OUTPUT1"', 'name: "NOPE"'),
            "unexpected inference output 'NOPE', allowed outputs are: OUTPUT0, OUTPUT1",
        ),
        (
            ("max_batch_size: 8", "max_batch_size: 0"),
            "model 'add_sub', tensor 'INPUT0': the model expects 2 dimensions (shape [-1,4]) but the model "
            "configuration specifies 1 dimensions (shape [4])",
        ),
        (
            (
                '{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }',
                '{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 5 ] }',
            ),
            "model 'add_sub', tensor 'OUTPUT0': the model expects 2 dimensions (shape [-1,4]) but the model "
            "configuration specifies 2 dimensions (an initial batch dimension because max_batch_size > 0 followed "
            "by the explicit tensor shape, making complete shape [-1,5])",
        ),
    ],
)
def test_config_that_does_not_match_the_model(tmp_path, change, expected):
    folder = write_model(tmp_path, "add_sub", add_sub())
    config = ADD_SUB_CONFIG.replace(*change)
    assert config != ADD_SUB_CONFIG
    with pytest.raises(TritonError) as caught:
        create_instance("onnxruntime", make_spec(folder, config))
    assert caught.value.kind == ErrorKind.INVALID_ARG
    assert caught.value.message == expected


def test_unknown_accelerator_is_refused(tmp_path):
    folder = write_model(tmp_path, "add_sub", add_sub())
    config = ADD_SUB_CONFIG + 'optimization { execution_accelerators { cpu_execution_accelerator [{ name: "x" }] } }'
    with pytest.raises(TritonError) as caught:
        create_instance("onnxruntime", make_spec(folder, config))
    assert caught.value.message == "unknown Execution Accelerator 'x' is requested"
