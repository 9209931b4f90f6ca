#!/usr/bin/env python3
"""Capture how the real NVIDIA Triton 2.51 SCHEDULES, as JSON facts (manual, not a test).

    /work/main/.venv/bin/python tests/reference_data/scheduling/capture_scheduling.py

The script starts the reference Triton itself (through /work/shared/reference/run-triton.sh,
always on ports 28000/28001/28002), many times, and writes
tests/reference_data/scheduling/triton_2.51_scheduling.json. Phases:

  main      default model-control mode, --exit-on-error=false, each group on a temporary copy
            of tests/data/scheduling_repository holding only the models it needs:
              startup   warmup_good / warmup_file: warmup facts at server start
              batching  dynamic-batching scenarios (which requests share an execute())
              errors    queue full, request timeouts (REJECT / DELAY), priorities, bad parameters
              ordering  preserve_ordering true vs false
              perf      perf_analyzer against perf_identity at concurrency 1, 8, 32 (HTTP)
  warmup    explicit mode on the real repository: loads warmup_good / warmup_file through the
            repository API (--log-verbose=1); failing warmups (warmup_fails raises in execute,
            warmup_error_response returns an error) tried several times each, because Triton
            2.51 crashes with SIGSEGV in a good share of those runs
  rate_limit  explicit mode, --load-model=rate_limited, several --rate-limit flag sets

Every probe model (all but perf_identity) appends one JSON line per execute() to
$TRITONLITE_SCHED_LOG_DIR/<model>.jsonl (the script points that at a temporary folder) and
the script reads those lines to know which requests Triton put into which execute(), when.

If a server dies (another session's cleanup script killed every tritonserver by name while
this was written), the group is rerun on a fresh server from the scenario that was cut off.

Options: --only main,warmup,rate_limit (merges into the existing JSON file)
         --groups startup,batching,errors,ordering,perf (main phase only)  --no-perf  --keep
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
sys.path.insert(0, str(HERE.parent))
import capture as base  # noqa: E402  (tests/reference_data/capture.py: shared helpers)

REPO = ROOT / "tests" / "data" / "scheduling_repository"
OUT = HERE / "triton_2.51_scheduling.json"
RUN_TRITON = base.RUN_TRITON
PERF_ANALYZER = base.PERF_ANALYZER
HTTP_PORT, GRPC_PORT, METRICS_PORT = 28000, 28001, 28002
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
b64, jbody = base.b64, base.jbody


class ServerDied(RuntimeError):
    """The reference server went away while a phase was running (e.g. killed from outside)."""


# =========================================================================== server control


class Server:
    def __init__(self, repo: Path, flags, workdir: Path, name: str, wait_live=True):
        self.repo, self.flags, self.name = repo, list(flags), name
        self.log_path = workdir / f"{name}.log"
        self.model_log_dir = workdir / f"{name}_model_logs"
        shutil.rmtree(self.model_log_dir, ignore_errors=True)
        self.model_log_dir.mkdir(parents=True)
        self.cmd = [str(RUN_TRITON), str(repo), str(HTTP_PORT), str(GRPC_PORT), str(METRICS_PORT), "--", *self.flags]
        env = dict(os.environ, TRITONLITE_SCHED_LOG_DIR=str(self.model_log_dir))
        wait_ports_free()
        self.t_start = time.time()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.stopped = False
        self.live_after_s = None
        if wait_live:
            self.wait_live()

    def wait_live(self, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            if base.http_get_status("/v2/health/live") == 200 and base.settled():
                self.t_live = time.time()
                self.live_after_s = round(self.t_live - self.t_start, 2)
                time.sleep(0.5)
                return True
            time.sleep(0.25)
        raise RuntimeError(f"{self.name}: tritonserver did not come up")

    def check_alive(self):
        if self.proc.poll() is not None:
            raise ServerDied(f"{self.name}: tritonserver exited with {self.proc.returncode}")
        if not self.stopped and "Signal (15) received" in self.log_text():
            raise ServerDied(f"{self.name}: tritonserver got SIGTERM from outside")

    def wait_exit(self, timeout=120):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # run-triton.sh execs tritonserver
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        self.stopped = True
        return self.proc.returncode

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def command_for_json(self):
        return [
            "run-triton.sh",
            str(self.repo.relative_to(ROOT)) if self.repo.is_relative_to(ROOT) else "<temporary copy>",
            *self.cmd[2:],
        ]


def wait_ports_free(timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if base.http_get_status("/v2/health/live") is None:
            return
        time.sleep(0.5)
    raise RuntimeError("port 28000 still answers: another tritonserver is running there")


def run_phase(fn, *args, attempts=3):
    """Runs a phase; reruns it when the server was killed from outside (another session's
    cleanup script killed every tritonserver by name while this was written)."""
    for i in range(attempts):
        try:
            return fn(*args)
        except ServerDied as e:
            print(f"!! {e}; retrying phase {fn.__name__} ({i + 1}/{attempts})", flush=True)
            time.sleep(5)
    raise RuntimeError(f"phase {fn.__name__} failed {attempts} times")


# =========================================================================== model logs


class ModelLog:
    """Reads the JSON lines the probe model writes, from a remembered offset."""

    def __init__(self, server: Server, model: str):
        self.path = server.model_log_dir / f"{model}.jsonl"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read_new(self):
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return [json.loads(x) for x in data.decode().splitlines() if x.strip()]

    @staticmethod
    def read_all(server: Server, model: str):
        p = server.model_log_dir / f"{model}.jsonl"
        return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


# =========================================================================== requests


class Req:
    """One inference request of a scenario."""

    def __init__(
        self,
        rid,
        protocol="http",
        offset_ms=0,
        batch=1,
        cols=4,
        sleep_ms=None,
        params=None,
        grpc_param_types=None,
        note=None,
        send_id=True,
    ):
        self.rid, self.protocol, self.offset_ms = rid, protocol, offset_ms
        self.send_id = send_id  # False: the request carries no "id" (rid is only the local key)
        self.batch, self.cols, self.sleep_ms = batch, cols, sleep_ms
        self.params = dict(params or {})
        # gRPC parameter field per key; default: what tritonclient 2.x sends
        # (priority -> uint64_param, timeout -> int64_param).
        self.grpc_param_types = {"priority": "uint64_param", "timeout": "int64_param", **(grpc_param_types or {})}
        self.note = note

    def tensors(self):
        x = np.arange(self.batch * self.cols, dtype=np.float32).reshape(self.batch, self.cols)
        s = None if self.sleep_ms is None else np.full((self.batch, 1), self.sleep_ms, np.int32)
        return x, s

    def http_request(self, model):
        x, s = self.tensors()
        inputs = [
            {"name": "INPUT0", "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": x.nbytes}}
        ]
        chunks = [x.tobytes()]
        if s is not None:
            inputs.append(
                {
                    "name": "SLEEP_MS",
                    "datatype": "INT32",
                    "shape": list(s.shape),
                    "parameters": {"binary_data_size": s.nbytes},
                }
            )
            chunks.append(s.tobytes())
        header = {"id": self.rid} if self.send_id else {}
        header.update(
            {
                "inputs": inputs,
                "outputs": [
                    {"name": "BATCH", "parameters": {"binary_data": False}},
                    {"name": "ORDER", "parameters": {"binary_data": False}},
                ],
            }
        )
        if self.params:
            header["parameters"] = self.params
        body, headers = base.binary_body(header, *chunks)
        return {
            "method": "POST",
            "path": f"/v2/models/{model}/infer",
            "headers": headers,
            "body_b64": b64(body),
            "header_json": header,
        }

    def grpc_request(self, model):
        x, s = self.tensors()
        r = pb.ModelInferRequest(model_name=model, id=self.rid if self.send_id else "")
        r.inputs.add(name="INPUT0", datatype="FP32", shape=list(x.shape))
        r.raw_input_contents.append(x.tobytes())
        if s is not None:
            r.inputs.add(name="SLEEP_MS", datatype="INT32", shape=list(s.shape))
            r.raw_input_contents.append(s.tobytes())
        for k, v in self.params.items():
            field = self.grpc_param_types.get(k)
            if field is None:
                base.set_param(r.parameters[k], v)
            else:
                setattr(r.parameters[k], field, v)
        return {
            "rpc": "ModelInfer",
            "request_b64": b64(r.SerializeToString(deterministic=True)),
            "request_json": json_format.MessageToDict(r, preserving_proto_field_name=True),
        }


def decode_http(status, reason, all_headers, data):
    headers = {k: all_headers[k] for k in ("content-type", "inference-header-content-length") if k in all_headers}
    ans = {"status": status, "reason": reason, "headers": headers, "body_b64": b64(data)}
    try:
        ans["json"] = json.loads(data.decode()) if data else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        ans["text"] = data.decode("utf-8", "replace")
    return ans


def outputs_of(ans):
    """{'BATCH': [[n_requests, total_batch, exec_index, position], ...], 'ORDER': [..]}"""
    out = {}
    if "json" in ans and isinstance(ans.get("json"), dict) and "outputs" in ans["json"]:
        for o in ans["json"]["outputs"]:
            d = o["data"]
            out[o["name"]] = [d[i : i + 4] for i in range(0, len(d), 4)] if o["name"] == "BATCH" else d
    elif ans.get("response_b64"):
        resp = pb.ModelInferResponse.FromString(base64.b64decode(ans["response_b64"]))
        for o, raw in zip(resp.outputs, resp.raw_output_contents, strict=False):
            a = np.frombuffer(raw, np.int32).reshape(list(o.shape)).tolist()
            out[o.name] = a if o.name == "BATCH" else [v[0] for v in a]
    return out


def send_one(req: Req, model, t0, results, channel, recorded):
    rec = {
        "id": req.rid,
        "protocol": req.protocol,
        "offset_ms": req.offset_ms,
        "batch": req.batch,
        "shape": [req.batch, req.cols],
        "sleep_ms_input": req.sleep_ms,
        "parameters": req.params,
    }
    if req.note:
        rec["note"] = req.note
    try:
        if req.protocol == "http":
            r = req.http_request(model)
            rec["request"] = {k: r[k] for k in ("method", "path", "headers", "body_b64")}
            rec["request"]["header_json"] = r["header_json"]
            conn = http.client.HTTPConnection("localhost", HTTP_PORT, timeout=120)
            conn.connect()
            body = base64.b64decode(r["body_b64"])
            time.sleep(max(0.0, t0 + req.offset_ms / 1000 - time.time()))
            ts = time.time()
            try:
                conn.request("POST", r["path"], body=body, headers=r["headers"])
                resp = conn.getresponse()
                data = resp.read()
                te = time.time()
                ans = decode_http(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, data)
            except (http.client.HTTPException, OSError) as e:
                te = time.time()
                ans = {"status": None, "connection_error": f"{type(e).__name__}: {e}"}
            finally:
                conn.close()
        else:
            r = req.grpc_request(model)
            rec["request"] = r
            call = channel.unary_unary(GRPC_INFER)
            data = base64.b64decode(r["request_b64"])
            time.sleep(max(0.0, t0 + req.offset_ms / 1000 - time.time()))
            ts = time.time()
            try:
                out = call(data, timeout=120)
                ans = {"code": "OK", "details": "", "response_b64": b64(out)}
                resp = pb.ModelInferResponse.FromString(out)
                ans["response_json"] = json_format.MessageToDict(resp, preserving_proto_field_name=True)
            except grpc.RpcError as e:
                ans = {"code": e.code().name, "details": e.details()}
            te = time.time()
    except Exception as e:  # noqa: BLE001
        ts = te = time.time()
        ans = {"client_exception": f"{type(e).__name__}: {e}"}
    rec["answer"] = ans
    rec["sent_ms"] = round((ts - t0) * 1000, 1)
    rec["answered_ms"] = round((te - t0) * 1000, 1)
    rec["latency_ms"] = round((te - ts) * 1000, 1)
    rec["outputs"] = outputs_of(ans)
    if not recorded:
        rec.pop("request", None)
    results[req.rid] = rec


def fire(server: Server, model, reqs, settle_s=0.3, record_requests=True):
    """Sends reqs (each at t0 + offset_ms, from its own thread) and returns
    (t0, request records, execute records from the model log)."""
    server.check_alive()
    mlog = ModelLog(server, model)
    channel = grpc.insecure_channel(f"localhost:{GRPC_PORT}")
    grpc.channel_ready_future(channel).result(timeout=10)
    results = {}
    t0 = time.time() + 0.3
    threads = [threading.Thread(target=send_one, args=(r, model, t0, results, channel, record_requests)) for r in reqs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(settle_s)
    channel.close()
    server.check_alive()
    execs = []
    for e in mlog.read_new():
        if e.get("event") != "execute":
            continue
        execs.append(
            {
                "instance": e["instance"],
                "exec_index": e["exec_index"],
                "n_requests": e["n_requests"],
                "total_batch": e["total_batch"],
                "request_ids": [r["id"] for r in e["requests"]],
                "request_shapes": [r["shape"] for r in e["requests"]],
                "request_timeouts_us": [r.get("timeout_us") for r in e["requests"]],
                "start_ms": round((e["t_start"] - t0) * 1000, 1),
                "end_ms": round((e["t_end"] - t0) * 1000, 1),
            }
        )
    execs.sort(key=lambda e: e["start_ms"])
    return t0, [results[r.rid] for r in reqs], execs


def status_of(rec):
    a = rec["answer"]
    if "status" in a:
        return a["status"]
    return a.get("code", a.get("client_exception"))


def error_of(rec):
    a = rec["answer"]
    if "status" in a:
        j = a.get("json")
        return j.get("error") if isinstance(j, dict) else a.get("text", a.get("connection_error"))
    return a.get("details") or None


def scenario(server, sid, model, reqs, description, trials=1, settle_s=0.3, pause_s=0.3):
    out = {"id": sid, "model": model, "description": description, "trials": []}
    for k in range(trials):
        _, recs, execs = fire(server, model, reqs, settle_s=settle_s, record_requests=(k == 0))
        trial = {
            "batches": [e["request_ids"] for e in execs],
            "batch_sizes": [e["total_batch"] for e in execs],
            "requests_per_execute": [e["n_requests"] for e in execs],
            "execution_order": [rid for e in execs for rid in e["request_ids"]],
            "gaps_between_executes_ms": [
                round(b["start_ms"] - a["end_ms"], 1) for a, b in zip(execs, execs[1:], strict=False)
            ],
            "answers": {
                r["id"]: {
                    "status": status_of(r),
                    "error": error_of(r),
                    "latency_ms": r["latency_ms"],
                    "answered_ms": r["answered_ms"],
                }
                for r in recs
            },
            "response_arrival_order": [r["id"] for r in sorted(recs, key=lambda r: r["answered_ms"])],
            "executes": execs,
            "requests": recs,
        }
        out["trials"].append(trial)
        print(
            f"  {sid} trial {k}: batches={trial['batches']} "
            f"statuses={[trial['answers'][r.rid]['status'] for r in reqs]} "
            f"lat={[trial['answers'][r.rid]['latency_ms'] for r in reqs]}",
            flush=True,
        )
        time.sleep(pause_s)
    return out


# =========================================================================== main phase


def lazy(sid, *args, **kw):
    """A scenario to run later, on whatever server is up then: (id, fn(server))."""
    return sid, lambda srv: scenario(srv, sid, *args, **kw)


def simultaneous(n, protocol="http", batch=1, cols=4, prefix="r", **kw):
    return [Req(f"{prefix}{i + 1}", protocol, 0, batch, cols, **kw) for i in range(n)]


def batching_scenarios():
    s = []
    s.append(
        lazy(
            "preferred_8_simultaneous",
            "batch_preferred",
            simultaneous(8),
            "8 requests [1,4] sent at the same moment; preferred_batch_size [4,8], max_queue_delay_microseconds 100000",
            trials=3,
        )
    )
    s.append(
        lazy(
            "preferred_5_simultaneous",
            "batch_preferred",
            simultaneous(5),
            "5 requests [1,4] sent at the same moment; preferred [4,8], delay 100 ms",
            trials=3,
        )
    )
    s.append(
        lazy(
            "preferred_4_simultaneous",
            "batch_preferred",
            simultaneous(4),
            "4 requests [1,4] at once; preferred [4,8], delay 100 ms",
            trials=3,
        )
    )
    s.append(
        lazy(
            "preferred_3_simultaneous",
            "batch_preferred",
            simultaneous(3),
            "3 requests [1,4] at once; preferred [4,8], delay 100 ms",
            trials=3,
        )
    )
    s.append(
        lazy(
            "preferred_lone_request",
            "batch_preferred",
            simultaneous(1),
            "a single request; preferred [4,8], delay 100 ms: latency",
            trials=3,
        )
    )
    s.append(
        lazy(
            "delay_only_lone_request",
            "batch_delay_only",
            simultaneous(1),
            "a single request; no preferred size, delay 100 ms: latency",
            trials=3,
        )
    )
    s.append(
        lazy(
            "nodelay_lone_request",
            "batch_nodelay",
            simultaneous(1),
            "a single request; no preferred size, delay 0: latency",
            trials=3,
        )
    )
    s.append(
        lazy(
            "no_dynamic_batching_lone_request",
            "no_dynamic_batching",
            simultaneous(1),
            "a single request; no dynamic_batching at all: latency",
            trials=3,
        )
    )
    s.append(
        lazy(
            "delay_only_8_simultaneous",
            "batch_delay_only",
            simultaneous(8),
            "8 requests at once; no preferred size, delay 100 ms (max_batch_size 8)",
            trials=3,
        )
    )
    s.append(
        lazy(
            "delay_only_5_simultaneous",
            "batch_delay_only",
            simultaneous(5),
            "5 requests at once; no preferred size, delay 100 ms",
            trials=3,
        )
    )
    s.append(
        lazy(
            "delay_only_10_simultaneous",
            "batch_delay_only",
            simultaneous(10),
            "10 requests at once; no preferred size, delay 100 ms (more than max_batch_size)",
            trials=3,
        )
    )
    s.append(
        lazy(
            "nodelay_8_simultaneous",
            "batch_nodelay",
            simultaneous(8),
            "8 requests at once; delay 0, model idle (racy: whatever was queued when the batcher looked)",
            trials=3,
        )
    )
    s.append(
        lazy(
            "nodelay_8_behind_blocker",
            "batch_nodelay",
            [Req("blocker", sleep_ms=400)] + [Req(f"r{i + 1}", offset_ms=100) for i in range(8)],
            "blocker (SLEEP_MS 400) first, then 8 requests [1,4] at +100 ms while it runs; delay 0",
            trials=2,
        )
    )
    s.append(
        lazy(
            "nodelay_10_behind_blocker",
            "batch_nodelay",
            [Req("blocker", sleep_ms=400)] + [Req(f"r{i + 1}", offset_ms=100 + 5 * i) for i in range(10)],
            "blocker, then 10 requests [1,4] (5 ms apart) while it runs; delay 0, max_batch_size 8",
            trials=2,
        )
    )
    s.append(
        lazy(
            "preferred_8_behind_blocker",
            "batch_preferred",
            [Req("blocker", sleep_ms=400)] + [Req(f"r{i + 1}", offset_ms=200) for i in range(8)],
            "blocker (SLEEP_MS 400; it waits the 100 ms delay alone, then runs until ~500 ms), "
            "8 requests at +200 ms queue up while it runs; preferred [4,8], delay 100 ms",
            trials=2,
        )
    )
    s.append(
        lazy(
            "preferred_5_behind_blocker",
            "batch_preferred",
            [Req("blocker", sleep_ms=400)] + [Req(f"r{i + 1}", offset_ms=200) for i in range(5)],
            "blocker as above, 5 requests queue up while it runs; preferred [4,8], delay 100 ms",
            trials=2,
        )
    )
    s.append(
        lazy(
            "preferred_mixed_shapes",
            "batch_preferred",
            [Req(f"c{'3' if i % 2 == 0 else '5'}_{i // 2 + 1}", cols=3 if i % 2 == 0 else 5) for i in range(8)],
            "8 requests at once, alternating shapes [1,3] and [1,5] (INPUT0 dims [-1]); preferred [4,8], delay 100 ms",
            trials=3,
        )
    )
    s.append(
        lazy(
            "nodelay_mixed_shapes_behind_blocker",
            "batch_nodelay",
            [Req("blocker", sleep_ms=400)]
            + [
                Req(f"c{'3' if i % 2 == 0 else '5'}_{i // 2 + 1}", offset_ms=100 + 10 * i, cols=3 if i % 2 == 0 else 5)
                for i in range(6)
            ],
            "blocker, then 6 requests alternating [1,3]/[1,5] 10 ms apart (queue order "
            "c3_1 c5_1 c3_2 c5_2 c3_3 c5_3); delay 0",
            trials=2,
        )
    )
    s.append(
        lazy(
            "nodelay_grouped_shapes_behind_blocker",
            "batch_nodelay",
            [Req("blocker", sleep_ms=400)]
            + [
                Req(f"c{c}_{j + 1}", offset_ms=100 + 10 * (i * 3 + j), cols=c)
                for i, c in enumerate((3, 5))
                for j in range(3)
            ],
            "blocker, then 3 x [1,3] followed by 3 x [1,5], 10 ms apart; delay 0",
            trials=2,
        )
    )
    s.append(
        lazy(
            "preferred_batch_sizes_3_3_3",
            "batch_preferred",
            [Req(f"b3_{i + 1}", batch=3) for i in range(3)],
            "3 requests of batch size 3 ([3,4]) at once; preferred [4,8], max 8",
            trials=3,
        )
    )
    s.append(
        lazy(
            "preferred_batch_sizes_2x4",
            "batch_preferred",
            [Req(f"b2_{i + 1}", batch=2) for i in range(4)],
            "4 requests of batch size 2 at once; preferred [4,8]",
            trials=3,
        )
    )
    s.append(
        lazy(
            "preferred_batch_sizes_3_3",
            "batch_preferred",
            [Req(f"b3_{i + 1}", batch=3) for i in range(2)],
            "2 requests of batch size 3 at once (6: not a preferred size); preferred [4,8]",
            trials=3,
        )
    )
    s.append(
        lazy(
            "preferred_optional_input_mix",
            "batch_preferred",
            [Req("with_sleep_1", sleep_ms=0), Req("plain_1"), Req("with_sleep_2", sleep_ms=0), Req("plain_2")],
            "4 requests at once, two carry the optional input SLEEP_MS (value 0), two do not; preferred [4,8]",
            trials=3,
        )
    )
    s.append(
        lazy(
            "preferred_http_and_grpc_mix",
            "batch_preferred",
            [Req(f"h{i + 1}", "http") for i in range(4)] + [Req(f"g{i + 1}", "grpc") for i in range(4)],
            "4 HTTP + 4 gRPC requests at once; preferred [4,8]",
            trials=3,
        )
    )
    s.append(
        lazy(
            "nodelay_oversized_request",
            "batch_nodelay",
            [Req("b9", batch=9)],
            "one request with batch size 9 > max_batch_size 8",
        )
    )
    return s


def error_scenarios():
    s = []
    # --- queue full
    s.append(
        lazy(
            "queue_full",
            "batch_queue_full",
            [
                Req("blocker", sleep_ms=600),
                Req("q1", offset_ms=100),
                Req("q2", offset_ms=150),
                Req("over_http", offset_ms=200),
                Req("over_grpc", "grpc", offset_ms=250),
                Req("q_after", offset_ms=1700),
            ],
            "max_queue_size 2: blocker executes (600 ms); q1, q2 wait; over_http and over_grpc arrive "
            "while 2 are queued; q_after arrives at +1700 ms, after the queue drained (q1/q2 run at "
            "~600 ms, or ~1100 ms when the batcher's 500 ms idle wait hits)",
            settle_s=0.5,
            trials=2,
        )
    )
    s.append(
        lazy(
            "queue_full_no_id",
            "batch_queue_full",
            [
                Req("blocker", sleep_ms=500),
                Req("q1", offset_ms=100),
                Req("q2", offset_ms=150),
                Req("over_http_no_id", offset_ms=200, send_id=False),
                Req("over_grpc_no_id", "grpc", offset_ms=250, send_id=False),
            ],
            "queue full for requests without an id",
        )
    )
    s.append(
        lazy(
            "queue_full_batch4",
            "batch_queue_full",
            [
                Req("blocker", sleep_ms=500),
                Req("q1_b4", offset_ms=100, batch=4),
                Req("q2_b1", offset_ms=150),
                Req("over_b1", offset_ms=200),
            ],
            "max_queue_size 2 counts requests, not batch elements? q1 has batch 4, q2 batch 1",
        )
    )
    # --- timeout, REJECT policy
    s.append(
        lazy(
            "timeout_reject",
            "batch_timeout_reject",
            [
                Req("blocker", sleep_ms=500, params={"timeout": 10000000}),
                Req("default_http", offset_ms=50),
                Req("default_grpc", "grpc", offset_ms=60),
                Req("long_http", offset_ms=70, params={"timeout": 2000000}),
                Req("long_grpc", "grpc", offset_ms=80, params={"timeout": 2000000}),
                Req("short_http", offset_ms=90, params={"timeout": 1000}),
                Req("short_grpc", "grpc", offset_ms=100, params={"timeout": 1000}),
            ],
            "REJECT, default_timeout_microseconds 100000, allow_timeout_override true. Blocker (500 ms, "
            "timeout 10 s) executes; default_* use the 100 ms default, long_* 'timeout' 2000000 us "
            "(more than the default), short_* 'timeout' 1000 us",
            settle_s=0.5,
        )
    )
    s.append(
        lazy(
            "timeout_reject_idle",
            "batch_timeout_reject",
            [Req("short_http", params={"timeout": 1}), Req("short_grpc", "grpc", offset_ms=200, params={"timeout": 1})],
            "REJECT policy, model idle, 'timeout' 1 us",
        )
    )
    s.append(
        lazy(
            "timeout_reject_late",
            "batch_timeout_reject",
            [
                Req("blocker", sleep_ms=500, params={"timeout": 10000000}),
                Req("late_default", offset_ms=450),
                Req("late_short", offset_ms=455, params={"timeout": 1000}),
                Req("late_long", offset_ms=460, params={"timeout": 2000000}),
                Req("late_short_grpc", "grpc", offset_ms=465, params={"timeout": 1000}),
            ],
            "REJECT, default 100 ms, override allowed. Requests arrive at +450..465 ms, shortly before the "
            "blocker (500 ms) ends: late_default/late_long have not expired when the instance frees up, "
            "late_short* ('timeout' 1000 us) have. Racy: when the dynamic batcher's 500 ms idle wait "
            "delays the next look at the queue past ~560 ms, all four are rejected",
            settle_s=0.5,
            trials=3,
        )
    )
    s.append(
        lazy(
            "timeout_delay",
            "batch_timeout_delay",
            [
                Req("blocker", sleep_ms=500),
                Req("d_early_short", offset_ms=50, batch=8, params={"timeout": 1000}),
                Req("d_late_default", offset_ms=100, batch=8),
            ],
            "DELAY, default_timeout_microseconds 2000000, override allowed. Both batch 8 (one execute "
            "each). d_early_short ('timeout' 1000 us, sent first) has expired when the blocker (500 ms) "
            "ends, d_late_default (2 s default) has not",
            trials=2,
        )
    )
    s.append(
        lazy(
            "timeout_delay_small",
            "batch_timeout_delay",
            [
                Req("blocker", sleep_ms=500),
                Req("d_short_1", offset_ms=50, params={"timeout": 1000}),
                Req("d_short_2", offset_ms=60, params={"timeout": 1000}),
                Req("d_default_1", offset_ms=100),
                Req("d_default_2", offset_ms=110),
            ],
            "DELAY policy, batch-1 requests: two expired (short), two not: grouping and order",
            trials=2,
        )
    )
    s.append(
        lazy(
            "timeout_no_override",
            "batch_no_override",
            [
                Req("blocker", sleep_ms=400),
                Req("t_http", offset_ms=50, params={"timeout": 1000}),
                Req("t_grpc", "grpc", offset_ms=60, params={"timeout": 1000}),
            ],
            "REJECT, default_timeout_microseconds 0, allow_timeout_override FALSE; requests carry "
            "'timeout' 1000 us while the model is busy 400 ms",
        )
    )
    s.append(
        lazy(
            "timeout_no_queue_policy",
            "batch_nodelay",
            [
                Req("blocker", sleep_ms=400),
                Req("t_http", offset_ms=50, params={"timeout": 1000}),
                Req("t_grpc", "grpc", offset_ms=60, params={"timeout": 1000}),
            ],
            "dynamic_batching without default_queue_policy; 'timeout' 1000 us while busy",
        )
    )
    s.append(
        lazy(
            "timeout_default_scheduler",
            "no_dynamic_batching",
            [
                Req("blocker", sleep_ms=400),
                Req("t_http", offset_ms=50, params={"timeout": 1000}),
                Req("t_grpc", "grpc", offset_ms=60, params={"timeout": 1000}),
            ],
            "no dynamic_batching (default scheduler); 'timeout' 1000 us while busy",
        )
    )
    # --- priority
    s.append(
        lazy(
            "priority_order_batch4",
            "batch_priority",
            [
                Req("blocker", sleep_ms=500),
                Req("L1_default", offset_ms=100, batch=4),
                Req("L2_p2", offset_ms=120, batch=4, params={"priority": 2}),
                Req("H1_p1", offset_ms=140, batch=4, params={"priority": 1}),
                Req("L3_default", offset_ms=160, batch=4),
                Req("H2_p1_grpc", "grpc", offset_ms=180, batch=4, params={"priority": 1}),
            ],
            "priority_levels 2, default_priority_level 2, delay 0. Model busy 500 ms; then (in send order) "
            "L1 (no priority), L2 (priority 2), H1 (priority 1), L3 (no priority), H2 (gRPC priority 1), "
            "each batch 4 so at most 2 fit into one execute",
            trials=2,
        )
    )
    s.append(
        lazy(
            "priority_order_batch1",
            "batch_priority",
            [
                Req("blocker", sleep_ms=500),
                Req("L1_default", offset_ms=100),
                Req("L2_p2", offset_ms=120, params={"priority": 2}),
                Req("H1_p1", offset_ms=140, params={"priority": 1}),
                Req("L3_default", offset_ms=160),
                Req("H2_p1", offset_ms=180, params={"priority": 1}),
            ],
            "same with batch-1 requests: all fit into one execute; the order inside it",
            trials=2,
        )
    )
    s.append(
        lazy(
            "priority_order_batch8",
            "batch_priority",
            [
                Req("blocker", sleep_ms=500),
                Req("L1_default", offset_ms=100, batch=8),
                Req("H1_p1", offset_ms=120, batch=8, params={"priority": 1}),
                Req("L2_p2", offset_ms=140, batch=8, params={"priority": 2}),
                Req("H2_p1", offset_ms=160, batch=8, params={"priority": 1}),
            ],
            "batch-8 requests (one execute each): execution order",
        )
    )
    s.append(
        lazy(
            "priority_invalid_idle",
            "batch_priority",
            [
                Req("p5_http", params={"priority": 5}),
                Req("p5_grpc", "grpc", offset_ms=200, params={"priority": 5}),
                Req("p3_http", offset_ms=400, params={"priority": 3}),
                Req("p0_http", offset_ms=600, params={"priority": 0}),
                Req(
                    "p5_grpc_int64",
                    "grpc",
                    offset_ms=800,
                    params={"priority": 5},
                    grpc_param_types={"priority": "int64_param"},
                ),
            ],
            "priority 5 / 3 / 0 with priority_levels 2, model idle",
        )
    )
    s.append(
        lazy(
            "priority_invalid_position",
            "batch_priority",
            [
                Req("blocker", sleep_ms=500),
                Req("L1_p2", offset_ms=100, batch=8, params={"priority": 2}),
                Req("X_p5", offset_ms=120, batch=8, params={"priority": 5}),
                Req("H1_p1", offset_ms=140, batch=8, params={"priority": 1}),
            ],
            "where an out-of-range priority (5) is scheduled relative to levels 1 and 2 (batch 8 each)",
        )
    )
    s.append(
        lazy(
            "priority_order_batch8_blocker300",
            "batch_priority",
            [
                Req("blocker", sleep_ms=300),
                Req("L1_default", offset_ms=100, batch=8),
                Req("H1_p1", offset_ms=120, batch=8, params={"priority": 1}),
                Req("L2_p2", offset_ms=140, batch=8, params={"priority": 2}),
                Req("H2_p1", offset_ms=160, batch=8, params={"priority": 1}),
            ],
            "as priority_order_batch8 with a 300 ms blocker (shows whether gaps between executes are the "
            "dynamic batcher's 500 ms idle wait)",
            trials=3,
        )
    )
    s.append(
        lazy(
            "priority3_out_of_range",
            "batch_priority3",
            [
                Req("blocker", sleep_ms=400),
                Req("X_p5", offset_ms=100, batch=8, params={"priority": 5}),
                Req("L_p3", offset_ms=120, batch=8, params={"priority": 3}),
                Req("M_p2", offset_ms=140, batch=8, params={"priority": 2}),
            ],
            "priority_levels 3, default_priority_level 2; batch 8 each. X (priority 5) sent first: "
            "order X, M, L = out-of-range mapped to the default level 2; M, X, L = clamped to 3",
            trials=2,
        )
    )
    s.append(
        lazy(
            "priority3_zero_and_none",
            "batch_priority3",
            [
                Req("blocker", sleep_ms=400),
                Req("Z_p0", offset_ms=100, batch=8, params={"priority": 0}),
                Req("L_p3", offset_ms=120, batch=8, params={"priority": 3}),
                Req("N_none", offset_ms=140, batch=8),
                Req("M_p2", offset_ms=160, batch=8, params={"priority": 2}),
                Req("H_p1", offset_ms=180, batch=8, params={"priority": 1}),
            ],
            "priority_levels 3, default 2: priority 0, 3, none, 2, 1 (batch 8 each)",
            trials=2,
        )
    )
    s.append(
        lazy(
            "priority_on_model_without_levels",
            "batch_nodelay",
            [
                Req("p1_http", params={"priority": 1}),
                Req("p7_http", offset_ms=200, params={"priority": 7}),
                Req("p7_grpc", "grpc", offset_ms=400, params={"priority": 7}),
            ],
            "priority parameter on a dynamic-batching model without priority_levels",
        )
    )
    s.append(
        lazy(
            "priority_default_scheduler",
            "no_dynamic_batching",
            [Req("p1_http", params={"priority": 1}), Req("p7_grpc", "grpc", offset_ms=200, params={"priority": 7})],
            "priority parameter on a model without dynamic_batching",
        )
    )
    # --- parameter types
    s.append(
        lazy(
            "param_types",
            "batch_timeout_reject",
            [
                Req("timeout_string_http", params={"timeout": "abc"}),
                Req("timeout_negative_http", offset_ms=150, params={"timeout": -5}),
                Req("timeout_float_http", offset_ms=300, params={"timeout": 1000.5}),
                Req("timeout_bool_http", offset_ms=450, params={"timeout": True}),
                Req(
                    "timeout_string_grpc",
                    "grpc",
                    offset_ms=600,
                    params={"timeout": "abc"},
                    grpc_param_types={"timeout": "string_param"},
                ),
                Req(
                    "timeout_uint64_grpc",
                    "grpc",
                    offset_ms=750,
                    params={"timeout": 2000000},
                    grpc_param_types={"timeout": "uint64_param"},
                ),
                Req(
                    "timeout_double_grpc",
                    "grpc",
                    offset_ms=900,
                    params={"timeout": 2000000.0},
                    grpc_param_types={"timeout": "double_param"},
                ),
            ],
            "wrongly typed 'timeout' request parameters (model idle)",
        )
    )
    s.append(
        lazy(
            "priority_param_types",
            "batch_priority",
            [
                Req("priority_string_http", params={"priority": "high"}),
                Req("priority_negative_http", offset_ms=150, params={"priority": -1}),
                Req("priority_float_http", offset_ms=300, params={"priority": 1.0}),
                Req(
                    "priority_string_grpc",
                    "grpc",
                    offset_ms=450,
                    params={"priority": "1"},
                    grpc_param_types={"priority": "string_param"},
                ),
                Req(
                    "priority_int64_grpc",
                    "grpc",
                    offset_ms=600,
                    params={"priority": 1},
                    grpc_param_types={"priority": "int64_param"},
                ),
                Req(
                    "priority_negative_int64_grpc",
                    "grpc",
                    offset_ms=750,
                    params={"priority": -1},
                    grpc_param_types={"priority": "int64_param"},
                ),
            ],
            "wrongly typed 'priority' request parameters (model idle)",
        )
    )
    return s


def ordering_scenarios():
    s = []
    reqs = [
        Req("first_600ms", sleep_ms=600),
        Req("second_300ms", offset_ms=50, sleep_ms=300),
        Req("third_50ms", offset_ms=100, sleep_ms=50),
    ]
    for m in ("ordering_preserve", "ordering_free"):
        s.append(
            lazy(
                m,
                m,
                reqs,
                f"{m}: 3 instances, delay 0, preserve_ordering "
                f"{'true' if m == 'ordering_preserve' else 'false'}; requests sleep 600/300/50 ms, "
                "sent 50 ms apart: each runs on its own instance and later ones finish first",
                trials=2,
                settle_s=0.3,
            )
        )
    reqs_g = [
        Req("first_600ms", "grpc", sleep_ms=600),
        Req("second_300ms", "grpc", offset_ms=50, sleep_ms=300),
        Req("third_50ms", "grpc", offset_ms=100, sleep_ms=50),
    ]
    s.append(lazy("ordering_preserve_grpc", "ordering_preserve", reqs_g, "ordering_preserve, same over gRPC"))
    return s


def startup_facts(srv):
    """Warmup/startup facts of the main server (default mode)."""
    log = srv.log_text()
    idx = base.do_http(base.http_case("repository_index", "POST", "/v2/repository/index", b""))
    ready = base.do_http(base.http_case("health_ready", "GET", "/v2/health/ready"))
    facts = {
        "server_live_after_s": srv.live_after_s,
        "repository_index": idx,
        "note": "t_rel_to_server_live_ms < 0: logged before /v2/health/live first answered 200",
        "health_ready": {"status": ready["status"], "body_b64": ready["body_b64"]},
    }
    lines = log.splitlines()
    facts["log_lines_warmup"] = [ln for ln in lines if re.search(r"warm", ln, re.I)]
    facts["model_status_table"] = base.log_excerpts(log)["model_status_table"]
    for m in ("warmup_good", "warmup_file"):
        recs = ModelLog.read_all(srv, m)
        facts[f"{m}_model_log_before_first_request"] = [
            dict(r, t_rel_to_server_live_ms=round(((r.get("t_end") or r.get("t")) - srv.t_live) * 1000, 1))
            for r in recs
        ]
        facts[f"{m}_ready"] = base.do_http(base.http_case("ready", "GET", f"/v2/models/{m}/ready"))
        facts[f"{m}_stats_before_first_request"] = base.do_http(base.http_case("stats", "GET", f"/v2/models/{m}/stats"))
        _, recs2, _ = fire(
            srv, m, [Req("first_client_request"), Req("first_client_request_grpc", "grpc", offset_ms=100)]
        )
        facts[f"{m}_first_client_requests"] = recs2
    return facts


def perf_once(srv, c, stability):
    stats0 = base.do_http(base.http_case("s", "GET", "/v2/models/perf_identity/stats"))["json"]
    args = [
        str(PERF_ANALYZER),
        "-m",
        "perf_identity",
        "-u",
        f"localhost:{HTTP_PORT}",
        "--concurrency-range",
        f"{c}:{c}",
        "--measurement-interval",
        "3000",
        "--stability-percentage",
        str(stability),
        "--max-trials",
        "10",
    ]
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True, timeout=400)
    srv.check_alive()
    stats1 = base.do_http(base.http_case("s", "GET", "/v2/models/perf_identity/stats"))["json"]
    lines = p.stdout.splitlines()
    summary = [
        ln
        for ln in lines
        if re.search(
            r"Concurrency: \d+, throughput|Request count|Throughput|Avg latency|Avg HTTP time|"
            r"p\d\d latency|Inference count|Execution count|Successful request count|Avg request latency",
            ln,
        )
    ]
    b0 = {b["batch_size"]: b["compute_infer"]["count"] for b in stats0["model_stats"][0].get("batch_stats", [])}
    b1 = {b["batch_size"]: b["compute_infer"]["count"] for b in stats1["model_stats"][0].get("batch_stats", [])}
    hist = {str(k): b1[k] - b0.get(k, 0) for k in sorted(b1) if b1[k] - b0.get(k, 0)}
    nums = {}
    for key, pat in (
        ("throughput_infer_per_sec", r"Throughput: ([\d.]+) infer/sec"),
        ("avg_latency_us", r"Avg latency: (\d+) usec"),
        ("p50_latency_us", r"p50 latency: (\d+) usec"),
        ("p90_latency_us", r"p90 latency: (\d+) usec"),
        ("p95_latency_us", r"p95 latency: (\d+) usec"),
        ("p99_latency_us", r"p99 latency: (\d+) usec"),
    ):
        m = re.search(pat, p.stdout)
        nums[key] = float(m.group(1)) if m else None
    run = {
        "concurrency": c,
        "protocol": "http",
        "command": " ".join(["perf_analyzer"] + args[1:]),
        "returncode": p.returncode,
        "wall_s": round(time.time() - t0, 1),
        "numbers": nums,
        "summary_lines": summary,
        "stdout": lines,
        "stderr_tail": p.stderr.splitlines()[-20:],
        "server_batch_size_histogram_during_run": hist,
        "note": "server_batch_size_histogram_during_run: executions per batch size (delta of "
        "/v2/models/perf_identity/stats batch_stats over the whole perf_analyzer run, "
        "all its trial windows included)",
    }
    print(f"  perf c={c} stability={stability}: rc={p.returncode} {nums} batches={hist}", flush=True)
    return run


def perf_runs(srv):
    """perf_analyzer at concurrency 1, 8, 32 (HTTP). On this shared 2-CPU machine the default
    stability criterion was rarely met: --stability-percentage 50 first, 100 when that fails."""
    runs = []
    for c in (1, 8, 32):
        for stability in (50, 100):
            run = perf_once(srv, c, stability)
            runs.append(run)
            if run["returncode"] == 0:
                break
    return runs


def run_group(tmp: Path, name: str, models, items, attempts=8):
    """Starts Triton (default mode, --exit-on-error=false) on a copy of the repository holding
    only `models` and runs the lazy items [(id, fn(server))]. When the server dies (it was
    killed from outside several times while this was written), a fresh one is started and
    the items not yet done are run."""
    repo = tmp / f"repo_{name}"
    shutil.rmtree(repo, ignore_errors=True)
    for m in models:
        shutil.copytree(REPO / m, repo / m, ignore=shutil.ignore_patterns("__pycache__"))
    done, info = {}, {}
    for attempt in range(attempts):
        srv = Server(repo, ["--exit-on-error=false"], tmp, f"{name}_{attempt}")
        try:
            srv.check_alive()
            info = {
                "server_command": [
                    "run-triton.sh",
                    f"<copy of tests/data/scheduling_repository holding only {', '.join(models)}>",
                    *srv.cmd[2:],
                ],
                "models": list(models),
            }
            for key, fn in items:
                if key not in done:
                    done[key] = fn(srv)
            srv.check_alive()
            log = srv.log_text()
            version = re.search(r"server_version\s*\|\s*(\S+)", log)
            info["triton_version"] = version.group(1) if version else None
            info["server_log_error_lines"] = [ln for ln in log.splitlines() if ln.startswith("E")]
            return info, [done[k] for k, _ in items]
        except ServerDied as e:
            print(f"!! {e}; restarting ({attempt + 1}/{attempts}), {len(done)}/{len(items)} done", flush=True)
            time.sleep(3)
        finally:
            srv.stop()
    raise RuntimeError(f"group {name}: server kept dying")


BATCH_MODELS = ["batch_preferred", "batch_delay_only", "batch_nodelay", "no_dynamic_batching"]
ERROR_MODELS = [
    "batch_queue_full",
    "batch_timeout_reject",
    "batch_timeout_delay",
    "batch_no_override",
    "batch_nodelay",
    "no_dynamic_batching",
    "batch_priority",
    "batch_priority3",
]


def phase_main(tmp: Path, no_perf: bool, groups=None, out=None):
    """groups: subset of startup, batching, errors, ordering, perf (default: all)."""
    groups = set(groups or ["startup", "batching", "errors", "ordering", "perf"])
    out = dict(out or {})
    if "startup" in groups:
        print("== startup/warmup facts (warmup_good, warmup_file)", flush=True)
        info, (startup,) = run_group(tmp, "startup", ["warmup_good", "warmup_file"], [("startup", startup_facts)])
        out["startup"] = dict(startup, **info)
        out["triton_version"] = info["triton_version"]
    if "batching" in groups:
        print("== batching", flush=True)
        info, res = run_group(tmp, "batching", BATCH_MODELS, batching_scenarios())
        out["batching"] = {"server": info, "scenarios": res}
    if "errors" in groups:
        print("== errors/priority/timeouts", flush=True)
        info, res = run_group(tmp, "errors", ERROR_MODELS, error_scenarios())
        out["errors"] = {"server": info, "scenarios": res}
    if "ordering" in groups:
        print("== preserve_ordering", flush=True)
        info, res = run_group(tmp, "ordering", ["ordering_preserve", "ordering_free"], ordering_scenarios())
        out["ordering"] = {"server": info, "scenarios": res}
    if not no_perf and "perf" in groups:
        print("== perf_analyzer", flush=True)
        info, (perf,) = run_group(tmp, "perf", ["perf_identity"], [("perf", perf_runs)])
        out["perf_analyzer"] = {"server": info, "runs": perf}
    return out


# =========================================================================== warmup

FAILING_WARMUP = ("warmup_fails", "warmup_error_response")


def _lines(log, pat):
    return [ln for ln in log.splitlines() if re.search(pat, ln) and "Non-graceful" not in ln]


def warmup_failure_attempts(tmp: Path, model: str, how: str, max_attempts=10, want_ok=2):
    """Triton 2.51 crashes (SIGSEGV) in a good share of the runs in which a python-backend
    warmup fails, so each way of loading is tried several times and every outcome recorded.
    how: startup (--load-model, --exit-on-error=false), startup_exit_on_error (--load-model),
         load_http / load_grpc (explicit mode, repository API)."""
    attempts, ok = [], 0
    for i in range(max_attempts):
        flags = ["--model-control-mode=explicit"] + (["--log-verbose=1"] if how == "load_http" else [])
        if how == "startup":
            flags += [f"--load-model={model}", "--exit-on-error=false"]
        elif how == "startup_exit_on_error":
            flags += [f"--load-model={model}"]
        srv = Server(REPO, flags, tmp, f"{model}_{how}_{i}", wait_live=False)
        live = srv.wait_live(timeout=120)
        rec = {"attempt": i, "server_command": srv.command_for_json(), "server_came_up": bool(live)}
        cases = []
        try:
            if live and how in ("load_http", "load_grpc"):
                ch = grpc.insecure_channel(f"localhost:{GRPC_PORT}")
                c = (
                    base.http_case(f"load_{model}", "POST", f"/v2/repository/models/{model}/load", b"")
                    if how == "load_http"
                    else base.grpc_case(
                        f"load_{model}", "RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name=model)
                    )
                )
                c["answer"] = base.do_http(c) if how == "load_http" else base.do_grpc(ch, c)
                cases.append(c)
                ch.close()
            time.sleep(1.5)
            alive = srv.proc.poll() is None
            rec["server_alive_at_end"] = alive
            if alive:
                ch = grpc.insecure_channel(f"localhost:{GRPC_PORT}")
                for c in (
                    base.http_case("repository_index", "POST", "/v2/repository/index", b""),
                    base.grpc_case("repository_index", "RepositoryIndex", pb.RepositoryIndexRequest()),
                    base.http_case("model_ready", "GET", f"/v2/models/{model}/ready"),
                    base.http_case("health_ready", "GET", "/v2/health/ready"),
                    base.http_case(
                        "infer",
                        "POST",
                        f"/v2/models/{model}/infer",
                        jbody(
                            {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
                        ),
                    ),
                ):
                    c["answer"] = base.do_http(c) if c["protocol"] == "http" else base.do_grpc(ch, c)
                    cases.append(c)
                ch.close()
                alive = srv.proc.poll() is None
                rec["server_alive_at_end"] = alive
        finally:
            rc = srv.stop()
        rec["exit_code"] = rc
        rec["outcome"] = (
            "ok"
            if rec.get("server_alive_at_end")
            else "killed_from_outside(SIGTERM)"
            if rc == -signal.SIGTERM
            else "crashed(SIGSEGV)"
            if rc == -signal.SIGSEGV
            else f"exited({rc})"
        )
        rec["cases"] = cases
        log = srv.log_text()
        rec["log_lines"] = [
            ln
            for ln in _lines(log, rf"{model}|[Ww]armup|on purpose|^error|Signal")
            if "model configuration:" not in ln
            and "prepared: [" not in ln
            and "Starting Python backend stub" not in ln
            and not ln.startswith("name:")
        ]
        rec["model_status_table"] = base.log_excerpts(log)["model_status_table"]
        rec["log_tail"] = [ln for ln in log.splitlines() if "Non-graceful" not in ln][-8:]
        rec["model_log"] = ModelLog.read_all(srv, model)
        attempts.append(rec)
        print(
            f"  {model} {how} attempt {i}: {rec['outcome']} "
            f"{[c['answer'].get('status', c['answer'].get('code')) for c in cases][:2]}",
            flush=True,
        )
        if rec["outcome"] == "ok" or (how == "startup_exit_on_error" and rec["outcome"] == "exited(1)"):
            ok += 1
            if ok >= want_ok:
                break
    return attempts


def good_warmup_explicit(tmp: Path):
    srv = Server(REPO, ["--model-control-mode=explicit", "--log-verbose=1"], tmp, "warmup_explicit")
    cases = []
    try:
        srv.check_alive()
        for m in ("warmup_good", "warmup_file"):
            c = base.http_case(f"load_{m}", "POST", f"/v2/repository/models/{m}/load", b"")
            t_send = time.time()
            c["answer"] = base.do_http(c)
            t_done = time.time()
            srv.check_alive()
            recs = ModelLog.read_all(srv, m)
            c["model_log"] = [
                dict(r, t_rel_to_load_answer_ms=round(((r.get("t_end") or r.get("t")) - t_done) * 1000, 1))
                for r in recs
            ]
            c["load_request_sent_rel_ms"] = round((t_send - t_done) * 1000, 1)
            c["note"] = (
                "model_log t_rel_to_load_answer_ms < 0: the model had finished that call "
                "before the load request was answered"
            )
            cases.append(c)
            print(f"  load {m}: {c['answer']['status']} {c['answer'].get('json')}", flush=True)
            for c in (
                base.http_case(f"ready_{m}", "GET", f"/v2/models/{m}/ready"),
                base.http_case(f"stats_{m}", "GET", f"/v2/models/{m}/stats"),
            ):
                c["answer"] = base.do_http(c)
                cases.append(c)
            _, recs2, _ = fire(srv, m, [Req("first_client_request")])
            cases.append({"id": f"first_client_request_{m}", "fired": recs2})
        c = base.http_case("repository_index", "POST", "/v2/repository/index", b"")
        c["answer"] = base.do_http(c)
        cases.append(c)
        srv.check_alive()
    finally:
        srv.stop()
    log = srv.log_text()
    return {
        "server_command": srv.command_for_json(),
        "cases": cases,
        "log_lines_warmup": [
            ln
            for ln in _lines(log, r"[Ww]armup|warmup_good|warmup_file")
            if "model configuration:" not in ln and not ln.startswith("name:")
        ],
    }


def phase_warmup(tmp: Path):
    out = {"good_explicit": run_phase(good_warmup_explicit, tmp), "failing": {}}
    for m in FAILING_WARMUP:
        out["failing"][m] = {
            how: warmup_failure_attempts(tmp, m, how, want_ok=1 if how != "startup" else 2)
            for how in ("startup", "load_http", "load_grpc", "startup_exit_on_error")
        }
    return out


# =========================================================================== rate limiter

RL_VARIANTS = [
    (
        "rl_exec_count_R1_1",
        ["--rate-limit=execution_count", "--rate-limit-resource=R1:1"],
        "R1:1 < the 2 each instance needs; --exit-on-error default (true)",
    ),
    (
        "rl_exec_count_R1_1_no_exit",
        ["--rate-limit=execution_count", "--rate-limit-resource=R1:1", "--exit-on-error=false"],
        "same, --exit-on-error=false: the server stays up",
    ),
    (
        "rl_exec_count_R1_2",
        ["--rate-limit=execution_count", "--rate-limit-resource=R1:2"],
        "R1:2: one instance at a time can hold R1",
    ),
    (
        "rl_exec_count_R1_4",
        ["--rate-limit=execution_count", "--rate-limit-resource=R1:4"],
        "R1:4: both instances can run at once",
    ),
    ("rl_exec_count_no_resource", ["--rate-limit=execution_count"], "no --rate-limit-resource: Triton sizes R1 itself"),
    ("rl_off_R1_1", ["--rate-limit-resource=R1:1"], "R1:1 but the rate limiter off (default --rate-limit=off)"),
    ("rl_off", [], "rate limiter off (default)"),
    ("rl_bad_mode", ["--rate-limit=bogus"], "invalid --rate-limit value"),
    (
        "rl_bad_resource",
        ["--rate-limit=execution_count", "--rate-limit-resource=R1"],
        "--rate-limit-resource without a count",
    ),
]


def phase_rate_limit(tmp: Path):
    out = []
    for name, flags, desc in RL_VARIANTS:

        def one(name=name, flags=flags, desc=desc):
            srv = Server(
                REPO, ["--model-control-mode=explicit", "--load-model=rate_limited", *flags], tmp, name, wait_live=False
            )
            live = srv.wait_live(timeout=120)
            rec = {
                "id": name,
                "description": desc,
                "server_command": srv.command_for_json(),
                "server_came_up": bool(live),
            }
            try:
                if not live:
                    rc = srv.wait_exit()
                    rec["exit_code"] = rc
                else:
                    ch = grpc.insecure_channel(f"localhost:{GRPC_PORT}")
                    cases = []
                    for c in (
                        base.http_case("repository_index", "POST", "/v2/repository/index", b""),
                        base.http_case("model_ready", "GET", "/v2/models/rate_limited/ready"),
                        base.http_case("health_ready", "GET", "/v2/health/ready"),
                        base.http_case("load_again", "POST", "/v2/repository/models/rate_limited/load", b""),
                        base.grpc_case(
                            "load_again",
                            "RepositoryModelLoad",
                            pb.RepositoryModelLoadRequest(model_name="rate_limited"),
                        ),
                    ):
                        c["answer"] = base.do_http(c) if c["protocol"] == "http" else base.do_grpc(ch, c)
                        cases.append(c)
                    ch.close()
                    rec["cases"] = cases
                    ready = cases[1]["answer"]["status"] == 200
                    if ready:
                        rec["concurrency_probe"] = scenario(
                            srv,
                            f"{name}_two_concurrent",
                            "rate_limited",
                            [Req("a", sleep_ms=400), Req("b", sleep_ms=400)],
                            "2 requests (400 ms each) at once on 2 instances (no dynamic batching): "
                            "overlapping executes = both instances ran at the same time",
                            trials=2,
                        )
                        rec["instances_ran_concurrently"] = [
                            len(t["executes"]) == 2 and t["executes"][1]["start_ms"] < t["executes"][0]["end_ms"]
                            for t in rec["concurrency_probe"]["trials"]
                        ]
                    else:
                        c = base.http_case(
                            "infer",
                            "POST",
                            "/v2/models/rate_limited/infer",
                            jbody(
                                {
                                    "inputs": [
                                        {"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
                                    ]
                                }
                            ),
                        )
                        c["answer"] = base.do_http(c)
                        cases.append(c)
                    srv.check_alive()
            finally:
                rc = srv.stop()
            log = srv.log_text().splitlines()
            rec["exit_code"] = rec.get("exit_code", rc)
            rec["log_lines"] = [
                ln
                for ln in log
                if re.search(r"R1|rate|[Rr]esource|rate_limited|^error|^E\d|^Bad option|^invalid", ln)
                and "Non-graceful" not in ln
                and not ln.startswith(("\t", "  "))
            ]
            rec["log_tail"] = log[-15:]
            if rec["exit_code"] == -signal.SIGTERM and not live:
                raise ServerDied(f"{name}: killed from outside")
            print(
                f"  {name}: up={rec['server_came_up']} rc={rec['exit_code']} "
                f"concurrent={rec.get('instances_ran_concurrently')}",
                flush=True,
            )
            return rec

        out.append(run_phase(one))
    return out


# =========================================================================== main


def slim(obj):
    """Drops the raw copies of successful answers that are also stored parsed: body_b64 of
    HTTP 200 answers with a JSON body, response_b64 of gRPC OK answers with response_json.
    Error answers and every request keep their exact bytes."""
    if isinstance(obj, dict):
        if obj.get("status") == 200 and obj.get("json") is not None:
            obj.pop("body_b64", None)
        if obj.get("code") == "OK" and obj.get("response_json") is not None:
            obj.pop("response_b64", None)
        for v in obj.values():
            slim(v)
    elif isinstance(obj, list):
        for v in obj:
            slim(v)
    return obj


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--only", default="", help="comma-separated phases: main,warmup,rate_limit")
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--groups", default="", help="main phase only: startup,batching,errors,ordering,perf")
    ap.add_argument("--keep", action="store_true", help="keep the server and model logs")
    args = ap.parse_args()
    phases = [p for p in args.only.split(",") if p] or ["main", "warmup", "rate_limit"]
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if (args.only and out_path.exists()) else {}
    tmp = Path(tempfile.mkdtemp(prefix="tritonlite-sched-"))
    result.update(
        {
            "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "repository": "tests/data/scheduling_repository",
            "repository_abs_path_at_capture": str(REPO),
            "note": (
                "Recorded verbatim from the real Triton 2.51 (CPU, python backend). Times are "
                "milliseconds relative to t0 (the moment the scenario's first request was due); "
                "executes come from the probe model's own log. Timings were taken on a 2-CPU "
                "machine and are indicative only; batch composition and error texts are the facts."
            ),
        }
    )
    try:
        if "main" in phases:
            result["main"] = phase_main(tmp, args.no_perf, [g for g in args.groups.split(",") if g], result.get("main"))
            result["triton_version"] = result["main"].get("triton_version")
        if "warmup" in phases:
            print("== warmup", flush=True)
            result["warmup"] = phase_warmup(tmp)
        if "rate_limit" in phases:
            print("== rate limiter", flush=True)
            result["rate_limiter"] = phase_rate_limit(tmp)
    finally:
        if args.keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    out_path.write_text(json.dumps(slim(result), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    sys.exit(main())
