"""Ensembles: Triton's validation texts, the step graph, members, batching, statistics, readiness.

The error texts were captured from Triton 2.51 (CPU build, python backend) with the configs below.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferTensor, RequestedOutput
from tritonlite.models.manager import ModelManager
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.ensemble import Member, validate_ensemble_config, validate_ensemble_members

UNARY = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import json
        params = json.loads(args["model_config"]).get("parameters", {})
        self.sleep = float(params.get("SLEEP_S", {}).get("string_value", "0"))

    def execute(self, requests):
        time.sleep(self.sleep)
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", (x {op}).astype(x.dtype))]))
        return out
"""

UPPER = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "TEXT").as_numpy()
            up = np.array([v.upper() for v in x.reshape(-1)], dtype=np.object_).reshape(x.shape)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("UPPER", up)]))
        return out
"""


def unary(root: Path, name: str, op: str, dtype="TYPE_FP32", dims="[ 4 ]", mbs=0, extra="", sleep=0.0) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(UNARY.replace("{op}", op))
    (folder / "config.pbtxt").write_text(
        f'backend: "python"\nmax_batch_size: {mbs}\n'
        f'input [{{ name: "INPUT0" data_type: {dtype} dims: {dims} }}]\n'
        f'output [{{ name: "OUTPUT0" data_type: {dtype} dims: {dims} }}]\n'
        f'parameters {{ key: "SLEEP_S" value: {{ string_value: "{sleep}" }} }}\n{extra}'
    )


def step(model: str, inputs: dict, outputs: dict, version: int = -1) -> str:
    imap = " ".join(f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
    omap = " ".join(f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
    return f'step [{{ model_name: "{model}" model_version: {version} {imap} {omap} }}]\n'


def io(inputs: str = "IN:TYPE_FP32:4", outputs: str = "OUT:TYPE_FP32:4") -> str:
    """Ensemble inputs and outputs from "NAME:TYPE:DIMS,..." lists."""

    def tensors(spec: str) -> str:
        parts = [item.split(":") for item in spec.split(",")]
        return ", ".join(f'{{ name: "{n}" data_type: {t} dims: [ {d} ] }}' for n, t, d in parts)

    return f"input [{tensors(inputs)}]\noutput [{tensors(outputs)}]\n"


IO = io()


def ensemble_text(name: str, steps: str, io: str = IO, mbs: int = 0, extra: str = "") -> str:
    return (
        f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: {mbs}\n{io}ensemble_scheduling {{\n{steps}}}\n{extra}'
    )


def write_ensemble(root: Path, name: str, steps: str, io: str = IO, mbs: int = 0) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(ensemble_text(name, steps, io, mbs))


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


# --- the config alone ---------------------------------------------------------------------------------

CONFIG_CASES = [
    (
        "cycle",
        step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "A"})
        + step("double", {"INPUT0": "B"}, {"OUTPUT0": "C"})
        + step("add1", {"INPUT0": "C"}, {"OUTPUT0": "B"})
        + step("double", {"INPUT0": "A"}, {"OUTPUT0": "OUT"}),
        IO,
        "ensemble tensor 'B' is unused in ensemble 'cycle'",
    ),
    (
        "twice",
        step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}) + step("double", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}),
        IO,
        "ensemble tensor 'OUT' can appear in an output map only once for ensemble 'twice' step 1",
    ),
    (
        "unused_input",
        step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}),
        io(inputs="IN:TYPE_FP32:4,EXTRA:TYPE_FP32:4"),
        "ensemble input 'EXTRA' for ensemble unused_input' is not used",
    ),
    (
        "missing_output",
        step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}),
        io(outputs="OUT:TYPE_FP32:4,OUT2:TYPE_FP32:4"),
        "ensemble output 'OUT2' for ensemble missing_output' is not used",
    ),
    (
        "missing_input",
        step("add1", {"INPUT0": "NOT_THERE"}, {"OUTPUT0": "OUT"}),
        IO,
        "ensemble input 'IN' for ensemble missing_input' is not used",
    ),
    ("no_steps", "", IO, "must specify 'step' for ensemble 'no_steps'"),
    (
        "not_written",
        step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "MID"})
        + step("double", {"INPUT0": "MID"}, {"OUTPUT0": "X"})
        + step("add1", {"INPUT0": "X", "INPUT1": "GHOST"}, {"OUTPUT0": "OUT"}),
        IO,
        "output 'OUT' for ensemble 'not_written' is not written",
    ),
]


@pytest.mark.parametrize(("name", "steps", "io", "message"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_errors_are_tritons(name, steps, io, message):
    with pytest.raises(TritonError) as caught:
        validate_ensemble_config(parse(ensemble_text(name, steps, io)))
    assert caught.value.kind == ErrorKind.INVALID_ARG
    assert caught.value.message == message


def test_ensemble_fields_that_triton_refuses():
    ok = step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"})
    cases = {
        "optimization { input_pinned_memory { enable: true } }": "optimization should not be specified for "
        "ensemble 'e'",
        "instance_group [{ count: 1 }]": "instance group should not be specified for ensemble 'e'",
    }
    for extra, message in cases.items():
        with pytest.raises(TritonError, match="^" + message + "$"):
            validate_ensemble_config(parse(ensemble_text("e", ok, extra=extra)))
    plain = parse('name: "p"\nbackend: "python"\nensemble_scheduling { ' + ok + "}")
    with pytest.raises(TritonError, match="ensemble scheduling cannot be set for model 'p' whose platform is not"):
        validate_ensemble_config(plain)


# --- against the members --------------------------------------------------------------------------------


def member(text: str, versions=(1,)) -> Member:
    return Member(parse(text), list(versions))


def io_member(name: str, dtype="TYPE_FP32", dims="[ 4 ]", mbs=0, decoupled=False) -> Member:
    policy = "model_transaction_policy { decoupled: true }" if decoupled else ""
    return member(
        f'name: "{name}" backend: "python" max_batch_size: {mbs} {policy}'
        f'input [{{ name: "INPUT0" data_type: {dtype} dims: {dims} }}]'
        f'output [{{ name: "OUTPUT0" data_type: {dtype} dims: {dims} }}]'
    )


MEMBERS = {
    "add1": io_member("add1"),
    "add1_int": io_member("add1_int", dtype="TYPE_INT32"),
    "add1_8": io_member("add1_8", dims="[ 8 ]"),
    "add1_b": io_member("add1_b", mbs=8),
    "double_b": io_member("double_b", mbs=4),
    "repeat": io_member("repeat", decoupled=True),
    "nope": None,
}

MEMBER_CASES = [
    ("unknown", step("nope", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}), IO, 0,
     "ensemble unknown contains models that are not available or ambiguous: nope"),
    ("bad_key", step("add1", {"WRONG": "IN"}, {"OUTPUT0": "OUT"}), IO, 0,
     "in ensemble bad_key, ensemble tensor IN is mapping to non-existing input WRONG in model add1"),
    ("bad_out_key", step("add1", {"INPUT0": "IN"}, {"WRONG": "OUT"}), IO, 0,
     "in ensemble bad_out_key, ensemble tensor OUT is mapped from non-existing output WRONG in model add1"),
    ("dtype",
     step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "MID"}) + step("add1_int", {"INPUT0": "MID"}, {"OUTPUT0": "OUT"}),
     io(outputs="OUT:TYPE_INT32:4"),
     0, "in ensemble dtype, ensemble tensor MID: inconsistent data type: TYPE_FP32 is inferred from model add1 while "
     "TYPE_INT32 is inferred from model add1_int"),
    ("io_dtype", step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}),
     io(inputs="IN:TYPE_INT32:4"),
     0, "in ensemble io_dtype, ensemble tensor IN: inconsistent data type: TYPE_INT32 is inferred from model io_dtype "
     "while TYPE_FP32 is inferred from model add1"),
    ("shape",
     step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "MID"}) + step("add1_8", {"INPUT0": "MID"}, {"OUTPUT0": "OUT"}),
     io(outputs="OUT:TYPE_FP32:8"),
     0, "in ensemble shape, ensemble tensor MID: inconsistent shape: [4] is inferred from model add1 while [8] is "
     "inferred from model add1_8"),
    ("mbs",
     step("add1_b", {"INPUT0": "IN"}, {"OUTPUT0": "MID"}) + step("double_b", {"INPUT0": "MID"}, {"OUTPUT0": "OUT"}),
     IO, 8, "ensemble mbs allows maximum batch size 8, but it contains model double_b which only allows maximum batch "
     "size to be 4"),
    ("version", step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}, version=7), IO, 0,
     "ensemble 'version' depends on 'add1' whose required version 7 is not loaded."),
]  # fmt: skip


@pytest.mark.parametrize(("name", "steps", "io", "mbs", "message"), MEMBER_CASES, ids=[c[0] for c in MEMBER_CASES])
def test_member_errors_are_tritons(name, steps, io, mbs, message):
    config = parse(ensemble_text(name, steps, io, mbs))
    validate_ensemble_config(config)
    with pytest.raises(TritonError) as caught:
        validate_ensemble_members(config, MEMBERS)
    assert (caught.value.kind, caught.value.message) == (ErrorKind.INVALID_ARG, message)


def test_valid_ensembles_and_the_decoupled_flag():
    chain = parse(ensemble_text("ok", step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"})))
    assert validate_ensemble_members(chain, MEMBERS) is False
    batched = parse(ensemble_text("b", step("add1_b", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}), mbs=4))
    assert validate_ensemble_members(batched, MEMBERS) is False
    streaming = parse(ensemble_text("s", step("repeat", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"})))
    assert validate_ensemble_members(streaming, MEMBERS) is True  # Triton marks it decoupled


# --- through the manager -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ensembles")
    unary(root, "add1", "+ 1")
    unary(root, "double", "* 2")
    unary(root, "slow_a", "* 10", sleep=0.4)
    unary(root, "slow_b", "+ 100", sleep=0.4)
    unary(root, "add1_b", "+ 1", mbs=8, extra="dynamic_batching { max_queue_delay_microseconds: 50000 }")
    folder = root / "upper"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(UPPER)
    (folder / "config.pbtxt").write_text(
        'backend: "python"\ninput [{ name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] }]\n'
        'output [{ name: "UPPER" data_type: TYPE_STRING dims: [ -1 ] }]\n'
    )
    write_ensemble(
        root,
        "chain",
        step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "MID"}) + step("double", {"INPUT0": "MID"}, {"OUTPUT0": "OUT"}),
    )
    write_ensemble(
        root,
        "fork",
        step("add1", {"INPUT0": "IN"}, {"OUTPUT0": "MID"})
        + step("slow_a", {"INPUT0": "MID"}, {"OUTPUT0": "A"})
        + step("slow_b", {"INPUT0": "MID"}, {"OUTPUT0": "B"}),
        io(outputs="A:TYPE_FP32:4,B:TYPE_FP32:4"),
    )
    write_ensemble(root, "nested", step("chain", {"IN": "IN"}, {"OUT": "OUT"}))
    write_ensemble(root, "batched", step("add1_b", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}), mbs=8)
    write_ensemble(
        root,
        "shout",
        step("upper", {"TEXT": "T"}, {"UPPER": "U"}) + step("upper", {"TEXT": "U"}, {"UPPER": "U2"}),
        io(inputs="T:TYPE_STRING:-1", outputs="U2:TYPE_STRING:-1"),
    )
    unary(root, "fails", "+ undefined_name")
    write_ensemble(root, "failing", step("fails", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}))
    write_ensemble(root, "broken", step("nope", {"INPUT0": "IN"}, {"OUTPUT0": "OUT"}))
    write_ensemble(root, "on_broken", step("broken", {"IN": "IN"}, {"OUT": "OUT"}))
    return root


def fp32(name: str, values) -> InferTensor:
    data = np.asarray(values, np.float32)
    return InferTensor(name, "FP32", list(data.shape), data)


def with_manager(repo: Path, body):
    async def go():
        manager = ModelManager([repo])
        await manager.load_all()
        try:
            return await body(manager)
        finally:
            await manager.shutdown()

    return asyncio.run(go())


def test_steps_run_in_order_and_branches_overlap(repo):
    async def body(manager: ModelManager):
        chain = await manager.get("chain").infer(InferRequest("chain", inputs=[fp32("IN", [1, 2, 3, 4])]))
        nested = await manager.get("nested").infer(InferRequest("nested", inputs=[fp32("IN", [1, 2, 3, 4])]))
        started = time.monotonic()
        fork = await manager.get("fork").infer(InferRequest("fork", inputs=[fp32("IN", [0, 1, 2, 3])]))
        return chain, nested, fork, time.monotonic() - started

    chain, nested, fork, elapsed = with_manager(repo, body)
    np.testing.assert_array_equal(chain.outputs[0].data, [4, 6, 8, 10])
    assert chain.parameters == {"sequence_id": 0, "sequence_start": False, "sequence_end": False}
    np.testing.assert_array_equal(nested.outputs[0].data, [4, 6, 8, 10])
    outputs = {t.name: t.data for t in fork.outputs}
    np.testing.assert_array_equal(outputs["A"], [10, 20, 30, 40])
    np.testing.assert_array_equal(outputs["B"], [101, 102, 103, 104])
    assert elapsed < 0.8, elapsed  # two 0.4 s branches side by side: one after the other takes 0.8 s at least


def test_bytes_batches_requested_outputs_and_statistics(repo):
    async def body(manager: ModelManager):
        text = np.array([b"ab", "wörld".encode()], dtype=object)
        shout = await manager.get("shout").infer(InferRequest("shout", inputs=[InferTensor("T", "BYTES", [2], text)]))
        only_b = InferRequest("fork", inputs=[fp32("IN", [0, 0, 0, 0])], outputs=[RequestedOutput("B")])
        only_b = await manager.get("fork").infer(only_b)
        calls = [
            manager.get("batched").infer(InferRequest("batched", inputs=[fp32("IN", np.full((2, 4), i))]))
            for i in range(4)
        ]
        batched = await asyncio.gather(*calls)
        stats = {name: manager.get(name).stats for name in ("batched", "add1_b", "chain", "add1")}
        return shout, only_b, batched, stats

    shout, only_b, batched, stats = with_manager(repo, body)
    assert list(shout.outputs[0].data) == [b"AB", "wörld".encode().upper()]  # bytes pass through untouched
    assert [t.name for t in only_b.outputs] == ["B"]
    for i, response in enumerate(batched):
        np.testing.assert_array_equal(response.outputs[0].data, np.full((2, 4), i + 1))
    assert stats["batched"].success.count == 4 and stats["batched"].inference_count == 8
    assert stats["add1_b"].success.count == 4 and stats["add1_b"].execution_count < 4  # batched in the member


def test_errors_of_members_name_the_ensemble(repo):
    async def body(manager: ModelManager):
        errors = []
        for name, values in (("chain", [1, 2, 3]), ("failing", [1, 2, 3, 4])):
            with pytest.raises(TritonError) as caught:
                await manager.get(name).infer(InferRequest(name, inputs=[fp32("IN", values)]))
            errors.append(caught.value)
        return errors, manager.get("failing").stats

    (shape, failed), stats = with_manager(repo, body)
    assert shape.message.startswith("[request id: <id_unknown>] unexpected shape for input 'IN' for model 'chain'")
    assert failed.kind == ErrorKind.INTERNAL
    assert failed.message.startswith(
        "in ensemble 'failing', Failed to process the request(s) for model 'fails_0', message: NameError"
    )
    assert stats.fail.count == 1 and stats.failures["BACKEND"] == 1


def test_refused_ensembles_are_unavailable_with_the_reason(repo):
    async def body(manager: ModelManager):
        return {row["name"]: row for row in manager.index()}

    rows = with_manager(repo, body)
    assert rows["broken"] == {
        "name": "broken",
        "state": "UNAVAILABLE",
        "reason": "ensemble broken contains models that are not available or ambiguous: nope",
    }
    assert (
        rows["on_broken"]["reason"] == "ensemble on_broken contains models that are not available or ambiguous: broken"
    )
    assert rows["chain"]["state"] == rows["nested"]["state"] == "READY"


def test_unloading_a_member_unloads_its_ensembles_and_loading_it_brings_them_back(repo):
    async def body(manager: ModelManager):
        await manager.unload_model("add1")
        gone = {row["name"]: row for row in manager.index()}
        with pytest.raises(TritonError) as caught:
            manager.get("chain")
        source = manager.models["add1"].source
        await manager.load_model("add1", source=source)
        back = await manager.get("nested").infer(InferRequest("nested", inputs=[fp32("IN", [0, 0, 0, 0])]))
        return gone, caught.value, back

    gone, error, back = with_manager(repo, body)
    for name in ("add1", "chain", "nested", "fork"):
        assert (gone[name]["state"], gone[name]["reason"]) == ("UNAVAILABLE", "unloaded"), name
    assert error.message == "Request for unknown model: 'chain' has no available versions"
    np.testing.assert_array_equal(back.outputs[0].data, [2, 2, 2, 2])


def test_ensemble_config_as_triton_shows_it(repo):
    async def body(manager: ModelManager):
        return manager.get("chain").config_json

    config = with_manager(repo, body)
    assert "optimization" not in config and config["instance_group"] == []
    assert config["platform"] == "ensemble" and config["model_transaction_policy"] == {"decoupled": False}


def test_loading_only_an_ensemble_loads_its_members_first(repo):
    async def go():
        manager = ModelManager([repo])
        await manager.load_all(only=["nested"])
        try:
            response = await manager.get("nested").infer(InferRequest("nested", inputs=[fp32("IN", [0, 1, 0, 1])]))
            return sorted(name for name in manager.models if manager.is_ready(name)), response
        finally:
            await manager.shutdown()

    ready, response = asyncio.run(go())
    assert ready == ["add1", "chain", "double", "nested"]
    np.testing.assert_array_equal(response.outputs[0].data, [2, 4, 2, 4])
