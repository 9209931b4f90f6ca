"""Unit tests of tritonlite.backends.python.process_instance: python model instances in a stub process."""

from __future__ import annotations

import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from tritonlite.backends import create_instance
from tritonlite.backends.base import InstanceSpec
from tritonlite.backends.python import ipc
from tritonlite.backends.python import triton_python_backend_utils as pb_utils
from tritonlite.backends.python.backend import PythonInstance
from tritonlite.backends.python.process_instance import MODE_PARAMETER, PythonProcessInstance
from tritonlite.core.config_json import config_to_json
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput
from tritonlite.repository.config import complete_config, read_config

LINUX = sys.platform.startswith("linux")

CONFIG = """
backend: "python"
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }, { name: "OUTPUT1" data_type: TYPE_INT64 dims: [ 1 ] }]
"""

PROCESS_MODE = f'parameters {{ key: "{MODE_PARAMETER}" value: {{ string_value: "process" }} }}\n'

# OUTPUT0 = 2 * INPUT0; OUTPUT1 = the pid of the process that ran execute.
# INPUT0[0] == -1: the process exits at once; -2: it segfaults.
DOUBLE = """
import ctypes
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            if x.size and x[0] == -1:
                os._exit(3)
            if x.size and x[0] == -2:
                ctypes.string_at(0)
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", x * 2),
                pb_utils.Tensor("OUTPUT1", np.array([os.getpid()], dtype=np.int64)),
            ]))
        return responses
"""


def make_spec(
    root: Path, name: str, source: str, config_text: str = CONFIG, mode: str | None = "process"
) -> InstanceSpec:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    parameters = f'parameters {{ key: "{MODE_PARAMETER}" value: {{ string_value: "{mode}" }} }}\n' if mode else ""
    (folder / "config.pbtxt").write_text(textwrap.dedent(config_text) + parameters)
    (folder / "1" / "model.py").write_text(textwrap.dedent(source))
    config = read_config(folder, strict=False)
    complete_config(config, name)
    return InstanceSpec(name, 1, folder, config, config_to_json(config), f"{name}_0_0")


@pytest.fixture
def instances():
    """Process instances made by a test, finalized after it."""
    made: list[PythonProcessInstance] = []
    yield made
    for instance in made:
        instance.finalize()


def start(instances: list, spec: InstanceSpec) -> PythonProcessInstance:
    instance = PythonProcessInstance(spec)
    instances.append(instance)
    return instance


def request(data, datatype: str = "FP32", *, id: str = "", outputs: list[str] | None = None) -> InferRequest:
    array = np.asarray(data)
    req = InferRequest("m", inputs=[InferTensor("INPUT0", datatype, list(array.shape), array)], id=id)
    if outputs is not None:
        req.outputs = [RequestedOutput(name) for name in outputs]
    return req


def dev_shm() -> set[str]:
    """tritonlite's names in /dev/shm (other programs, a reference Triton say, may come and go meanwhile)."""
    return {name for name in os.listdir("/dev/shm") if "tritonlite" in name} if os.path.isdir("/dev/shm") else set()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def memfd_mappings() -> int:
    return Path("/proc/self/maps").read_text().count("memfd:tritonlite-tensors")


def owns_its_memory(array: np.ndarray) -> bool:
    """No mapping (of a shared segment) under the array."""
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return False
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return True


# --- selecting the mode ---------------------------------------------------------------------------


def test_mode_parameter_selects_the_instance_class(tmp_path, instances):
    thread = create_instance("python", make_spec(tmp_path, "t", DOUBLE, mode=None))
    assert type(thread) is PythonInstance
    explicit = create_instance("python", make_spec(tmp_path, "e", DOUBLE, mode="thread"))
    assert type(explicit) is PythonInstance
    process = create_instance("python", make_spec(tmp_path, "p", DOUBLE, mode="process"))
    instances.append(process)
    assert type(process) is PythonProcessInstance
    [response] = process.execute([request([1.0, 2.0])])
    assert int(response.outputs[1].data[0]) == process.pid != os.getpid()


