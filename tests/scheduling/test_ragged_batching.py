"""allow_ragged_batch: requests whose ragged input differs in shape still share a batch (Triton's
rule); every other input must still match."""

from __future__ import annotations

import asyncio

import numpy as np
from google.protobuf import text_format

from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.dynamic_batcher import DynamicBatcher


class RecordingRunner:
    def __init__(self) -> None:
        self.name = "r0"
        self.batches: list[list[str]] = []
        self.last_timings = (0, 0, 0)

    async def execute(self, requests: list[InferRequest]) -> list[InferResponse]:
        self.batches.append([r.id for r in requests])
        await asyncio.sleep(0.05)
        return [InferResponse(r.model_name, "1", r.id, r.inputs) for r in requests]

    async def stop(self) -> None:
        pass


CONFIG = """
name: "m"
max_batch_size: 8
input [
  { name: "IMAGE" data_type: TYPE_UINT8 dims: [ -1 ] allow_ragged_batch: true },
  { name: "SCALE" data_type: TYPE_FP32 dims: [ -1 ] }
]
dynamic_batching { }
"""


def request(rid: str, image_length: int, scale_width: int = 1) -> InferRequest:
    return InferRequest(
        "m",
        "",
        rid,
        [
            InferTensor("IMAGE", "UINT8", [1, image_length], np.zeros((1, image_length), np.uint8)),
            InferTensor("SCALE", "FP32", [1, scale_width], np.zeros((1, scale_width), np.float32)),
        ],
    )


def batches_of(requests: list[InferRequest]) -> list[list[str]]:
    async def go() -> list[list[str]]:
        runner = RecordingRunner()
        batcher = DynamicBatcher([runner], text_format.Parse(CONFIG, mc.ModelConfig()))
        tasks = []
        for req in requests:
            tasks.append(asyncio.ensure_future(batcher.enqueue(req)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        await batcher.stop()
        return runner.batches

    return asyncio.run(go())


def test_ragged_input_of_different_lengths_shares_a_batch():
    batches = batches_of([request("busy", 3), request("a", 10), request("b", 25), request("c", 7)])
    assert batches == [["busy"], ["a", "b", "c"]]


def test_a_non_ragged_input_of_another_shape_still_closes_the_batch():
    batches = batches_of([request("busy", 3), request("a", 10), request("b", 25, scale_width=2), request("c", 7)])
    assert batches == [["busy"], ["a"], ["b"], ["c"]]
