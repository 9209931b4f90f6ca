"""Unit tests of tritonlite.backends.python.backend: PythonInstance runs model.py files in-process."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tritonlite.backends.base import InstanceSpec
from tritonlite.backends.python.backend import PythonInstance, auto_complete, describe_exception
from tritonlite.core.config_json import config_to_json
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput
from tritonlite.repository.config import complete_config, read_config

TWO_OUTPUTS_CONFIG = """
backend: "python"
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] }]
"""

ADD_ONE = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", x + 1),
                pb_utils.Tensor("OUTPUT1", x - 1),
            ]))
        return responses
"""


@pytest.fixture(autouse=True)
def _restore_import_state(monkeypatch):
    """The backend puts model folders on sys.path and modules in sys.modules; undo that per test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("tritonlite_model_", "helper_")):
            del sys.modules[name]


def make_instance(
    root: Path, name: str, source: str, config_text: str = TWO_OUTPUTS_CONFIG, files: dict | None = None
) -> PythonInstance:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config_text)
    (folder / "1" / "model.py").write_text(textwrap.dedent(source))
    for filename, text in (files or {}).items():
        (folder / "1" / filename).write_text(textwrap.dedent(text))
    config = read_config(folder, strict=False)
    complete_config(config, name)
    spec = InstanceSpec(
        model_name=name,
        version=1,
        model_path=folder,
        config=config,
        config_json=config_to_json(config),
        instance_name=f"{name}_0_0",
    )
    return PythonInstance(spec)


def request(*, outputs: list[str] | None = None, id: str = "", value: float = 1.0) -> InferRequest:
    data = np.full(4, value, dtype=np.float32)
    req = InferRequest("m", inputs=[InferTensor("INPUT0", "FP32", [4], data)], id=id)
    if outputs is not None:
        req.outputs = [RequestedOutput(n) for n in outputs]
    return req


def model_file(instance: PythonInstance) -> str:
    return str(instance.spec.version_path / "model.py")


def test_execute_returns_all_outputs(tmp_path):
    instance = make_instance(tmp_path, "m", ADD_ONE)
    [response] = instance.execute([request(id="r1", value=2.0)])
    assert isinstance(response, InferResponse)
    assert response.model_name == "m"
    assert response.model_version == "1"
    assert response.id == "r1"
    assert [t.name for t in response.outputs] == ["OUTPUT0", "OUTPUT1"]
    assert [t.datatype for t in response.outputs] == ["FP32", "FP32"]
    assert response.outputs[0].shape == [4]
    np.testing.assert_array_equal(response.outputs[0].data, [3, 3, 3, 3])
    np.testing.assert_array_equal(response.outputs[1].data, [1, 1, 1, 1])


def test_execute_many_requests_in_one_call(tmp_path):
    instance = make_instance(tmp_path, "m", ADD_ONE)
    responses = instance.execute([request(value=v) for v in (1.0, 5.0, 9.0)])
    assert [float(r.outputs[0].data[0]) for r in responses] == [2.0, 6.0, 10.0]


def test_requested_outputs_filter_the_response(tmp_path):
    instance = make_instance(tmp_path, "m", ADD_ONE)
    [response] = instance.execute([request(outputs=["OUTPUT1"])])
    assert [t.name for t in response.outputs] == ["OUTPUT1"]


def test_model_sees_requested_output_names_and_request_fields(tmp_path):
    echo = """
    import json
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            out = []
            for r in requests:
                info = {
                    "outputs": r.requested_output_names(),
                    "id": r.request_id(),
                    "parameters": json.loads(r.parameters()),
                    "model": r.model_name(),
                    "correlation_id": r.correlation_id(),
                    "flags": r.flags(),
                    "input_dtype": r.inputs()[0].triton_dtype(),
                }
                text = np.array([json.dumps(info).encode()], dtype=np.object_)
                out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", text)]))
            return out
    """
    instance = make_instance(tmp_path, "m", echo)
    req = request(outputs=["OUTPUT0"], id="abc")
    req.parameters = {"custom": 7}
    req.correlation_id = 12
    req.flags = 1
    plain = request()
    responses = instance.execute([req, plain])
    first = json.loads(responses[0].outputs[0].data[0])
    assert first == {
        "outputs": ["OUTPUT0"],
        "id": "abc",
        "parameters": {"custom": 7},
        "model": "m",
        "correlation_id": 12,
        "flags": 1,
        "input_dtype": 11,
    }
    assert responses[0].outputs[0].datatype == "BYTES"
    second = json.loads(responses[1].outputs[0].data[0])
    assert second["outputs"] == ["OUTPUT0", "OUTPUT1"]  # none requested: all of the config's outputs
    assert second["parameters"] == {}


def test_error_response_keeps_its_message_and_code(tmp_path):
    failing = """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            return [
                pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError("execute failed on purpose")),
                pb_utils.InferenceResponse(error=pb_utils.TritonError("bad", pb_utils.TritonError.INVALID_ARG)),
            ]
    """
    instance = make_instance(tmp_path, "m", failing)
    first, second = instance.execute([request(), request()])
    assert isinstance(first, TritonError)
    assert first.kind is ErrorKind.INTERNAL
    assert first.message == "execute failed on purpose"
    assert second.kind is ErrorKind.INVALID_ARG
    assert second.message == "bad"


def test_exception_in_execute(tmp_path):
    raising = """
    class TritonPythonModel:
        def execute(self, requests):
            raise Exception("boom")
    """
    instance = make_instance(tmp_path, "exec_raises", raising)
    results = instance.execute([request(), request()])
    expected = (
        "Failed to process the request(s) for model 'exec_raises_0_0', message: Exception: boom\n\nAt:\n"
        f"  {model_file(instance)}(4): execute\n"
    )
    assert len(results) == 2
    for error in results:
        assert isinstance(error, TritonError)
        assert error.kind is ErrorKind.INTERNAL
        assert error.message == expected


def test_exception_in_a_helper_lists_innermost_frame_first(tmp_path):
    raising = """
    def check(x):
        raise ValueError(f"bad value {x}")


    class TritonPythonModel:
        def execute(self, requests):
            check(3)
    """
    instance = make_instance(tmp_path, "m", raising)
    [error] = instance.execute([request()])
    path = model_file(instance)
    assert error.message == (
        "Failed to process the request(s) for model 'm_0_0', message: ValueError: bad value 3\n\nAt:\n"
        f"  {path}(3): check\n  {path}(8): execute\n"
    )


def test_wrong_number_of_responses(tmp_path):
    short = """
    class TritonPythonModel:
        def execute(self, requests):
            return []
    """
    instance = make_instance(tmp_path, "m", short)
    results = instance.execute([request(), request()])
    assert len(results) == 2
    for error in results:
        assert error.kind is ErrorKind.INTERNAL
        assert error.message == (
            "Number of InferenceResponse objects do not match the number of InferenceRequest objects. "
            "InferenceRequest(s) size is:2, and InferenceResponse(s) size is:0\n"
        )


def test_response_that_is_not_an_inference_response(tmp_path):
    wrong = """
    class TritonPythonModel:
        def execute(self, requests):
            return [{"OUTPUT0": 1}]
    """
    instance = make_instance(tmp_path, "m", wrong)
    [error] = instance.execute([request()])
    assert error.kind is ErrorKind.INTERNAL
    assert error.message.startswith("Expected an 'InferenceResponse' object in the execute function return list")
    assert "dict" in error.message


def test_initialize_gets_triton_args(tmp_path):
    recording = """
    import json
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            self.args = args

        def execute(self, requests):
            text = np.array([json.dumps(self.args).encode()], dtype=np.object_)
            return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", text)]) for _ in requests]
    """
    instance = make_instance(tmp_path, "m", recording)
    [response] = instance.execute([request()])
    args = json.loads(response.outputs[0].data[0])
    assert set(args) == {
        "model_config",
        "model_instance_kind",
        "model_instance_name",
        "model_instance_device_id",
        "model_repository",
        "model_version",
        "model_name",
    }
    assert all(isinstance(v, str) for v in args.values())
    assert args["model_instance_name"] == "m_0_0"
    assert args["model_instance_kind"] == "CPU"
    assert args["model_instance_device_id"] == "0"
    assert args["model_version"] == "1"
    assert args["model_name"] == "m"
    assert args["model_repository"] == str(tmp_path / "m")
    config = json.loads(args["model_config"])
    assert config["name"] == "m"
    assert [o["name"] for o in config["output"]] == ["OUTPUT0", "OUTPUT1"]
    assert config["input"][0]["dims"] == [4]


def test_initialize_raising_is_internal_with_traceback(tmp_path):
    failing = """
    class TritonPythonModel:
        def initialize(self, args):
            raise Exception("initialize failed on purpose")

        def execute(self, requests):
            return []
    """
    with pytest.raises(TritonError) as info:
        make_instance(tmp_path, "init_fails", failing)
    path = tmp_path / "init_fails" / "1" / "model.py"
    assert info.value.kind is ErrorKind.INTERNAL
    assert info.value.message == f"Exception: initialize failed on purpose\n\nAt:\n  {path}(4): initialize\n"


def test_model_file_that_fails_to_import(tmp_path):
    with pytest.raises(TritonError) as info:
        make_instance(tmp_path, "m", "import no_such_module_anywhere\n")
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert info.value.message.startswith(
        "failed to load model 'm': ModuleNotFoundError: No module named 'no_such_module_anywhere'\n\nAt:\n"
    )


def test_model_file_without_the_class(tmp_path):
    with pytest.raises(TritonError) as info:
        make_instance(tmp_path, "m", "x = 1\n")
    path = tmp_path / "m" / "1" / "model.py"
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert info.value.message == f"{path} for model 'm' does not define class TritonPythonModel"


def test_missing_model_file(tmp_path):
    folder = tmp_path / "m"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(TWO_OUTPUTS_CONFIG)
    config = read_config(folder, strict=False)
    complete_config(config, "m")
    spec = InstanceSpec("m", 1, folder, config, config_to_json(config), "m_0_0")
    with pytest.raises(TritonError) as info:
        PythonInstance(spec)
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert info.value.message == f"unable to find '{folder / '1' / 'model.py'}' for model 'm'"


def test_default_model_filename_is_used(tmp_path):
    folder = tmp_path / "m"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(TWO_OUTPUTS_CONFIG + 'default_model_filename: "other.py"\n')
    (folder / "1" / "other.py").write_text(ADD_ONE)
    config = read_config(folder, strict=False)
    complete_config(config, "m")
    instance = PythonInstance(InstanceSpec("m", 1, folder, config, config_to_json(config), "m_0_0"))
    [response] = instance.execute([request()])
    np.testing.assert_array_equal(response.outputs[0].data, [2, 2, 2, 2])


def test_helper_module_beside_model_py_is_importable(tmp_path):
    source = """
    import triton_python_backend_utils as pb_utils
    from helper_scale import scale


    class TritonPythonModel:
        def execute(self, requests):
            return [
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUTPUT0", scale(pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()))]
                )
                for r in requests
            ]
    """
    helper = """
    def scale(x):
        return x * 10
    """
    instance = make_instance(tmp_path, "m", source, files={"helper_scale.py": helper})
    [response] = instance.execute([request(value=1.5)])
    np.testing.assert_array_equal(response.outputs[0].data, [15, 15, 15, 15])


def test_two_models_named_model_py_do_not_clash(tmp_path):
    template = """
    import numpy as np
    import triton_python_backend_utils as pb_utils

    VALUE = {value}


    class TritonPythonModel:
        def execute(self, requests):
            return [
                pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", np.full(4, VALUE, np.float32))])
                for _ in requests
            ]
    """
    first = make_instance(tmp_path, "first", template.format(value=1))
    second = make_instance(tmp_path, "second", template.format(value=2))
    assert first.execute([request()])[0].outputs[0].data[0] == 1
    assert second.execute([request()])[0].outputs[0].data[0] == 2
    assert type(first.model).__module__ != type(second.model).__module__


HELPER_USER = """
import numpy as np
import triton_python_backend_utils as pb_utils
from helper_common import VALUE


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", np.full(4, VALUE, np.float32))]) for _ in requests
        ]