def test_unknown_mode_fails_to_load(tmp_path):
    with pytest.raises(TritonError) as info:
        create_instance("python", make_spec(tmp_path, "m", DOUBLE, mode="fork"))
    assert info.value.kind is ErrorKind.INVALID_ARG
    assert info.value.message == (
        "model 'm': unknown value 'fork' for parameter 'TRITONLITE_INSTANCE_MODE'; "
        "allowed values are 'thread' (the default) and 'process'"
    )


# --- tensors ----------------------------------------------------------------------------------------


def test_big_fp32_tensor_goes_through_shared_memory_and_leaves_nothing(tmp_path):
    shm_before, fds_before = dev_shm(), open_fds() if LINUX else 0
    instance = PythonProcessInstance(make_spec(tmp_path, "m", DOUBLE))
    x = np.random.default_rng(0).random(2 * 1024 * 1024, dtype=np.float32)  # 8 MB
    for _ in range(2):  # the second time reuses both segments
        [response] = instance.execute([request(x, id="big")])
        assert isinstance(response, InferResponse)
        assert response.id == "big"
        assert [(t.name, t.datatype, t.shape) for t in response.outputs] == [
            ("OUTPUT0", "FP32", [2 * 1024 * 1024]),
            ("OUTPUT1", "INT64", [1]),
        ]
        out = response.outputs[0].data
        np.testing.assert_array_equal(out, x * 2)
        assert owns_its_memory(out)
        assert out.flags.writeable
    if LINUX:
        assert memfd_mappings() == 2  # the input went through ours, the outputs through the stub's
    instance.finalize()
    out[0] = 1.0  # still ours after the stub is gone
    np.testing.assert_array_equal(out[1:], x[1:] * 2)
    assert dev_shm() == shm_before
    if LINUX:
        assert memfd_mappings() == 0
        assert open_fds() == fds_before


def test_bytes_tensors(tmp_path, instances):
    config = """
    backend: "python"
    input [{ name: "INPUT0" data_type: TYPE_STRING dims: [ -1 ] }]
    output [{ name: "OUTPUT0" data_type: TYPE_STRING dims: [ -1 ] },
            { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ -1 ] }]
    """
    upper = """
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                text = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                upper = np.array([t.upper() for t in text.reshape(-1)], dtype=np.object_).reshape(text.shape)
                lengths = np.array([len(t) for t in text.reshape(-1)], dtype=np.int32)
                responses.append(pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUTPUT0", upper), pb_utils.Tensor("OUTPUT1", lengths)]))
            return responses
    """
    instance = start(instances, make_spec(tmp_path, "m", upper, config_text=config))
    small = np.array([b"hello", "wörld".encode(), b""], dtype=np.object_)
    big = np.array([b"x" * 1000] * 200, dtype=np.object_)  # 200 KB: still pickled
    first, second = instance.execute([request(small, "BYTES"), request(big, "BYTES")])
    assert first.outputs[0].datatype == "BYTES"
    assert first.outputs[0].data.tolist() == [b"HELLO", "WöRLD".encode(), b""]  # bytes.upper: ASCII only
    assert first.outputs[1].data.tolist() == [5, 6, 0]
    assert second.outputs[0].data.tolist() == [b"X" * 1000] * 200


def test_requested_outputs_and_many_requests(tmp_path, instances):
    spec = make_spec(tmp_path, "m", DOUBLE)
    instance = start(instances, spec)
    responses = instance.execute([request([1.0]), request([5.0], outputs=["OUTPUT0"]), request([9.0])])
    assert [float(r.outputs[0].data[0]) for r in responses] == [2.0, 10.0, 18.0]
    assert [len(r.outputs) for r in responses] == [2, 1, 2]
    in_process = PythonInstance(spec)
    in_process.execute([request([1.0])])
    if any(in_process.timings):  # the stub's measures, plus the trips to and from it
        assert all(ns > 0 for ns in instance.timings)
    else:
        assert instance.timings == (0, 0, 0)


# --- errors: the same as in thread mode ---------------------------------------------------------------


