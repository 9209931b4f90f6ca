"""Decoupled python models: the response sender, the core's streaming path and Triton's errors.

The texts were captured from Triton 2.51 (python backend).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tritonlite.core.errors import DecoupledModelError, ErrorKind, TritonError
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.engine import Engine, EngineOptions

REPEAT = """
import threading
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, "COUNT").as_numpy().reshape(-1)[0])
            sender = request.get_response_sender()
            if n == -1:
                error = pb_utils.TritonError("negative count")
                final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
                sender.send(pb_utils.InferenceResponse(error=error), flags=final)
            elif n == -2:
                raise ValueError("boom")
            elif n >= 100:  # answer later, from another thread
                def later(sender=sender, n=n):
                    time.sleep(0.05)
                    for i in range(n - 100):
                        sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([i], np.int32))]))
                    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                threading.Thread(target=later).start()
            else:
                for i in range(n):
                    sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([i], np.int32))]))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""

LAST_IS_FINAL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, "COUNT").as_numpy().reshape(-1)[0])
            sender = request.get_response_sender()
            for i in range(n):
                flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if i == n - 1 else 0
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([i], np.int32))]), flags=flags)
"""

RETURNS = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([7], np.int32))]) for _ in requests]
"""

SENDS_ONCE = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            response = pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([5], np.int32))])
            request.get_response_sender().send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""


def write(root: Path, name: str, code: str, decoupled: bool) -> None:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(code)
    policy = "model_transaction_policy { decoupled: true }\n" if decoupled else ""
    (folder / "config.pbtxt").write_text(
        f'backend: "python"\nmax_batch_size: 0\n{policy}'
        'input [{ name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }]\n'
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("decoupled")
    write(root, "repeat", REPEAT, True)
    write(root, "last_is_final", LAST_IS_FINAL, True)
    write(root, "decoupled_returns", RETURNS, True)
    write(root, "plain", RETURNS, False)
    write(root, "plain_sender", SENDS_ONCE, False)
    return root


def count(model: str, n: int, request_id: str = "") -> InferRequest:
    data = np.array([n], np.int32)
    return InferRequest(model, id=request_id, inputs=[InferTensor("COUNT", "INT32", [1], data)])


def with_engine(repo: Path, body):
    async def go():
        engine = Engine(EngineOptions(repositories=[repo]))
        await engine.start()
        try:
            return await body(engine)
        finally:
            await engine.stop()

    return asyncio.run(go())


async def collect(engine: Engine, request: InferRequest) -> list:
    items = []
    async for response, final in engine.infer_stream(request):
        if isinstance(response, InferResponse):
            items.append((int(response.outputs[0].data[0]), final))
        elif isinstance(response, TritonError):
            items.append((response.kind, response.message, final))
        else:
            items.append((None, final))
    return items


def test_zero_or_many_responses_then_the_final_flag(repo):
    async def body(engine: Engine):
        return [
            await collect(engine, count("repeat", 3)),
            await collect(engine, count("repeat", 0)),
            await collect(engine, count("repeat", 102)),  # sent later, from another thread
            await collect(engine, count("last_is_final", 2)),
        ]

    many, none, later, last = with_engine(repo, body)
    assert many == [(0, False), (1, False), (2, False), (None, True)]
    assert none == [(None, True)]
    assert later == [(0, False), (1, False), (None, True)]
    assert last == [(0, False), (1, True)]


def test_requests_stream_concurrently(repo):
    async def body(engine: Engine):
        return await asyncio.gather(*(collect(engine, count("repeat", n)) for n in (1, 2, 3)))

    results = with_engine(repo, body)
    assert [[value for value, _ in items if value is not None] for items in results] == [[0], [0, 1], [0, 1, 2]]


def test_errors_come_as_final_items_with_tritons_texts(repo):
    async def body(engine: Engine):
        return [
            await collect(engine, count("repeat", -1)),
            await collect(engine, count("repeat", -2)),
            await collect(engine, count("decoupled_returns", 1)),
        ]

    sent, raised, returned = with_engine(repo, body)
    assert sent == [(ErrorKind.INTERNAL, "negative count", True)]
    kind, message, final = raised[0]
    assert (kind, final, len(raised)) == (ErrorKind.INTERNAL, True, 1)
    assert message.startswith("Failed to process the request(s) for model 'repeat_0', message: ValueError: boom")
    assert returned == [
        (
            ErrorKind.INTERNAL,
            "Failed to process the request(s) for model 'decoupled_returns_0', message: Python model "
            "'decoupled_returns_0' is using the decoupled mode and the execute function must return None.",
            True,
        )
    ]


def test_one_response_infer_is_refused_for_decoupled_models(repo):
    async def body(engine: Engine):
        with pytest.raises(DecoupledModelError) as caught:
            await engine.infer(count("repeat", 1))
        return caught.value

    error = with_engine(repo, body)
    assert error.kind == ErrorKind.UNSUPPORTED
    assert "'repeat'" in error.message  # each frontend words it as Triton does (tests/frontends)


def test_models_that_are_not_decoupled_stream_one_final_response(repo):
    async def body(engine: Engine):
        plain = await collect(engine, count("plain", 1))
        sender = await collect(engine, count("plain_sender", 1))
        one = await engine.infer(count("plain_sender", 1))
        with pytest.raises(TritonError) as refused:  # refused before it runs: raised, not an item
            await collect(
                engine, InferRequest("plain", inputs=[InferTensor("WRONG", "INT32", [1], np.ones(1, np.int32))])
            )
        with pytest.raises(TritonError) as unknown:
            await collect(engine, count("nope", 1))
        return plain, sender, one, refused.value.message, unknown.value.message

    plain, sender, one, refused, unknown = with_engine(repo, body)
    assert plain == [(7, True)] and sender == [(5, True)] and int(one.outputs[0].data[0]) == 5
    assert refused == "unexpected inference input 'WRONG' for model 'plain'"
    assert unknown == "Request for unknown model: 'nope' is not found"


def test_statistics_of_decoupled_requests(repo):
    async def body(engine: Engine):
        await collect(engine, count("repeat", 2))
        await collect(engine, count("repeat", -1))
        await asyncio.sleep(0.1)  # the execution is counted once execute returns, maybe after the final response
        return engine.statistics("repeat")["model_stats"][0]

    stats = with_engine(repo, body)
    assert stats["inference_stats"]["success"]["count"] == 1
    assert stats["inference_stats"]["fail"]["count"] == 1
    assert stats["execution_count"] == 2