"""


def test_same_named_helpers_of_two_models_do_not_clash(tmp_path):
    # Triton runs each model in its own process: both models may have a helper_common.py
    first = make_instance(tmp_path, "first", HELPER_USER, files={"helper_common.py": "VALUE = 1\n"})
    second = make_instance(tmp_path, "second", HELPER_USER, files={"helper_common.py": "VALUE = 2\n"})
    assert first.execute([request()])[0].outputs[0].data[0] == 1
    assert second.execute([request()])[0].outputs[0].data[0] == 2
    # a further instance of the first model still finds its own helper
    again = PythonInstance(first.spec)
    assert again.execute([request()])[0].outputs[0].data[0] == 1


def test_two_instances_of_one_model_have_their_own_state(tmp_path):
    counting = """
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            self.calls = 0

        def execute(self, requests):
            self.calls += 1
            return [
                pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", np.full(4, self.calls, np.float32))])
                for _ in requests
            ]
    """
    instance = make_instance(tmp_path, "m", counting)
    again = PythonInstance(instance.spec)
    instance.execute([request()])
    assert instance.execute([request()])[0].outputs[0].data[0] == 2
    assert again.execute([request()])[0].outputs[0].data[0] == 1


def test_finalize_is_called(tmp_path):
    finalizing = """
    import json
    from pathlib import Path


    class TritonPythonModel:
        def initialize(self, args):
            self.marker = Path(args["model_repository"]) / "finalized"

        def execute(self, requests):
            return []

        def finalize(self):
            self.marker.write_text("done")
    """
    instance = make_instance(tmp_path, "m", finalizing)
    marker = tmp_path / "m" / "finalized"
    assert not marker.exists()
    instance.finalize()
    assert marker.read_text() == "done"


def test_finalize_raising_is_logged_not_raised(tmp_path, caplog):
    raising = """
    class TritonPythonModel:
        def execute(self, requests):
            return []

        def finalize(self):
            raise RuntimeError("finalize boom")
    """
    instance = make_instance(tmp_path, "m", raising)
    instance.finalize()
    assert any("finalize of model 'm' failed" in r.getMessage() for r in caplog.records)


def test_model_without_finalize(tmp_path):
    make_instance(tmp_path, "m", ADD_ONE).finalize()  # nothing to call, nothing raised


def test_bf16_output_keeps_its_datatype(tmp_path):
    config = """
    backend: "python"
    input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }]
    output [{ name: "OUTPUT0" data_type: TYPE_BF16 dims: [ 2 ] },
            { name: "OUTPUT1" data_type: TYPE_UINT16 dims: [ 2 ] }]
    """
    source = """
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            words = np.array([0x3F80, 0x4000], dtype=np.uint16)
            return [
                pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", words), pb_utils.Tensor("OUTPUT1", words)])
                for _ in requests
            ]
    """
    instance = make_instance(tmp_path, "m", source, config_text=textwrap.dedent(config))
    [response] = instance.execute([request()])
    assert [t.datatype for t in response.outputs] == ["BF16", "UINT16"]


def test_input_tensors_reach_the_model_without_copy(tmp_path):
    source = """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            outputs = []
            for r in requests:
                x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
                outputs.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
            return outputs
    """
    instance = make_instance(tmp_path, "m", source)
    req = request()
    [response] = instance.execute([req])
    assert response.outputs[0].data is req.inputs[0].data


def test_response_parameters_are_passed_on(tmp_path):
    source = """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            return [pb_utils.InferenceResponse([], parameters={"answer": 42}) for _ in requests]
    """
    instance = make_instance(tmp_path, "m", source)
    [response] = instance.execute([request()])
    assert response.parameters == {"answer": 42}
    assert response.outputs == []


def test_describe_exception_skips_outer_frames():
    def inner():
        raise KeyError("k")

    try:
        inner()
    except KeyError as exc:
        text = describe_exception(exc, skip_frames=0)
    lines = text.split("\n")
    assert lines[0] == "KeyError: 'k'"
    assert lines[1:3] == ["", "At:"]
    assert lines[3].endswith("): inner")
    assert lines[4].endswith("): test_describe_exception_skips_outer_frames")
    assert text.endswith("\n")


def test_auto_complete_config_hook(tmp_path):
    source = """
    class TritonPythonModel:
        @staticmethod
        def auto_complete_config(auto_complete_model_config):
            auto_complete_model_config.set_max_batch_size(8)
            auto_complete_model_config.add_input({"name": "IN", "data_type": "TYPE_FP32", "dims": [2]})
            return auto_complete_model_config

        def execute(self, requests):
            return []
    """
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(source))
    result = auto_complete(path, "ac", {"name": "ac", "max_batch_size": 0})
    assert result == {
        "name": "ac",
        "max_batch_size": 8,
        "input": [{"name": "IN", "data_type": "TYPE_FP32", "dims": [2]}],
    }


def test_auto_complete_without_hook_returns_the_config(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(ADD_ONE))
    config = {"name": "ac"}
    assert auto_complete(path, "ac", config) is config


def test_auto_complete_hook_raising_is_unavailable(tmp_path):
    source = """
    class TritonPythonModel:
        @staticmethod
        def auto_complete_config(config):
            config.set_max_batch_size(8)
            return config
    """
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(source))
    with pytest.raises(TritonError) as info:
        auto_complete(path, "ac", {"name": "ac", "max_batch_size": 4})
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert info.value.message.startswith(
        "auto_complete_config failed: ValueError: configuration specified max_batch_size 4"
    )
