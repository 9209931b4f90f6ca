"""models.model and models.submission: a version validates a repeated header once, and a
submission settles its statistics once, whether it is awaited, read by callback or withdrawn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.models.model import ModelVersion
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.base import TaskScheduler

CONFIG = """
name: "m" max_batch_size: 0
input [{ name: "X" data_type: TYPE_FP32 dims: [ 2 ] }]
output [{ name: "Y" data_type: TYPE_FP32 dims: [ 2 ] }]
"""


class Echo(TaskScheduler):
    """Answers every request with its input as ``Y``, after ``gate`` opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.ran = 0

    async def run(self, request: InferRequest) -> InferResponse:
        await self.gate.wait()
        self.ran += 1
        x = request.inputs[0]
        return InferResponse("m", "1", request.id, [InferTensor("Y", "FP32", x.shape, x.data)])

    async def stop(self) -> None:
        return None


def version() -> ModelVersion:
    model = ModelVersion("m", 1, text_format.Parse(CONFIG, mc.ModelConfig()), Path("."))
    model.scheduler = Echo()
    return model


def request(shape: list[int], key: object = None) -> InferRequest:
    r = InferRequest("m", "", inputs=[InferTensor("X", "FP32", shape, np.zeros(shape, np.float32))])
    r.validation_key = key
    return r


def test_a_validation_key_is_validated_once_per_version(monkeypatch):
    import tritonlite.models.model as model_module

    calls = []
    real = model_module.validate_request
    monkeypatch.setattr(model_module, "validate_request", lambda *a: calls.append(1) or real(*a))

    async def go():
        one, two = version(), version()
        key = object()
        for _ in range(3):
            await one.infer(request([2], key))
        await two.infer(request([2], key))  # another loaded version validates for itself
        with pytest.raises(TritonError) as refused:
            await one.infer(request([3], object()))  # a new key: validated, and refused
        return refused.value

    refused = asyncio.run(go())
    assert len(calls) == 3  # once for each version, once for the bad request
    assert refused.kind == ErrorKind.INVALID_ARG


def test_a_submission_read_by_its_reader_records_its_statistics_once():
    async def go():
        model = version()
        submission = model.submit(request([2]))
        read = asyncio.get_running_loop().create_future()
        submission.on_settled(lambda done: read.set_result(done.result()))
        response = await read
        return model.stats, response

    stats, response = asyncio.run(go())
    assert response.outputs[0].name == "Y"
    assert stats.success.count == 1 and stats.pending == 0


def test_a_withdrawn_submission_does_not_run_and_counts_as_cancelled():
    async def go():
        model = version()
        model.scheduler.gate.clear()
        submission = model.submit(request([2]))
        await asyncio.sleep(0)
        submission.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submission
        model.scheduler.gate.set()
        await asyncio.sleep(0.01)
        return model.stats, model.scheduler.ran

    stats, ran = asyncio.run(go())
    assert ran == 0 and stats.failures["CANCELED"] == 1 and stats.success.count == 0 and stats.pending == 0
