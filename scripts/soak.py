#!/usr/bin/env python3
"""Soak a tritonlite server: mixed HTTP/gRPC load, a model that crashes now and then, reloads.

    python scripts/soak.py                      # 600 s
    python scripts/soak.py --duration 180 --clients 4

It starts a server (explicit model control) of three python models in a temporary repository:
``add_sub`` and ``string_upper`` (thread mode) and ``crashy`` (process mode, its stub ends itself
with ``os._exit`` on about 1% of requests). ``--clients`` HTTP and as many gRPC clients
(tritonclient) send requests to all three and check every answer; every ``--reload-every``
seconds ``add_sub`` is reloaded through the repository API. At the end it reports, per model, the
requests answered and failed (a failure of ``crashy`` is expected; any other is a lost request),
the server's RSS in the first and the last minute, and its open files and threads.
Exit status 1 when a request other than crashy's was lost.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "model_repository"

CRASHY_CONFIG = """
name: "crashy"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
parameters { key: "TRITONLITE_INSTANCE_MODE" value: { string_value: "process" } }
"""

CRASHY_MODEL = """
import os
import random

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        if random.random() < 0.01:
            os._exit(3)  # a crash, as a segfault in an extension would be
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x * 2)]))
        return out
"""


@dataclass
class Tally:
    ok: Counter = field(default_factory=Counter)  # model -> answers that were right
    failed: Counter = field(default_factory=Counter)  # model -> errors and wrong answers
    reasons: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, model: str, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.ok[model] += 1
            else:
                self.failed[model] += 1
                self.reasons[model][error[:120]] += 1


@dataclass
class Sample:
    at: float
    rss_kb: int
    fds: int
    threads: int


def sample(pid: int, start: float) -> Sample:
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Sample(time.monotonic() - start, rss, len(os.listdir(f"/proc/{pid}/fd")),
                  len(os.listdir(f"/proc/{pid}/task")))  # fmt: skip


def make_repository() -> Path:
    repo = Path(tempfile.mkdtemp(prefix="tl_soak_"))
    for name in ("add_sub", "string_upper"):
        shutil.copytree(EXAMPLES / name, repo / name)
    (repo / "crashy" / "1").mkdir(parents=True)
    (repo / "crashy" / "config.pbtxt").write_text(CRASHY_CONFIG)
    (repo / "crashy" / "1" / "model.py").write_text(CRASHY_MODEL)
    return repo


def free_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    return ports


def one_request(client, module, model: str, rng: random.Random) -> None:
    """Send one request to ``model`` and check its answer (raises on an error or a wrong answer)."""
    if model == "string_upper":
        words = np.array([b"soak", bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 20)))], dtype=np.object_)
        tensor = module.InferInput("TEXT", [2], "BYTES")
        tensor.set_data_from_numpy(words)
        result = client.infer(model, [tensor])
        if result.as_numpy("UPPER").tolist() != [w.upper() for w in words]:
            raise AssertionError("wrong UPPER")
        return
    x = np.array([rng.random() for _ in range(4)], dtype=np.float32)
    tensors = [module.InferInput("INPUT0", [4], "FP32")]
    tensors[0].set_data_from_numpy(x)
    if model == "add_sub":
        tensors.append(module.InferInput("INPUT1", [4], "FP32"))
        tensors[1].set_data_from_numpy(x)
        result = client.infer(model, tensors)
        if not np.allclose(result.as_numpy("OUTPUT0"), x + x) or not np.allclose(result.as_numpy("OUTPUT1"), 0):
            raise AssertionError("wrong add_sub answer")
    else:
        result = client.infer(model, tensors)
        if not np.allclose(result.as_numpy("OUTPUT0"), x * 2):
            raise AssertionError("wrong crashy answer")


def client_loop(protocol: str, address: str, seed: int, stop: threading.Event, tally: Tally) -> None:
    module = httpclient if protocol == "http" else grpcclient
    rng = random.Random(seed)
    client = module.InferenceServerClient(address, network_timeout=60.0) if protocol == "http" else \
        module.InferenceServerClient(address)  # fmt: skip
    while not stop.is_set():
        model = rng.choices(["add_sub", "string_upper", "crashy"], weights=[4, 3, 3])[0]
        try:
            one_request(client, module, model, rng)
            tally.record(model, None)
        except InferenceServerException as exc:
            tally.record(model, f"{protocol}: {exc.message()}")
        except Exception as exc:  # a dropped connection, a timeout, a wrong answer: lost all the same
            tally.record(model, f"{protocol}: {type(exc).__name__}: {exc}")
            client.close()
            client = module.InferenceServerClient(address)
    client.close()


def reload_loop(http: str, every: float, stop: threading.Event, outcomes: Counter) -> None:
    while not stop.wait(every):
        answer = requests.post(f"http://{http}/v2/repository/models/add_sub/load", timeout=120)
        outcomes[answer.status_code] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--clients", type=int, default=3, help="HTTP clients, and as many gRPC clients (default 3)")
    parser.add_argument("--reload-every", type=float, default=20.0, help="seconds between add_sub reloads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    repo = make_repository()
    http_port, grpc_port, metrics_port = free_ports(3)
    http, grpc_address = f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
    log = repo / "server.log"
    command = [sys.executable, "-m", "tritonlite", f"--model-repository={repo}", "--model-control-mode=explicit",
               "--load-model=*", f"--http-port={http_port}", f"--grpc-port={grpc_port}",
               f"--metrics-port={metrics_port}", "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
               "--metrics-address=127.0.0.1"]  # fmt: skip
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
                return 2
            try:
                if requests.get(f"http://{http}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)

        tally, reloads, samples = Tally(), Counter(), []
        stop = threading.Event()
        workers = [
            threading.Thread(target=client_loop, args=(protocol, address, args.seed * 100 + index, stop, tally))
            for index in range(args.clients)
            for protocol, address in (("http", http), ("grpc", grpc_address))
        ]
        workers.append(threading.Thread(target=reload_loop, args=(http, args.reload_every, stop, reloads)))
        start = time.monotonic()
        for worker in workers:
            worker.start()
        while time.monotonic() - start < args.duration and server.poll() is None:
            samples.append(sample(server.pid, start))
            time.sleep(2.0)
        stop.set()
        for worker in workers:
            worker.join(180)
        elapsed = time.monotonic() - start
        alive = server.poll() is None
        if alive:
            samples.append(sample(server.pid, start))
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(60)

    window = min(60.0, elapsed / 3)
    first = [s.rss_kb for s in samples if s.at <= window]
    last = [s.rss_kb for s in samples if s.at >= samples[-1].at - window]
    total = sum(tally.ok.values()) + sum(tally.failed.values())
    print(f"soak: {elapsed:.0f} s, {2 * args.clients} clients, {total} requests ({total / elapsed:.0f}/s), "
          f"add_sub reloads {dict(reloads)}, server {'alive' if alive else 'DEAD'}")  # fmt: skip
    for model in ("add_sub", "string_upper", "crashy"):
        print(f"  {model:13s} ok {tally.ok[model]:7d}  failed {tally.failed[model]:5d}")
        for reason, count in tally.reasons[model].most_common(4):
            print(f"      {count:5d}  {reason}")
    lost = tally.failed["add_sub"] + tally.failed["string_upper"]
    print(f"lost requests (other than crashy's): {lost}")
    print(f"server RSS: first {window:.0f} s mean {statistics.mean(first) / 1024:.1f} MiB, last {window:.0f} s "
          f"mean {statistics.mean(last) / 1024:.1f} MiB, drift {(statistics.mean(last) - statistics.mean(first)) / 1024:+.1f} MiB")  # fmt: skip  # noqa: E501
    print(f"server fds: {samples[0].fds} -> {samples[-1].fds}; threads: {samples[0].threads} -> {samples[-1].threads}")
    print(f"server log: {log}")
    return 1 if lost or not alive else 0


if __name__ == "__main__":
    sys.exit(main())