def test_error_responses(tmp_path, instances):
    failing = """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            return [
                pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError("execute failed on purpose")),
                pb_utils.InferenceResponse(error=pb_utils.TritonError("bad", pb_utils.TritonError.INVALID_ARG)),
            ]
    """
    instance = start(instances, make_spec(tmp_path, "m", failing))
    first, second = instance.execute([request([1.0]), request([2.0])])
    assert isinstance(first, TritonError) and isinstance(second, TritonError)
    assert (first.kind, first.message) == (ErrorKind.INTERNAL, "execute failed on purpose")
    assert (second.kind, second.message) == (ErrorKind.INVALID_ARG, "bad")


def test_exception_in_execute_reads_as_in_thread_mode(tmp_path, instances):
    raising = """
    class TritonPythonModel:
        def execute(self, requests):
            raise Exception("boom")
    """
    spec = make_spec(tmp_path, "exec_raises", raising)
    results = start(instances, spec).execute([request([1.0]), request([2.0])])
    expected = (
        "Failed to process the request(s) for model 'exec_raises_0_0', message: Exception: boom\n\nAt:\n"
        f"  {spec.version_path / 'model.py'}(4): execute\n"
    )
    assert [(e.kind, e.message) for e in results] == [(ErrorKind.INTERNAL, expected)] * 2
    thread_results = PythonInstance(spec).execute([request([1.0]), request([2.0])])
    assert [(e.kind, e.message) for e in thread_results] == [(e.kind, e.message) for e in results]


@pytest.mark.parametrize(
    "source",
    [
        "class TritonPythonModel:\n    def initialize(self, args):\n        raise Exception('initialize failed')\n",
        "import no_such_module_anywhere\n",
        "x = 1\n",
    ],
    ids=["initialize-raises", "import-fails", "no-class"],
)
def test_initialize_failure_is_the_thread_mode_error(tmp_path, source):
    spec = make_spec(tmp_path, "init_fails", source)
    with pytest.raises(TritonError) as in_process:
        PythonInstance(spec)
    with pytest.raises(TritonError) as in_stub:
        PythonProcessInstance(spec)
    assert (in_stub.value.kind, in_stub.value.message) == (in_process.value.kind, in_process.value.message)


def test_stub_dying_in_initialize(tmp_path):
    source = "import os\n\n\nclass TritonPythonModel:\n    def initialize(self, args):\n        os._exit(5)\n"
    with pytest.raises(TritonError) as info:
        PythonProcessInstance(make_spec(tmp_path, "m", source))
    assert info.value.kind is ErrorKind.INTERNAL
    assert info.value.message == ("Failed to initialize stub, stub process exited unexpectedly: m_0_0 (exit status 5)")


# --- crash isolation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", [-1.0, -2.0], ids=["os._exit", "segfault"])
def test_crash_fails_the_requests_in_flight_then_recovers(tmp_path, instances, trigger):
    instance = start(instances, make_spec(tmp_path, "crashy", DOUBLE))
    first_pid = instance.pid
    results = instance.execute([request([trigger]), request([1.0])])
    message = (
        "Failed to process the request(s) for model 'crashy_0_0', message: Stub process 'crashy_0_0' is not healthy."
    )
    # UNAVAILABLE (Triton 2.51 answers INTERNAL): the request may be sent again once the instance restarted
    assert [(r.kind, r.message) for r in results] == [(ErrorKind.UNAVAILABLE, message)] * 2
    assert instance.pid is None
    [response] = instance.execute([request([4.0])])  # a fresh stub, initialized again
    assert float(response.outputs[0].data[0]) == 8.0
    assert int(response.outputs[1].data[0]) == instance.pid != first_pid


