"""The sequence batcher against fake instances: slots, controls, state, backlog, idle, Triton's errors.

The error texts and the batch shapes (null requests in the direct strategy, control tensor types and
shapes) were checked against Triton 2.51 with python models.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from google.protobuf import text_format

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.repository.config import complete_config
from tritonlite.scheduling.sequence_batcher import SequenceBatcher, SequenceSettings

CONTROLS = """
  control_input [
    { name: "START" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }] },
    { name: "END" control [{ kind: CONTROL_SEQUENCE_END fp32_false_true: [ 0, 1 ] }] },
    { name: "READY" control [{ kind: CONTROL_SEQUENCE_READY bool_false_true: [ false, true ] }] },
    { name: "CORRID" control [{ kind: CONTROL_SEQUENCE_CORRID data_type: %s }] }
  ]
"""


def config(mbs: int = 4, batching: str = "direct { }", corrid: str = "TYPE_UINT64", controls: bool = True, extra=""):
    text = (
        f'name: "acc"\nbackend: "python"\nmax_batch_size: {mbs}\n'
        'input [{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        'output [{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        f"sequence_batching {{ {batching} {CONTROLS % corrid if controls else ''} {extra} }}\n"
    )
    parsed = text_format.Parse(text, mc.ModelConfig())
    complete_config(parsed, "acc")
    return parsed


class FakeRunner:
    """Records each batch (a list of dicts describing every request) and answers with INPUT."""

    def __init__(self, delay: float = 0.0, state_output: str = "") -> None:
        self.batches: list[list[dict]] = []
        self.delay = delay
        self.state_output = state_output
        self.last_timings = (0, 0, 0)

    async def execute(self, requests):
        seen = []
        results = []
        for request in requests:
            tensors = {t.name: t for t in request.inputs}
            seen.append(
                {
                    "corrid": request.correlation_id,
                    "names": sorted(tensors),
                    **{name: (t.datatype, t.shape, t.data.reshape(-1).tolist()) for name, t in tensors.items()},
                }
            )
            value = tensors["INPUT"].data
            outputs = [InferTensor("OUTPUT", "INT32", list(value.shape), value)]
            if self.state_output:
                state = tensors["STATE_IN"].data + value.reshape(tensors["STATE_IN"].data.shape)
                outputs = [InferTensor("OUTPUT", "INT32", list(state.shape), state)]
                outputs.append(InferTensor(self.state_output, "INT32", list(state.shape), state))
            results.append(InferResponse(request.model_name, "1", request.id, outputs))
        self.batches.append(seen)
        if self.delay:
            await asyncio.sleep(self.delay)
        return results

    async def stop(self):
        pass


def request(value: int, corrid, start=False, end=False, batched=True, timeout_us=0) -> InferRequest:
    data = np.array([[value]] if batched else [value], np.int32)
    r = InferRequest("acc", inputs=[InferTensor("INPUT", "INT32", list(data.shape), data)])
    r.correlation_id = corrid
    r.flags = (1 if start else 0) | (2 if end else 0)
    r.timeout_us = timeout_us
    return r


def value_of(result) -> int:
    assert isinstance(result, InferResponse), result
    return int(np.asarray(result.outputs[0].data).reshape(-1)[0])


def run(body, *runners, **kwargs):
    async def go():
        batcher = SequenceBatcher(list(runners), kwargs.pop("cfg", None) or config(), **kwargs)
        try:
            return await body(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(go())


# --- refusals ----------------------------------------------------------------------------------------


def test_tritons_refusals():
    async def body(batcher: SequenceBatcher):
        errors = []
        for r in (
            request(1, 0),
            request(1, ""),
            request(1, 0, start=True),
            request(1, 99),
            request(1, "zzz", end=True),
            InferRequest("acc", inputs=[InferTensor("INPUT", "INT32", [2, 1], np.zeros((2, 1), np.int32))]),
        ):
            if r.inputs[0].shape == [2, 1]:
                r.correlation_id, r.flags = 5, 1
            with pytest.raises(TritonError) as caught:
                await batcher.enqueue(r)
            errors.append((caught.value.kind, caught.value.message))
        return errors

    errors = run(body, FakeRunner())
    no_id = "inference request to model 'acc' must specify a non-zero or non-empty correlation ID"
    assert errors == [
        (ErrorKind.INVALID_ARG, no_id),
        (ErrorKind.INVALID_ARG, no_id),
        (ErrorKind.INVALID_ARG, no_id),
        (
            ErrorKind.INVALID_ARG,
            "inference request for sequence 99 to model 'acc' must specify the START flag on the first request of "
            "the sequence",
        ),
        (
            ErrorKind.INVALID_ARG,
            "inference request for sequence zzz to model 'acc' must specify the START flag on the first request of "
            "the sequence",
        ),
        (
            ErrorKind.INVALID_ARG,
            "inference request to model 'acc' must specify batch-size 1 due to requirements of sequence batcher",
        ),
    ]


def test_a_sequence_is_known_as_soon_as_its_start_is_enqueued():
    """Requests of a stream read together are enqueued with no turn of the loop between them: the one
    after a START must find its sequence at once."""

    async def body(batcher: SequenceBatcher):
        first = batcher.enqueue(request(1, 7, start=True))
        batcher.check(request(2, 7))  # raises "must specify the START flag" if 7 were not known yet
        second = batcher.enqueue(request(2, 7, end=True))
        return [value_of(await first), value_of(await second)]

    assert run(body, FakeRunner()) == [1, 2]


@pytest.mark.parametrize(
    ("controls", "message"),
    [
        (
            'control_input [{ name: "S" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] }] },'
            ' { name: "S2" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] }] }]',
            "sequence batching specifies multiple CONTROL_SEQUENCE_START tensors for acc",
        ),
        (
            'control_input [{ name: "S" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] }] },'
            ' { name: "S" control [{ kind: CONTROL_SEQUENCE_END int32_false_true: [0, 1] }] }]',
            "sequence batching control tensor 'S' is specified for multiple control kinds for acc",
        ),
        (
            'control_input [{ name: "S" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1, 2] }] }]',
            "sequence batching control 'int32_false_true' must have exactly 2 entries for CONTROL_SEQUENCE_START "
            "for acc",
        ),
        (
            'control_input [{ name: "S" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1]'
            " fp32_false_true: [0, 1] }] }]",
            "sequence batching specifies both 'int32_false_true' and 'fp32_false_true' for CONTROL_SEQUENCE_START "
            "for acc",
        ),
        (
            'control_input [{ name: "C" control [{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_FP32 }] }]',
            "unexpected control data type, expected TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32, or TYPE_STRING "
            "for CONTROL_SEQUENCE_CORRID for acc",
        ),
        (
            'state [{ input_name: "I" output_name: "O" data_type: TYPE_INT32 dims: [1]'
            ' initial_state { name: "x" data_type: TYPE_FP32 dims: [1] zero_data: true } }]',
            "The data type used for 'initial_state' field of state 'I' does not match the state data type.",
        ),
    ],
)
def test_config_errors(controls, message):
    with pytest.raises(TritonError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        SequenceSettings.from_config(config(batching="", controls=False, extra=controls))


# --- direct ----------------------------------------------------------------------------------------------


def test_direct_slots_controls_and_null_requests():
    runner = FakeRunner()

    async def body(batcher: SequenceBatcher):
        results = [await batcher.enqueue(request(1, 1, start=True))]
        results.append(await batcher.enqueue(request(10, 2, start=True)))
        results.append(await batcher.enqueue(request(2, 1)))
        results.append(await batcher.enqueue(request(20, 2, end=True)))
        results.append(await batcher.enqueue(request(3, 1, end=True)))
        return results

    results = run(body, runner)
    assert [value_of(r) for r in results] == [1, 10, 2, 20, 3]
    first, second, third, fourth, _ = runner.batches
    assert first[0]["names"] == ["CORRID", "END", "INPUT", "READY", "START"]
    assert first[0]["START"] == ("INT32", [1, 1], [1]) and first[0]["END"] == ("FP32", [1, 1], [0.0])
    assert first[0]["READY"] == ("BOOL", [1, 1], [True]) and first[0]["CORRID"] == ("UINT64", [1, 1], [1])
    # sequence 2 got slot 1: slot 0 (idle) is filled with a null request, as Triton does
    assert len(second) == 2 and second[0]["READY"][2] == [False] and second[0]["CORRID"][2] == [0]
    assert second[1]["CORRID"][2] == [2] and second[1]["START"][2] == [1]
    assert len(third) == 1 and third[0]["START"][2] == [0]  # nothing above slot 0 is waiting
    assert len(fourth) == 2 and fourth[1]["END"][2] == [1.0] and fourth[0]["READY"][2] == [False]


def test_string_ids_and_a_string_corrid_control():
    runner = FakeRunner()

    async def body(batcher: SequenceBatcher):
        await batcher.enqueue(request(1, "abc", start=True, batched=False))
        return await batcher.enqueue(request(2, "abc", end=True, batched=False))

    result = run(body, runner, cfg=config(mbs=0, corrid="TYPE_STRING"))
    assert value_of(result) == 2
    assert runner.batches[0][0]["CORRID"] == ("BYTES", [1], [b"abc"])
    assert runner.batches[0][0]["START"] == ("INT32", [1], [1])


def test_backlog_waits_for_a_free_slot_and_requests_after_end_are_refused():
    runner = FakeRunner()

    async def body(batcher: SequenceBatcher):
        await batcher.enqueue(request(1, "a", start=True))
        waiting = asyncio.ensure_future(batcher.enqueue(request(5, "b", start=True, end=True)))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # one slot, taken by "a"
        await batcher.enqueue(request(2, "a", end=True))
        done = await asyncio.wait_for(waiting, 1)
        with pytest.raises(TritonError, match="sequence a to model 'acc' must specify the START flag"):
            await batcher.enqueue(request(3, "a"))
        return done

    assert value_of(run(body, runner, cfg=config(mbs=1))) == 5


def test_idle_sequences_lose_their_slot():
    runner = FakeRunner()
    cfg = config(mbs=1, extra="max_sequence_idle_microseconds: 150000")

    async def body(batcher: SequenceBatcher):
        await batcher.enqueue(request(1, 7, start=True))
        backlogged = asyncio.ensure_future(batcher.enqueue(request(5, 8, start=True, end=True)))
        await asyncio.sleep(0.05)
        assert not backlogged.done()
        freed = await asyncio.wait_for(backlogged, 2)  # 7 goes idle after 0.15 s: 8 gets the slot
        with pytest.raises(TritonError, match="sequence 7 to model 'acc' must specify the START flag"):
            await batcher.enqueue(request(2, 7))
        return freed

    assert value_of(run(body, runner, cfg=cfg)) == 5


def test_backlogged_sequence_times_out():
    async def body(batcher: SequenceBatcher):
        await batcher.enqueue(request(1, 1, start=True))
        result = await asyncio.wait_for(batcher.enqueue(request(1, 2, start=True, timeout_us=50_000)), 2)
        await batcher.enqueue(request(1, 1, end=True))
        return result

    result = run(body, FakeRunner(), cfg=config(mbs=1))
    assert isinstance(result, TritonError) and result.kind == ErrorKind.UNAVAILABLE
    assert result.message == "timeout of the corresponding sequence has been expired"


def test_sequences_spread_over_instances():
    first, second = FakeRunner(delay=0.05), FakeRunner(delay=0.05)

    async def body(batcher: SequenceBatcher):
        async def sequence(corrid: int):
            total = 0
            for step in range(3):
                total += value_of(await batcher.enqueue(request(corrid, corrid, start=step == 0, end=step == 2)))
            return total

        return await asyncio.gather(*(sequence(c) for c in (1, 2)))

    assert run(body, first, second, cfg=config(mbs=1)) == [3, 6]
    assert {b[0]["corrid"] for b in first.batches} != {b[0]["corrid"] for b in second.batches}


# --- oldest ---------------------------------------------------------------------------------------------


def test_oldest_batches_at_most_the_candidate_sequences():
    runner = FakeRunner(delay=0.02)
    cfg = config(batching="oldest { max_candidate_sequences: 2 max_queue_delay_microseconds: 0 }")

    async def body(batcher: SequenceBatcher):
        async def sequence(corrid: int):
            out = []
            for step in range(4):
                out.append(value_of(await batcher.enqueue(request(step, corrid, start=step == 0, end=step == 3))))
            return out

        return await asyncio.gather(*(sequence(c) for c in (1, 2, 3, 4)))

    assert run(body, runner, cfg=cfg) == [[0, 1, 2, 3]] * 4
    assert max(len(b) for b in runner.batches) == 2
    assert all(item["READY"][2] == [True] for b in runner.batches for item in b)  # no null requests


# --- implicit state --------------------------------------------------------------------------------------


def test_implicit_state_is_carried_per_sequence_and_reset_on_start(tmp_path):
    (tmp_path / "initial_state").mkdir()
    (tmp_path / "initial_state" / "hundred").write_bytes(np.array([100], np.int32).tobytes())
    state = (
        'state [{ input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ]'
        '  initial_state { name: "init" data_type: TYPE_INT32 dims: [ 1 ] %s } }]'
    )
    runner = FakeRunner(state_output="STATE_OUT")

    async def body(batcher: SequenceBatcher):
        sums = []
        for corrid, values in ((1, [1, 2, 3]), (2, [10, 20])):
            for index, value in enumerate(values):
                r = request(value, corrid, start=index == 0, end=index == len(values) - 1, batched=False)
                result = await batcher.enqueue(r)
                assert [t.name for t in result.outputs] == ["OUTPUT"]  # the state output stays inside
                sums.append(value_of(result))
        return sums

    cfg = config(mbs=0, controls=False, extra=state % "zero_data: true")
    assert run(body, runner, cfg=cfg) == [1, 3, 6, 10, 30]
    assert runner.batches[0][0]["STATE_IN"] == ("INT32", [1], [0])
    cfg = config(mbs=0, controls=False, extra=state % 'data_file: "hundred"')
    assert run(body, FakeRunner(state_output="STATE_OUT"), cfg=cfg, model_path=tmp_path) == [101, 103, 106, 110, 130]
