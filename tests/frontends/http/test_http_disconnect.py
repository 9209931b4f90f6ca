"""A client that disconnects while its request waits in a dynamic-batching queue frees its slot."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
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


def test_disconnected_request_is_not_executed(tmp_path, monkeypatch):
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