def test_stub_killed_while_idle_is_restarted_before_the_next_request(tmp_path, instances):
    instance = start(instances, make_spec(tmp_path, "m", DOUBLE))
    first_pid = instance.pid
    os.kill(first_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while instance._stub.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    [response] = instance.execute([request([1.0])])
    assert isinstance(response, InferResponse)
    assert int(response.outputs[1].data[0]) == instance.pid != first_pid


def test_restart_that_fails_answers_with_the_initialize_error(tmp_path, instances):
    # initialize fails from the second start on: the model leaves a marker file the first time
    source = """
    from pathlib import Path
    import os


    class TritonPythonModel:
        def initialize(self, args):
            marker = Path(args["model_repository"]) / "started"
            if marker.exists():
                raise Exception("second start")
            marker.write_text("yes")

        def execute(self, requests):
            os._exit(1)
    """
    spec = make_spec(tmp_path, "m", source)
    instance = start(instances, spec)
    [crashed] = instance.execute([request([1.0])])
    assert crashed.message.endswith("Stub process 'm_0_0' is not healthy.")
    [error] = instance.execute([request([1.0])])
    with pytest.raises(TritonError) as in_process:
        PythonInstance(spec)
    assert in_process.value.message.startswith("Exception: second start\n\nAt:\n")
    assert error.kind is ErrorKind.INTERNAL
    assert error.message == f"Failed to restart the stub process of model 'm_0_0': {in_process.value.message}"


# --- finalize -------------------------------------------------------------------------------------------

FINALIZING = """
from pathlib import Path

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.marker = Path(args["model_repository"]) / "finalized"

    def execute(self, requests):
        return [pb_utils.InferenceResponse([]) for _ in requests]

    def finalize(self):
        self.marker.write_text("done")
"""


def test_finalize_runs_the_models_finalize_and_ends_the_stub(tmp_path):
    instance = PythonProcessInstance(make_spec(tmp_path, "m", FINALIZING))
    proc = instance._stub.proc
    instance.finalize()
    assert (tmp_path / "m" / "finalized").read_text() == "done"
    assert proc.returncode == 0
    instance.finalize()  # twice is fine


def test_interpreter_exit_finalizes_the_stub(tmp_path):
    script = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_process_instance import make_spec
from tritonlite.backends.python.process_instance import PythonProcessInstance
instance = PythonProcessInstance(make_spec(Path({str(tmp_path / "again")!r}), "m", {FINALIZING!r}))
print(instance.pid)
"""
    (tmp_path / "again").mkdir()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again" / "m" / "finalized").read_text() == "done"
    stub_pid = int(done.stdout.strip())
    with pytest.raises(ProcessLookupError):  # gone, not orphaned
        os.kill(stub_pid, 0)


# --- BLS from a stub ------------------------------------------------------------------------------------


def test_bls_runs_through_tritonlite(tmp_path, instances, monkeypatch):
    calls = []

    def executor(pb_request, decoupled):
        calls.append((pb_request.model_name(), [t.name() for t in pb_request.inputs()], decoupled))
        x = pb_request.inputs()[0].as_numpy()
        return pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x + 1)])

    source = """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                call = pb_utils.InferenceRequest(
                    model_name="other", requested_output_names=["OUTPUT0"], inputs=[pb_utils.Tensor("IN", x)]
                )
                answer = call.exec()
                responses.append(pb_utils.InferenceResponse([pb_utils.get_output_tensor_by_name(answer, "OUTPUT0")]))
            return responses
    """
    monkeypatch.setattr(pb_utils, "_bls_executor", executor)
    instance = start(instances, make_spec(tmp_path, "m", source))
    x = np.arange(100_000, dtype=np.float32)  # large both ways
    [response] = instance.execute([request(x)])
    np.testing.assert_array_equal(response.outputs[0].data, x + 1)
    assert calls == [("other", ["IN"], False)]

    monkeypatch.setattr(pb_utils, "_bls_executor", None)
    [error] = instance.execute([request(x)])
    assert "TritonModelException: BLS requests can only be executed inside a running server" in error.message


# --- parallelism ----------------------------------------------------------------------------------------

SPAN = """
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        seconds = float(pb_utils.get_input_tensor_by_name(requests[0], "INPUT0").as_numpy()[0])
        began = time.time_ns()
        total = 0
        while time.time_ns() - began < seconds * 1e9:  # pure-Python work: holds this process's GIL throughout
            total += 1
        span = np.array([os.getpid(), began, time.time_ns()], np.int64)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT1", span)]) for _ in requests]
"""


def test_two_process_instances_run_at_the_same_time_in_their_own_processes(tmp_path, instances):
    """Each instance is its own process (its own GIL), and the parent never serializes their executes:
    two busy executes overlap in time. (Checked by pid and overlap, not by timing, so a busy machine
    cannot fail it.)"""
    spec = make_spec(tmp_path, "busy", SPAN)
    first, second = start(instances, spec), start(instances, spec)
    spans = {}

    def run(name, instance):
        [response] = instance.execute([request([0.4])])
        assert isinstance(response, InferResponse)
        spans[name] = response.outputs[0].data

    threads = [threading.Thread(target=run, args=pair) for pair in (("first", first), ("second", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (pid1, start1, end1), (pid2, start2, end2) = spans["first"], spans["second"]
    assert len({int(pid1), int(pid2), os.getpid()}) == 3
    overlap = (min(end1, end2) - max(start1, start2)) / 1e9
    assert overlap > 0.2, f"the two executes overlapped for {overlap:.3f} s of 0.4 s"


# --- the channel ------------------------------------------------------------------------------------------


@pytest.fixture
def channel_pair():
    a, b = socket.socketpair()
    parent, child = ipc.Channel(a, alive=lambda: True), ipc.Channel(b)
    yield parent, child
    parent.close()
    child.close()


def test_channel_round_trips_arrays_of_every_kind(channel_pair):
    parent, child = channel_pair
    rng = np.random.default_rng(1)
    big = rng.random((512, 256))  # 1 MB
    message = {
        "big": big,
        "transposed": big.T,
        "strided": big[:, ::2],
        "readonly": np.frombuffer(bytes(200_000), np.uint8),
        "bool": rng.random(100_000) > 0.5,
        "fp16": rng.random(70_000).astype(np.float16),
        "small": np.arange(4, dtype=np.int32),
        "object": np.array([b"a", b"bc"], dtype=np.object_),
        "error": TritonError(ErrorKind.NOT_FOUND, "missing"),
    }
    sender = threading.Thread(target=parent.send, args=(("arrays", message),))  # strided is pickled: 512 KB
    sender.start()
    kind, got = child.recv()
    sender.join()
    assert kind == "arrays"
    for key in ("big", "transposed", "strided", "readonly", "bool", "fp16", "small", "object"):
        assert got[key].dtype == message[key].dtype
        np.testing.assert_array_equal(got[key], message[key])
        assert owns_its_memory(got[key])
    assert not got["readonly"].flags.writeable  # as the sender had it
    assert (got["error"].kind, got["error"].message) == (ErrorKind.NOT_FOUND, "missing")


def test_channel_reuses_its_segment_grows_it_and_drops_huge_ones(channel_pair, monkeypatch):
    parent, child = channel_pair
    monkeypatch.setattr(ipc, "RETAIN_MAX", 16 * 1024 * 1024)
    sizes = [1 << 18, 1 << 18, 1 << 20, 3 << 20, 1 << 18]  # float64 counts: 2, 2, 8, 24 (single use), 2 MB
    segments, mapped = [], []
    for index, count in enumerate(sizes):
        value = np.full(count, index, dtype=np.float64)
        parent.send(("value", value))
        kind, got = child.recv()
        np.testing.assert_array_equal(got, value)
        segments.append(parent._out)
        mapped.append(child._in)
        child.send(("ack",))  # strict turns, as between tritonlite and a stub
        assert parent.recv() == ("ack",)
    assert segments[0] is segments[1]  # reused
    assert segments[2] is not segments[1] and segments[2].size == 8 << 20
    assert segments[3] is None and mapped[3] is None  # over RETAIN_MAX: used once, dropped on both sides
    assert segments[4].size == 2 << 20
    assert mapped[0] is mapped[1] and mapped[2] is not mapped[1] and mapped[4].size == 2 << 20


def test_channel_notices_a_dead_peer(monkeypatch):
    monkeypatch.setattr(ipc, "_POLL_MS", 10)
    a, b = socket.socketpair()
    alive = [True]
    parent = ipc.Channel(a, alive=lambda: alive[0])
    b.close()
    with pytest.raises(ipc.ChannelClosed):
        parent.recv()
    parent.close()

    a, b = socket.socketpair()
    parent = ipc.Channel(a, alive=lambda: alive[0])
    alive[0] = False  # the process is gone though a descendant still holds the socket
    with pytest.raises(ipc.ChannelClosed):
        parent.recv()
    parent.close()
    b.close()


def test_channel_message_that_does_not_unpickle_keeps_the_channel_in_step(channel_pair, monkeypatch):
    parent, child = channel_pair
    module = types.ModuleType("only_on_the_sending_side")
    thing = type("Thing", (), {"__module__": module.__name__})
    module.Thing = thing
    monkeypatch.setitem(sys.modules, module.__name__, module)
    child.send(("results", thing()))
    monkeypatch.delitem(sys.modules, module.__name__)
    with pytest.raises(ipc.UnreadableMessage) as info:
        parent.recv()
    assert info.value.kind == "results"
    assert str(info.value) == "ModuleNotFoundError: No module named 'only_on_the_sending_side'"
    child.send(("next", np.ones(100_000)))
    kind, value = parent.recv()
    assert kind == "next" and value.sum() == 100_000


def test_outputs_that_do_not_cross_the_process_boundary(tmp_path, instances):
    source = """
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class Thing:
        pass


    class TritonPythonModel:
        def execute(self, requests):
            x = pb_utils.get_input_tensor_by_name(requests[0], "INPUT0").as_numpy()
            value = {1: lambda: 1, 2: Thing()}.get(int(x[0]))
            out = np.array([value], dtype=np.object_) if value is not None else x
            return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", out)]) for _ in requests]
    """
    instance = start(instances, make_spec(tmp_path, "odd", source))
    pid = instance.pid
    [unpicklable] = instance.execute([request([1.0])])
    assert unpicklable.kind is ErrorKind.INTERNAL
    assert unpicklable.message.startswith(
        "Failed to pass the response(s) of model 'odd_0_0' out of its stub process: AttributeError: Can't pickle"
    )
    [unknown_here] = instance.execute([request([2.0])])
    assert unknown_here.message.startswith(
        "Failed to read the response(s) of model 'odd_0_0' from its stub process: ModuleNotFoundError"
    )
    [fine] = instance.execute([request([3.0])])
    assert float(fine.outputs[0].data[0]) == 3.0
    assert instance.pid == pid  # neither broke the stub


# --- through a running server -------------------------------------------------------------------------


def test_process_mode_through_the_server(tmp_path):
    import requests
    from conftest import EXAMPLES, write_bls_model
    from serverutil import RunningServer

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(EXAMPLES / "add_sub", repo / "add_sub")
    write_bls_model(repo)  # BLS to add_sub, in process mode here
    with open(repo / "bls_double" / "config.pbtxt", "a") as config:
        config.write(PROCESS_MODE + "instance_group [{ count: 2 kind: KIND_CPU }]\n")
    make_spec(repo, "crashy", DOUBLE)
    server = RunningServer([repo])
    try:

        def infer(model: str, data: list[float]) -> requests.Response:
            body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [len(data)], "data": data}]}
            return requests.post(f"http://{server.http}/v2/models/{model}/infer", json=body, timeout=30)

        deadline = time.monotonic() + 30
        while infer("crashy", [1.0]).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        doubled = infer("bls_double", [1.0, 2.0, 3.0, 4.0])
        assert doubled.status_code == 200, doubled.text
        assert doubled.json()["outputs"][0]["data"] == [2.0, 4.0, 6.0, 8.0]  # add_sub ran in the server

        first_pid = infer("crashy", [1.0]).json()["outputs"][1]["data"][0]
        crashed = infer("crashy", [-1.0])
        assert crashed.status_code == 503  # Triton 2.51: 500; UNAVAILABLE tells the client it may retry
        assert crashed.json() == {
            "error": "Failed to process the request(s) for model 'crashy_0', message: "
            "Stub process 'crashy_0' is not healthy."
        }
        again = infer("crashy", [2.0])
        assert again.status_code == 200, again.text
        assert again.json()["outputs"][0]["data"] == [4.0]
        second_pid = again.json()["outputs"][1]["data"][0]
        assert second_pid != first_pid
    finally:
        assert server.stop() == 0
    with pytest.raises(ProcessLookupError):  # the server ended its stub when it stopped
        os.kill(second_pid, 0)
