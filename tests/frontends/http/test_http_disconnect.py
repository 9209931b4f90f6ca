"""A client that disconnects while its request waits in a dynamic-batching queue frees its slot."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from serverutil import RunningServer

MODEL = """
import json, os, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        ids = [r.request_id() for r in requests]
        with open(os.environ["TL_EXEC_LOG"], "a") as log:
            log.write(json.dumps(ids) + "\\n")
        time.sleep(0.4)
        get = pb_utils.get_input_tensor_by_name
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", get(r, "INPUT0").as_numpy())]) for r in requests]
"""


@pytest.mark.parametrize("direct", ["1", "0"], ids=["direct", "asgi"])
def test_disconnected_request_is_not_executed(tmp_path, monkeypatch, direct):
    folder = tmp_path / "repo" / "slow"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(MODEL)
    (folder / "config.pbtxt").write_text(
        'backend: "python"\nmax_batch_size: 1\ndynamic_batching { }\n'
        'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        'parameters { key: "TRITONLITE_EXECUTE_INLINE" value: { string_value: "never" } }\n'
    )
    log = tmp_path / "exec.log"
    monkeypatch.setenv("TL_EXEC_LOG", str(log))
    monkeypatch.setenv("TRITONLITE_HTTP_DIRECT", direct)
    server = RunningServer([tmp_path / "repo"])
    try:

        def infer(rid: str) -> None:
            client = httpclient.InferenceServerClient(server.http)
            inp = httpclient.InferInput("INPUT0", [1, 1], "FP32")
            inp.set_data_from_numpy(np.ones((1, 1), np.float32))
            client.infer("slow", [inp], request_id=rid)

        busy = threading.Thread(target=infer, args=("busy",))
        busy.start()
        time.sleep(0.1)
        body = json.dumps({"id": "gone", "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 1],
                                                    "data": [1.0]}]}).encode()  # fmt: skip
        host, port = server.http.split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.05)  # queued behind "busy"; now the client goes away
        infer("after")
        busy.join()
    finally:
        server.stop()
    executed = [rid for line in Path(log).read_text().splitlines() for rid in json.loads(line)]
    assert executed == ["busy", "after"]


# --- the watcher, in one process -----------------------------------------------------------------------


class _Engine:
    """infer waits until released; records whether it was cancelled."""

    def __init__(self) -> None:
        self.release = None
        self.cancelled = False

    async def infer(self, request):
        import asyncio

        self.release = asyncio.get_running_loop().create_future()
        try:
            return await self.release
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def _frontend(engine):
    from tritonlite.frontends.http.app import HttpFrontend

    frontend = HttpFrontend.__new__(HttpFrontend)  # only the watcher is exercised; no API routes needed
    frontend.engine = engine
    return frontend


def test_disconnect_while_queued_cancels_the_infer_and_answers_nothing():
    import asyncio

    async def go():
        engine = _Engine()
        gone = asyncio.get_running_loop().create_future()

        async def receive():
            return await gone

        task = asyncio.ensure_future(_frontend(engine)._infer_unless_disconnected(engine.infer(object()), receive))
        await asyncio.sleep(0)
        gone.set_result({"type": "http.disconnect"})
        result = await task
        return result, engine.cancelled, task.cancelling()

    assert asyncio.run(go()) == (None, True, 0)


def test_a_disconnect_after_the_answer_does_not_cancel_the_handler():
    import asyncio

    async def go():
        engine = _Engine()
        gone = asyncio.get_running_loop().create_future()

        async def receive():
            return await gone

        async def handler():
            response = await _frontend(engine)._infer_unless_disconnected(engine.infer(object()), receive)
            await asyncio.sleep(0.01)  # the handler goes on (e.g. sends): it must not be cancelled now
            return response

        task = asyncio.ensure_future(handler())
        await asyncio.sleep(0)
        # the client leaves in the same loop turn as the answer comes: the watcher's callback runs
        # only after the handler has its answer
        gone.set_result({"type": "http.disconnect"})
        engine.release.set_result("answer")
        return await task

    assert asyncio.run(go()) == "answer"
