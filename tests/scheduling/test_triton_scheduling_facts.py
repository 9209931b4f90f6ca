"""Replay the scheduling scenarios captured from the real Triton 2.51 against tritonlite.

tests/reference_data/scheduling/triton_2.51_scheduling.json (see the README beside it) holds,
for the probe models of tests/data/scheduling_repository/, the exact request bytes Triton got,
when each was sent, what it answered and which requests shared an execute() (the probe models
log every execute() to $TRITONLITE_SCHED_LOG_DIR/<model>.jsonl). The same bytes go to one
tritonlite server here, at the recorded offsets, and the model logs are compared:

* error answers exactly (HTTP status and body, gRPC code and details);
* execution order and batch composition equal one of Triton's recorded trials; on cases the
  README calls racy, only the invariant it states; requests sent at the same moment may sit in
  any order inside an execute() (Triton's order there is arbitrary too);
* milliseconds only as coarse bounds where the README states the timing as the fact (a request
  on a 100 ms delay model waits the delay, a blocker's queue is judged when it ends...). Triton's
  random ~500 ms batcher stalls are not copied.

Warmup and rate limiter facts are replayed with the server flags Triton was started with
(``--model-control-mode=explicit``, ``--load-model``, the rate-limit flags), the repository-API
loads with their recorded bytes; the default-mode startup facts (``main.startup``) on the main
server, which also loads the failing-warmup models at startup and must survive them (Triton 2.51
often crashed there). Not checked: perf_analyzer figures (``main.perf_analyzer``, machine-dependent)
and log lines other than the few asserted below. Where tritonlite differs from Triton outside the
batcher, the test is a strict xfail naming both behaviours.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
from serverutil import RunningServer, free_port

from tritonlite.protocol import grpc_service_pb2 as pb

TESTS = Path(__file__).parents[1]
REPOSITORY = (TESTS / "data" / "scheduling_repository").resolve()
REFERENCE = json.loads((TESTS / "reference_data" / "scheduling" / "triton_2.51_scheduling.json").read_text())
CAPTURE_PATH = REFERENCE["repository_abs_path_at_capture"]
SCENARIOS = {
    scenario["id"]: scenario
    for group in ("batching", "errors", "ordering")
    for scenario in REFERENCE["main"][group]["scenarios"]
}
RATE_LIMITER = {case["id"]: case for case in REFERENCE["rate_limiter"]}
STARTUP = REFERENCE["main"]["startup"]
FAILING_WARMUP = REFERENCE["warmup"]["failing"]

# Coarse timing bounds (ms). The delay models wait 100 ms; "at once" is anything clearly below it.
DELAY_WAITED_MS = 90
AT_ONCE_MS = 90
UPPER_MS = 600
# A replay whose sends drift further than this from the recorded offsets is not faithful; it is rerun.
SEND_TOLERANCE_MS = 40
MIN_GAP_S = 0.002  # between requests recorded at different offsets (the recorded gaps are >= 5 ms)
ATTEMPTS = 3


def local(text: str) -> str:
    return text.replace(CAPTURE_PATH, str(REPOSITORY))


def logged(text: str) -> str:
    """``text`` as a log line carries it: escaped inside the line's quotes, as Triton writes it."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


# --- a server with its probe-model logs ----------------------------------------------------------


class Probe:
    """A running tritonlite plus the folder its probe models log to."""

    def __init__(self, repository: Path, log_dir: Path, *flags: str) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        previous = os.environ.get("TRITONLITE_SCHED_LOG_DIR")
        os.environ["TRITONLITE_SCHED_LOG_DIR"] = str(log_dir)  # RunningServer inherits os.environ
        try:
            self.server = RunningServer([repository], *flags, wait_ready=False)
        finally:
            if previous is None:
                del os.environ["TRITONLITE_SCHED_LOG_DIR"]
            else:
                os.environ["TRITONLITE_SCHED_LOG_DIR"] = previous
        self.first_live_wall: float | None = None
        self.wait_live()
        self.channel = grpc.insecure_channel(self.server.grpc)
        self.infer_rpc = self.channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda raw: raw,
            response_deserializer=pb.ModelInferResponse.FromString,
        )

    def wait_live(self, timeout: float = 60.0) -> None:
        """Poll /v2/health/live; remember the wall time of its first 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.process.poll() is not None:
                raise RuntimeError(f"tritonlite-server exited early:\n{self.server.log()}")
            try:
                if requests.get(f"http://{self.server.http}/v2/health/live", timeout=1).status_code == 200:
                    self.first_live_wall = time.time()
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"tritonlite-server did not start:\n{self.server.log()}")

    def url(self, path: str) -> str:
        return f"http://{self.server.http}{path}"

    def log_size(self, model: str) -> int:
        path = self.log_dir / f"{model}.jsonl"
        return path.stat().st_size if path.exists() else 0

    def model_log(self, model: str, since: int = 0) -> list[dict]:
        path = self.log_dir / f"{model}.jsonl"
        if not path.exists():
            return []
        with path.open("rb") as handle:
            handle.seek(since)
            return [json.loads(line) for line in handle.read().splitlines() if line.strip()]

    def stop(self) -> int:
        self.channel.close()
        return self.server.stop()


# --- replaying a recorded trial --------------------------------------------------------------------


@dataclass
class Answer:
    protocol: str
    status: int | str  # HTTP status or gRPC code name
    error: str | None
    body: bytes = b""
    content_type: str | None = None
    message: object = None  # parsed success answer (HTTP JSON / ModelInferResponse)
    sent_ms: float = 0.0
    answered_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in (200, "OK")


@dataclass
class Execute:
    instance: str
    ids: list[str]
    shapes: list[list[int]]
    timeouts: list[int]
    start_ms: float
    end_ms: float

    @property
    def total(self) -> int:
        return sum(shape[0] for shape in self.shapes)


@dataclass
class Replay:
    scenario_id: str
    requests: list[dict]
    answers: dict[str, Answer]
    executes: list[Execute]
    offsets: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.offsets = {r["id"]: r["offset_ms"] for r in self.requests}

    @property
    def batches(self) -> list[list[str]]:
        return [e.ids for e in self.executes]

    def execute_of(self, request_id: str) -> Execute:
        (execute,) = [e for e in self.executes if request_id in e.ids]
        return execute

    def wait_ms(self, request_id: str) -> float:
        """From the request's send to the start of the execute() that ran it."""
        return self.execute_of(request_id).start_ms - self.answers[request_id].sent_ms

    def latency_ms(self, request_id: str) -> float:
        answer = self.answers[request_id]
        return answer.answered_ms - answer.sent_ms

    def unfaithful(self) -> str | None:
        """Why this replay did not keep the recorded timing (a loaded client machine), or None.

        Every request must go out within SEND_TOLERANCE_MS of its offset, and requests with
        different offsets in their recorded order, at least 1 ms apart (else the server may queue
        them the other way round)."""
        ordered = sorted(self.requests, key=lambda r: r["offset_ms"])
        for request in ordered:
            late = self.answers[request["id"]].sent_ms - request["offset_ms"]
            if abs(late) > SEND_TOLERANCE_MS:
                return f"{request['id']} sent {late:.1f} ms off its offset"
        for before, after in zip(ordered, ordered[1:], strict=False):
            if before["offset_ms"] < after["offset_ms"]:
                gap = self.answers[after["id"]].sent_ms - self.answers[before["id"]].sent_ms
                if gap < 1.0:
                    return f"{after['id']} sent {gap:.1f} ms after {before['id']}"
        return None

    def describe(self) -> str:
        lines = [f"{self.scenario_id}: executes (start..end ms, ids):"]
        lines += [f"  {e.start_ms:8.1f}..{e.end_ms:8.1f} {e.instance} {e.ids}" for e in self.executes]
        lines += [
            f"  {rid}: sent {a.sent_ms:.1f} answered {a.answered_ms:.1f} -> {a.status} {a.error or ''}"
            for rid, a in self.answers.items()
        ]
        return "\n".join(lines)


class _Schedule:
    """When each sender goes: at t0 + its offset, but never before every request of the previous
    (earlier) offset is out, plus MIN_GAP_S, so that a thread woken late cannot overtake an earlier
    request. Requests with the same offset go together."""

    def __init__(self, recorded_requests: list[dict]) -> None:
        self.start = threading.Barrier(len(recorded_requests), action=self._set_t0)
        offsets = sorted({r["offset_ms"] for r in recorded_requests})
        group = {o: [r["id"] for r in recorded_requests if r["offset_ms"] == o] for o in offsets}
        previous = dict(zip(offsets[1:], offsets, strict=False))
        self.before = {r["id"]: group.get(previous.get(r["offset_ms"]), []) for r in recorded_requests}
        self.sent = {r["id"]: threading.Event() for r in recorded_requests}
        self.sent_at: dict[str, float] = {}
        self.t0 = self.t0_wall = 0.0

    def _set_t0(self) -> None:  # runs once every sender is connected, just before they are released
        self.t0 = time.monotonic() + 0.02
        self.t0_wall = time.time() + 0.02

    def wait_turn(self, request: dict) -> None:
        self.start.wait()
        due = self.t0 + request["offset_ms"] / 1000
        for rid in self.before[request["id"]]:
            self.sent[rid].wait(60)
            due = max(due, self.sent_at.get(rid, 0.0) + MIN_GAP_S)
        time.sleep(max(0.0, due - time.monotonic()))

    def mark_sent(self, request_id: str) -> None:
        self.sent_at[request_id] = time.monotonic()
        self.sent[request_id].set()


def _send(probe: Probe, request: dict, schedule: _Schedule, out: dict) -> None:
    """Connect, wait for the request's turn, send it; record the answer."""
    recorded = request["request"]
    try:
        if request["protocol"] == "http":
            connection = http.client.HTTPConnection(probe.server.http, timeout=60)
            connection.connect()  # connected before the send time, so the send itself is quick
            body = base64.b64decode(recorded["body_b64"])
            schedule.wait_turn(request)
            sent = time.time()
            connection.request(recorded["method"], recorded["path"], body, recorded["headers"])
            schedule.mark_sent(request["id"])
            response = connection.getresponse()
            body = response.read()
            answered = time.time()
            connection.close()
            ok = response.status == 200
            answer = Answer(
                "http",
                response.status,
                None if ok else json.loads(body)["error"],
                body,
                response.getheader("content-type"),
                json.loads(body) if ok else None,
            )
        else:
            payload = base64.b64decode(recorded["request_b64"])
            schedule.wait_turn(request)
            sent = time.time()
            call = probe.infer_rpc.future(payload, timeout=60)
            schedule.mark_sent(request["id"])
            try:
                answer = Answer("grpc", "OK", None, message=call.result())
            except grpc.RpcError as exc:
                answer = Answer("grpc", exc.code().name, exc.details())
            answered = time.time()
        answer.sent_ms = (sent - schedule.t0_wall) * 1000
        answer.answered_ms = (answered - schedule.t0_wall) * 1000
        out[request["id"]] = answer
    except Exception as exc:  # noqa: BLE001 - reported by replay()
        schedule.start.abort()  # no sender waits forever for one that failed
        out[request["id"]] = exc
    finally:
        schedule.sent[request["id"]].set()


def replay(probe: Probe, scenario_id: str, model: str, recorded_requests: list[dict]) -> Replay:
    """Send the recorded requests at their recorded offsets; collect answers and the model's executes."""
    since = probe.log_size(model)
    out: dict[str, Answer] = {}
    schedule = _Schedule(recorded_requests)
    threads = [
        threading.Thread(target=_send, args=(probe, request, schedule, out), daemon=True)
        for request in recorded_requests
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    failures = {rid: exc for rid, exc in out.items() if isinstance(exc, Exception)}
    assert not failures, failures
    assert set(out) == {r["id"] for r in recorded_requests}, "a sender did not finish"
    executes = []
    for record in probe.model_log(model, since):
        if record.get("event") != "execute":
            continue
        executes.append(
            Execute(
                record["instance"],
                [r["id"] for r in record["requests"]],
                [r["shape"] for r in record["requests"]],
                [r.get("timeout_us", 0) for r in record["requests"]],
                (record["t_start"] - schedule.t0_wall) * 1000,
                (record["t_end"] - schedule.t0_wall) * 1000,
            )
        )
    executes.sort(key=lambda e: e.start_ms)
    ordered = {r["id"]: out[r["id"]] for r in recorded_requests}
    return Replay(scenario_id, recorded_requests, ordered, executes)


# --- comparing with the recorded trials ---------------------------------------------------------


def canonical(batches: list[list[str]], offsets: dict[str, float]) -> tuple:
    """Batches in execution order; requests sent at the same moment form an unordered group."""
    result = []
    for batch in batches:
        runs: list[tuple[float, set]] = []
        for rid in batch:
            if runs and runs[-1][0] == offsets[rid]:
                runs[-1][1].add(rid)
            else:
                runs.append((offsets[rid], {rid}))
        result.append(tuple((offset, frozenset(ids)) for offset, ids in runs))
    return tuple(result)


def assert_answer_matches(rid: str, got: Answer, recorded: dict) -> None:
    """Status and error text exactly; for successes the answer's envelope (not the tensor values)."""
    if got.protocol == "http":
        assert got.status == recorded["status"], (rid, got.status, got.body)
        if recorded["status"] != 200:
            assert got.body == local(base64.b64decode(recorded["body_b64"]).decode()).encode(), rid
        else:
            want = recorded["json"]
            assert {k: got.message[k] for k in ("id", "model_name", "model_version") if k in got.message} == {
                k: want[k] for k in ("id", "model_name", "model_version") if k in want
            }, rid
            shape = [(o["name"], o["datatype"], o["shape"]) for o in got.message["outputs"]]
            assert shape == [(o["name"], o["datatype"], o["shape"]) for o in want["outputs"]], rid
    else:
        assert (got.status, got.error or "") == (recorded["code"], local(recorded["details"])), rid
        if recorded["code"] == "OK":
            want = recorded["response_json"]
            message = got.message
            assert (message.model_name, message.model_version, message.id) == (
                want["model_name"],
                want["model_version"],
                want.get("id", ""),
            ), rid
            outputs = [(o.name, o.datatype, [str(d) for d in o.shape]) for o in message.outputs]
            assert outputs == [(o["name"], o["datatype"], o["shape"]) for o in want["outputs"]], rid


def assert_executes_consistent(result: Replay) -> None:
    """Each request that succeeded ran in exactly one execute(), the others in none; <= max_batch_size."""
    seen = [rid for e in result.executes for rid in e.ids]
    assert len(seen) == len(set(seen)), result.describe()
    assert set(seen) == {rid for rid, a in result.answers.items() if a.ok}, result.describe()
    assert all(e.total <= 8 for e in result.executes), result.describe()


def assert_timeouts_seen(result: Replay, trial: dict) -> None:
    """request.timeout() inside the model is the request's own 'timeout' parameter (0 when not given)."""
    recorded = {
        rid: timeout
        for e in trial["executes"]
        for rid, timeout in zip(e["request_ids"], e["request_timeouts_us"], strict=True)
    }
    got = {rid: timeout for e in result.executes for rid, timeout in zip(e.ids, e.timeouts, strict=True)}
    assert {rid: got[rid] for rid in recorded if rid in got} == {rid: recorded[rid] for rid in recorded if rid in got}


# Per scenario: how batches are compared. "exact" (the default): the canonical batches equal one
# recorded trial's (or one in ALTERNATIVES); "sizes": the sequence of summed batch sizes equals a
# recorded trial's (or one in ALTERNATIVES); "invariant": racy, only the invariant in CHECKS.
ALTERNATIVES = {
    # "(an earlier run once gave [8])": the 4 requests were all queued when the batcher first
    # looked, which makes the largest preferred size at once
    "preferred_batch_sizes_2x4": {"sizes": [[8]]},
    # the same race with 8 requests [1,4] (seen with tritonlite on a loaded machine; not in
    # Triton's recorded trials, but the same rule: a queue holding 8 is a preferred size 8 at once)
    "preferred_8_simultaneous": {"sizes": [[8]]},
    "preferred_http_and_grpc_mix": {"sizes": [[8]]},
    # "(an earlier run once gave [1,8,1,1])"
    "nodelay_10_behind_blocker": {
        "batches": [[["blocker"], ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"], ["r9"], ["r10"]]]
    },
}
MODES = {
    "preferred_8_simultaneous": "sizes",
    "preferred_5_simultaneous": "sizes",
    "preferred_4_simultaneous": "exact",
    "preferred_3_simultaneous": "exact",
    "preferred_lone_request": "exact",
    "delay_only_lone_request": "exact",
    "nodelay_lone_request": "exact",
    "no_dynamic_batching_lone_request": "exact",
    "delay_only_8_simultaneous": "exact",
    "delay_only_5_simultaneous": "exact",
    "delay_only_10_simultaneous": "sizes",
    "nodelay_8_simultaneous": "invariant",  # racy: whatever was queued when the batcher looked
    "preferred_mixed_shapes": "invariant",  # groups vary; shapes never mix
    "preferred_batch_sizes_3_3_3": "sizes",
    "preferred_batch_sizes_2x4": "sizes",
    "preferred_batch_sizes_3_3": "exact",
    "preferred_optional_input_mix": "invariant",  # groups vary; with/without SLEEP_MS never mix
    "preferred_http_and_grpc_mix": "sizes",
    "timeout_reject_late": "invariant",  # depends on when the blocker ends, see the check below
}


def assert_batches_match(result: Replay, scenario: dict) -> None:
    mode = MODES.get(scenario["id"], "exact")
    trials = scenario["trials"]
    alternatives = ALTERNATIVES.get(scenario["id"], {})
    if mode == "exact":
        allowed = {canonical(t["batches"], {r["id"]: r["offset_ms"] for r in t["requests"]}) for t in trials}
        allowed |= {canonical(b, result.offsets) for b in alternatives.get("batches", [])}
        assert canonical(result.batches, result.offsets) in allowed, result.describe()
    elif mode == "sizes":
        allowed_sizes = [t["batch_sizes"] for t in trials] + alternatives.get("sizes", [])
        assert [e.total for e in result.executes] in allowed_sizes, result.describe()


# --- scenario-specific facts (the README's) ---------------------------------------------------------


def _at_once(result: Replay, executes: list[Execute] | None = None) -> None:
    last_sent = max(a.sent_ms for a in result.answers.values())
    for execute in executes if executes is not None else result.executes:
        assert execute.start_ms - last_sent < AT_ONCE_MS, result.describe()


def _waited_delay(result: Replay, execute: Execute) -> None:
    for rid in execute.ids:
        assert DELAY_WAITED_MS <= result.wait_ms(rid) < UPPER_MS, result.describe()


def _lone_delay(result: Replay) -> None:
    # "a lone request on a 100 ms delay model waits ~100 ms"
    assert DELAY_WAITED_MS <= result.latency_ms("r1") < UPPER_MS, result.describe()


def _lone_nodelay(result: Replay) -> None:
    assert result.latency_ms("r1") < AT_ONCE_MS, result.describe()


def _preferred_5(result: Replay) -> None:
    # 4 go at once (preferred size 4), the 5th waits the full delay alone
    _at_once(result, result.executes[:1])
    _waited_delay(result, result.executes[1])


def _all_waited(result: Replay) -> None:
    for execute in result.executes:
        _waited_delay(result, execute)


def _full_then_delay(result: Replay) -> None:
    # max_batch_size (or a batch closed by the next request) goes at once, the rest waits the delay
    _at_once(result, result.executes[:1])
    _waited_delay(result, result.executes[1])


def _blocker_waited_delay(result: Replay) -> None:
    # the blocker waits the 100 ms delay alone before it runs
    assert DELAY_WAITED_MS <= result.wait_ms("blocker") < UPPER_MS, result.describe()


def _shapes_never_mix(result: Replay) -> None:
    for execute in result.executes:
        assert len({tuple(shape[1:]) for shape in execute.shapes}) == 1, result.describe()
    _only_the_last_waits(result)


def _optional_input_never_mixes(result: Replay) -> None:
    for execute in result.executes:
        assert len({rid.startswith("with_sleep") for rid in execute.ids}) == 1, result.describe()
    _only_the_last_waits(result)


def _only_the_last_waits(result: Replay) -> None:
    """Every trial of Triton: batches closed by a request that does not fit go at once; the group
    left over last waits the 100 ms delay (unless it happens to reach a preferred size)."""
    _at_once(result, result.executes[:-1])
    if result.executes[-1].total not in (4, 8):
        _waited_delay(result, result.executes[-1])


def _rejected_when_blocker_ends(result: Replay) -> None:
    # rejections go out when the batcher next looks at the queue (instance free), not at expiry
    blocker_end = result.execute_of("blocker").end_ms
    for answer in result.answers.values():
        if not answer.ok:
            assert answer.answered_ms >= blocker_end - 5, result.describe()


def _refused_while_blocker_runs(result: Replay) -> None:
    # "Exceeds maximum queue size" is immediate, while the blocker still runs
    blocker_end = result.execute_of("blocker").end_ms
    for answer in result.answers.values():
        if not answer.ok:
            assert answer.answered_ms < blocker_end, result.describe()


def _timeout_reject_late(result: Replay) -> None:
    """Triton: late_default and late_long run together, the 1 ms ones are rejected when the blocker ends.

    The outcome depends on whether a request's queue timeout (the 100 ms default; 'timeout' may only
    shorten it) passed before the blocker ended; on a slow machine the blocker may end late, so each
    request's expected answer is derived from the measured times, with a 20 ms band left open.
    """
    blocker_end = result.execute_of("blocker").end_ms
    executed = []
    for request in result.requests:
        rid = request["id"]
        if rid == "blocker":
            continue
        asked = request["parameters"].get("timeout", 0)
        timeout_ms = min(100.0, asked / 1000) if asked else 100.0
        deadline = result.answers[rid].sent_ms + timeout_ms
        answer = result.answers[rid]
        if blocker_end > deadline + 20:
            assert not answer.ok and answer.error == "Request timeout expired", result.describe()
        elif blocker_end < deadline - 20:
            assert answer.ok, result.describe()
        if answer.ok:
            executed.append(rid)
        else:
            assert answer.status in (503, "UNAVAILABLE") and answer.error == "Request timeout expired"
    if executed:
        assert sorted(result.execute_of(executed[0]).ids) == sorted(executed), result.describe()
        assert {"late_short", "late_short_grpc"}.isdisjoint(executed)


def _own_instances(result: Replay) -> None:
    assert len({e.instance for e in result.executes}) == 3, result.describe()


def _preserve_ordering(result: Replay) -> None:
    # later requests finish first, but their responses are held until the first one's is out
    _own_instances(result)
    first_end = result.execute_of("first_600ms").end_ms
    answered = [result.answers[rid].answered_ms for rid in ("first_600ms", "second_300ms", "third_50ms")]
    assert result.execute_of("third_50ms").end_ms < result.execute_of("second_300ms").end_ms < first_end
    assert all(t >= first_end - 5 for t in answered), result.describe()
    # released in send order; the client threads may notice them a little out of order on a busy machine
    assert answered[0] <= answered[1] + 100 and answered[1] <= answered[2] + 100, result.describe()


def _free_ordering(result: Replay) -> None:
    _own_instances(result)
    a = result.answers
    assert a["third_50ms"].answered_ms < result.execute_of("second_300ms").end_ms, result.describe()
    assert a["second_300ms"].answered_ms < result.execute_of("first_600ms").end_ms, result.describe()


CHECKS = {
    "preferred_8_simultaneous": _at_once,
    "preferred_5_simultaneous": _preferred_5,
    "preferred_4_simultaneous": _at_once,
    "preferred_3_simultaneous": _all_waited,
    "preferred_lone_request": _lone_delay,
    "delay_only_lone_request": _lone_delay,
    "nodelay_lone_request": _lone_nodelay,
    "no_dynamic_batching_lone_request": _lone_nodelay,
    "delay_only_8_simultaneous": _at_once,
    "delay_only_5_simultaneous": _all_waited,
    "delay_only_10_simultaneous": _full_then_delay,
    "preferred_8_behind_blocker": _blocker_waited_delay,
    "preferred_5_behind_blocker": _blocker_waited_delay,
    "preferred_mixed_shapes": _shapes_never_mix,
    "preferred_batch_sizes_3_3_3": _full_then_delay,
    "preferred_batch_sizes_2x4": _at_once,
    "preferred_batch_sizes_3_3": _all_waited,
    "preferred_optional_input_mix": _optional_input_never_mixes,
    "preferred_http_and_grpc_mix": _at_once,
    "queue_full": _refused_while_blocker_runs,
    "queue_full_no_id": _refused_while_blocker_runs,
    "queue_full_batch4": _refused_while_blocker_runs,
    "timeout_reject": _rejected_when_blocker_ends,
    "timeout_reject_late": _timeout_reject_late,
    "ordering_preserve": _preserve_ordering,
    "ordering_preserve_grpc": _preserve_ordering,
    "ordering_free": _free_ordering,
}
ANSWERS_CHECKED_BY_CHECK = {"timeout_reject_late"}


# --- the server ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """One server for the whole module, on the whole scheduling repository.

    The failing-warmup models make their versions UNAVAILABLE, hence --exit-on-error=false;
    --log-verbose=1 for the warmup log lines. What the warmup models did before any client
    request is read right after the start, before anything else touches them.
    """
    running = Probe(REPOSITORY, tmp_path_factory.mktemp("sched_logs"), "--exit-on-error=false", "--log-verbose=1")
    running.startup = startup_snapshot(running)
    yield running
    alive = running.server.process.poll() is None
    running.stop()
    assert alive, "the server died during the module"


def startup_snapshot(running: Probe) -> dict:
    snap = {
        "index": requests.post(running.url("/v2/repository/index"), timeout=10).json(),
        "logs": {m: running.model_log(m) for m in ("warmup_good", "warmup_file")},
        "stats": {
            m: requests.get(running.url(f"/v2/models/{m}/stats"), timeout=10).json()
            for m in ("warmup_good", "warmup_file")
        },
        "ready": {
            m: requests.get(running.url(f"/v2/models/{m}/ready"), timeout=10).status_code
            for m in ("warmup_good", "warmup_file")
        },
    }
    for model in ("warmup_good", "warmup_file"):
        recorded = STARTUP[f"{model}_first_client_requests"]
        snap[f"{model}_first"] = replay(running, f"{model}_first_client_requests", model, recorded)
    return snap


# --- the scenarios -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario_id", list(SCENARIOS))
def test_scenario_matches_triton(probe, scenario_id):
    scenario = SCENARIOS[scenario_id]
    trial = scenario["trials"][0]
    for _ in range(ATTEMPTS):
        result = replay(probe, scenario_id, scenario["model"], trial["requests"])
        reason = result.unfaithful()
        if reason is None:
            break
    else:
        pytest.skip(f"the client could not keep the recorded send times ({reason})")
    if scenario_id not in ANSWERS_CHECKED_BY_CHECK:
        for request in trial["requests"]:
            assert_answer_matches(request["id"], result.answers[request["id"]], request["answer"])
    assert_executes_consistent(result)
    assert_batches_match(result, scenario)
    assert_timeouts_seen(result, trial)
    check = CHECKS.get(scenario_id)
    if check is not None:
        check(result)


def test_scenario_tables_name_recorded_scenarios():
    assert set(MODES) | set(CHECKS) | set(ALTERNATIVES) <= set(SCENARIOS)


@pytest.mark.xfail(
    strict=True,
    reason="tritonlite answers every HTTP infer error as application/json; Triton 2.51 sends the queue "
    "timeout rejection (an error delivered through the response callback) as text/plain",
)
def test_timeout_rejection_content_type_matches_triton(probe):
    scenario = SCENARIOS["timeout_reject_idle"]
    (request,) = [r for r in scenario["trials"][0]["requests"] if r["protocol"] == "http"]
    result = replay(probe, "timeout_reject_idle_content_type", scenario["model"], [request])
    assert result.answers[request["id"]].status == 503
    assert result.answers[request["id"]].content_type == request["answer"]["headers"]["content-type"]  # text/plain


# --- recorded non-infer cases (index, ready, load...) ------------------------------------------------


def _index_row(index: list[dict], name: str) -> dict:
    (row,) = [row for row in index if row["name"] == name]
    return row


def _flags(command: list[str]) -> list[str]:
    """A recorded server command's tritonserver flags (what follows ``--``)."""
    return command[command.index("--") + 1 :]


def _grpc_index(response: pb.RepositoryIndexResponse) -> list[dict]:
    rows = []
    for model in response.models:
        row = {"name": model.name, "version": model.version, "state": model.state, "reason": model.reason}
        rows.append({k: v for k, v in row.items() if v})
    return rows


def replay_case(running: Probe, case: dict, only_row: str | None = None) -> None:
    """Send a recorded non-infer request (or an infer one as plain HTTP) and compare the answer exactly.

    ``only_row``: for repository index answers, compare only that model's row (other models of the
    repository may have been loaded on this server by other tests)."""
    req, want = case["request"], case["answer"]
    if case["protocol"] == "http":
        response = requests.request(
            req["method"], running.url(req["path"]), headers=req["headers"], data=base64.b64decode(req["body_b64"])
        )
        assert response.status_code == want["status"], (case["id"], response.content)
        if case["id"] == "repository_index":
            got, expected = response.json(), json.loads(local(json.dumps(want["json"])))
            if only_row is not None:
                got, expected = _index_row(got, only_row), _index_row(expected, only_row)
            assert got == expected
        else:
            assert response.content == local(base64.b64decode(want.get("body_b64", "")).decode()).encode(), case["id"]
        return
    rpc = req["rpc"]
    call = running.channel.unary_unary(
        f"/inference.GRPCInferenceService/{rpc}",
        request_serializer=lambda raw: raw,
        response_deserializer=getattr(pb, f"{rpc}Response").FromString,
    )
    try:
        response, code, details = call(base64.b64decode(req["request_b64"]), timeout=60), "OK", ""
    except grpc.RpcError as exc:
        response, code, details = None, exc.code().name, exc.details()
    assert (code, details) == (want["code"], local(want["details"])), case["id"]
    if rpc == "RepositoryIndex":
        got, expected = _grpc_index(response), json.loads(local(json.dumps(want["response_json"]["models"])))
        if only_row is not None:
            got, expected = _index_row(got, only_row), _index_row(expected, only_row)
        assert got == expected


def _warmup_shape(log: list[dict]) -> list:
    return [
        (r["event"], r.get("n_requests"), [(q["id"], q["shape"], q["sleep_input"]) for q in r.get("requests", [])])
        for r in log
    ]


def _stats_shape(stats: dict) -> dict:
    (model,) = stats["model_stats"]
    return {
        "inference_count": model["inference_count"],
        "execution_count": model["execution_count"],
        "success": model["inference_stats"]["success"]["count"],
        "fail": model["inference_stats"]["fail"]["count"],
        "batches": [(b["batch_size"], b["compute_infer"]["count"]) for b in model["batch_stats"]],
    }


def assert_first_requests_follow_the_warmup(result: Replay, recorded_requests: list[dict]) -> None:
    """warmup_good: the first client request is the instance's 5th execute and its 8th request."""
    for recorded in recorded_requests:
        answer = result.answers[recorded["id"]]
        assert_answer_matches(recorded["id"], answer, recorded["answer"])
        want = [sum(recorded["outputs"]["BATCH"], []), recorded["outputs"]["ORDER"]]
        if answer.protocol == "http":
            assert [o["data"] for o in answer.message["outputs"]] == want
        else:
            assert [np.frombuffer(raw, np.int32).tolist() for raw in answer.message.raw_output_contents] == want


# --- warmup at startup (default mode, main.startup) -------------------------------------------------


def test_good_warmup_runs_before_the_server_is_live(probe):
    snap = probe.startup
    for model in ("warmup_good", "warmup_file"):
        assert _index_row(snap["index"], model) == _index_row(STARTUP["repository_index"]["json"], model)
        assert snap["ready"][model] == STARTUP[f"{model}_ready"]["status"]
        executes = [r for r in snap["logs"][model] if r["event"] == "execute"]
        assert executes and max(r["t_end"] for r in executes) < probe.first_live_wall


def test_good_warmup_executes_match_triton(probe):
    for model in ("warmup_good", "warmup_file"):
        got = probe.startup["logs"][model]
        # warmup_good: 3 executes of 2 requests [1,4] (batch_size 2, count 3), then 1 of zeros; ids ""
        assert _warmup_shape(got) == _warmup_shape(STARTUP[f"{model}_model_log_before_first_request"])
        for execute in (r for r in got if r["event"] == "execute"):
            values = [q["first_values"] for q in execute["requests"]]
            assert all(v == values[0] for v in values)  # a random sample's requests carry the same data
    assert probe.startup["logs"]["warmup_good"][-1]["requests"][0]["first_values"] == [0.0, 0.0, 0.0, 0.0]
    assert probe.startup["logs"]["warmup_file"][-1]["requests"][0]["first_values"] == [1.5, 2.5, 3.5, 4.5]


def test_warmup_counts_in_statistics(probe):
    for model in ("warmup_good", "warmup_file"):
        want = STARTUP[f"{model}_stats_before_first_request"]["json"]
        assert _stats_shape(probe.startup["stats"][model]) == _stats_shape(want)


def test_first_client_requests_follow_the_warmup(probe):
    for model in ("warmup_good", "warmup_file"):
        recorded = STARTUP[f"{model}_first_client_requests"]
        assert_first_requests_follow_the_warmup(probe.startup[f"{model}_first"], recorded)


def test_warmup_verbose_log_lines(probe):
    log = probe.server.log()
    for iteration in (1, 2, 3):
        assert (
            f"model 'warmup_good' instance warmup_good_0_0 is running warmup sample 'random_sample' "
            f"for iteration {iteration}" in log
        )
    assert "model 'warmup_good' instance warmup_good_0_0 is running warmup sample 'zero_sample' for iteration 1" in log
    assert "model 'warmup_fails' instance warmup_fails_0_0 failed to run warmup sample 'raising_sample'" in log


@pytest.mark.parametrize(
    "line",
    [
        "Generating warmup sample data for 'random_sample'",  # verbose, before the samples run
        "successfully loaded 'warmup_good'",  # model_lifecycle.cc, info level, after the warmup
    ],
)
def test_warmup_log_lines_as_triton(probe, line):
    assert line in probe.server.log()


def _ok_runs(model: str, how: str) -> list[dict]:
    """Triton's runs that did not crash (2.51 dies with SIGSEGV in a large share of failing warmups)."""
    runs = [run for run in FAILING_WARMUP[model][how] if run["outcome"] == "ok"]
    assert runs
    return runs


@pytest.mark.parametrize("model", ["warmup_fails", "warmup_error_response"])
def test_failing_warmup_at_default_mode_startup(probe, model):
    """The main server loads every model at startup (default mode): the failing warmups make their
    models UNAVAILABLE with Triton's reasons and answers (captured with --load-model, the same load),
    and the server does not crash."""
    for case in _ok_runs(model, "startup")[0]["cases"]:
        replay_case(probe, case, only_row=model)
    log = probe.model_log(model)  # the warmup execute ran exactly once
    assert _warmup_shape(log) == _warmup_shape(_ok_runs(model, "startup")[0]["model_log"])
    assert log[-1]["requests"][0]["first_values"] == [0.0, 0.0, 0.0, 0.0]
    reason = _index_row(_ok_runs(model, "startup")[0]["cases"][0]["answer"]["json"], model)["reason"]
    assert logged(f"failed to load '{model}' version 1: {local(reason)}") in probe.server.log()
    assert probe.server.process.poll() is None


# --- warmup with explicit model control (warmup.good_explicit, warmup.failing) -------------------------


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    """A server started as warmup.good_explicit was (--model-control-mode=explicit --log-verbose=1).

    The good loads are replayed first, in the recorded order, so that the repository index compares
    whole; the failing loads of the tests below come after."""
    good = REFERENCE["warmup"]["good_explicit"]
    running = Probe(REPOSITORY, tmp_path_factory.mktemp("explicit_logs"), *_flags(good["server_command"]))
    running.good = {}
    for case in good["cases"]:
        if "fired" in case:
            model = case["id"].removeprefix("first_client_request_")
            running.good[case["id"]] = replay(running, case["id"], model, case["fired"])
        elif case["id"].startswith("load_"):
            model = case["id"].removeprefix("load_")
            since = running.log_size(model)
            replay_case(running, case)
            running.good[case["id"]] = (running.model_log(model, since), time.time())
        elif case["id"].startswith("stats_"):
            req = case["request"]
            running.good[case["id"]] = requests.request(req["method"], running.url(req["path"])).json()
        else:
            replay_case(running, case)  # ready, repository_index: compared as they are sent
    yield running
    alive = running.server.process.poll() is None
    running.stop()
    assert alive, "the explicit-mode server died"


def test_explicit_load_answers_after_the_warmup(explicit):
    good = {case["id"]: case for case in REFERENCE["warmup"]["good_explicit"]["cases"]}
    for model in ("warmup_good", "warmup_file"):
        log, answered = explicit.good[f"load_{model}"]
        assert _warmup_shape(log) == _warmup_shape(good[f"load_{model}"]["model_log"])
        assert all(r.get("t_end", r.get("t")) < answered for r in log)  # all before the load was answered
        assert _stats_shape(explicit.good[f"stats_{model}"]) == _stats_shape(good[f"stats_{model}"]["answer"]["json"])
        key = f"first_client_request_{model}"
        assert_first_requests_follow_the_warmup(explicit.good[key], good[key]["fired"])


@pytest.mark.parametrize("how", ["load_http", "load_grpc"])
@pytest.mark.parametrize("model", ["warmup_fails", "warmup_error_response"])
def test_explicit_failing_warmup_load(explicit, model, how):
    run = _ok_runs(model, how)[0]
    since = explicit.log_size(model)
    for case in run["cases"]:
        replay_case(explicit, case, only_row=model)
    assert _warmup_shape(explicit.model_log(model, since)) == _warmup_shape(run["model_log"])
    assert explicit.server.process.poll() is None  # Triton 2.51 crashed in some of these loads


@pytest.mark.parametrize("model", ["warmup_fails", "warmup_error_response"])
def test_explicit_failing_warmup_startup(tmp_path, model):
    """--load-model=<model> --exit-on-error=false: the server stays up with the model UNAVAILABLE."""
    run = _ok_runs(model, "startup")[0]
    running = Probe(REPOSITORY, tmp_path, *_flags(run["server_command"]))
    try:
        for case in run["cases"]:
            replay_case(running, case)  # the whole index: only this model was loaded
        assert _warmup_shape(running.model_log(model)) == _warmup_shape(run["model_log"])
        assert running.server.process.poll() is None
    finally:
        running.stop()


@pytest.fixture(scope="module")
def exits(tmp_path_factory):
    """Runs a server that is expected to exit; one run per flag set, shared by the tests."""
    done: dict[tuple, subprocess.CompletedProcess] = {}
    log_dir = tmp_path_factory.mktemp("exit_logs")

    def run(flags: list[str]) -> subprocess.CompletedProcess:
        key = tuple(flags)
        if key not in done:
            env = dict(os.environ, TRITONLITE_SCHED_LOG_DIR=str(log_dir))
            args = [sys.executable, "-m", "tritonlite", f"--model-repository={REPOSITORY}"]
            args += [f"--http-port={free_port()}", f"--grpc-port={free_port()}", f"--metrics-port={free_port()}"]
            args += ["--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1"]
            done[key] = subprocess.run([*args, *flags], env=env, capture_output=True, text=True, timeout=60)
        return done[key]

    return run


def _last_error(case: dict) -> str:
    """Triton's closing 'error: creating server: ...' message (it may span lines)."""
    tail = case["log_tail"]
    start = max(i for i, line in enumerate(tail) if line.startswith("error: creating server:"))
    return local("\n".join(tail[start:]).rstrip("\n"))


EXITS = {
    "warmup_fails": FAILING_WARMUP["warmup_fails"]["startup_exit_on_error"][0],
    "warmup_error_response": FAILING_WARMUP["warmup_error_response"]["startup_exit_on_error"][0],
    "rate_limit_R1_1": RATE_LIMITER["rl_exec_count_R1_1"],
}


@pytest.mark.parametrize("which", list(EXITS))
def test_failed_startup_load_exits_1(exits, which):
    """--load-model=<model> without --exit-on-error=false: exit code 1 (Triton 2.51 sometimes crashed instead)."""
    case = EXITS[which]
    done = exits(_flags(case["server_command"]))
    assert done.returncode == case["exit_code"] == 1, done.stderr[-3000:]
    # the load failure is logged with its reason
    message = _last_error(case).split(" - load failed for model ", 1)[1]
    model, reason = message.split("': version 1 is at UNAVAILABLE state: ", 1)
    assert logged(f"failed to load {model}' version 1: {reason.removesuffix(';').removesuffix('; ')}") in done.stderr


@pytest.mark.parametrize("which", list(EXITS))
def test_failed_startup_load_last_line(exits, which):
    done = exits(_flags(EXITS[which]["server_command"]))
    assert (done.stdout + done.stderr).rstrip("\n").endswith(_last_error(EXITS[which]))


# --- rate limiter -----------------------------------------------------------------------------------------


def _overlapped(result: Replay) -> bool:
    first, second = result.executes
    return second.start_ms < first.end_ms - 50


def _probe_concurrency(running: Probe, case: dict) -> Replay:
    trial = case["concurrency_probe"]["trials"][0]
    result = replay(running, case["id"], "rate_limited", trial["requests"])
    for request in trial["requests"]:
        assert_answer_matches(request["id"], result.answers[request["id"]], request["answer"])
    assert len(result.executes) == 2, result.describe()
    # both instances are used, whether at once or one after the other ("instances 0_0 then 0_1")
    assert [e.instance for e in result.executes] == ["rate_limited_0_0", "rate_limited_0_1"] or (
        _overlapped(result) and {e.instance for e in result.executes} == {"rate_limited_0_0", "rate_limited_0_1"}
    ), result.describe()
    return result


@pytest.mark.parametrize(
    "case_id", ["rl_exec_count_R1_2", "rl_exec_count_R1_4", "rl_exec_count_no_resource", "rl_off_R1_1", "rl_off"]
)
def test_rate_limiter_concurrency_matches_triton(tmp_path, case_id):
    case = RATE_LIMITER[case_id]
    (expected,) = set(case["instances_ran_concurrently"])
    running = Probe(REPOSITORY, tmp_path, *_flags(case["server_command"]))
    try:
        result = _probe_concurrency(running, case)
        for recorded in case["cases"]:  # index, ready, health, loading it again
            replay_case(running, recorded)
    finally:
        running.stop()
    assert _overlapped(result) == expected, result.describe()
    if not expected:  # one after the other: the second starts when the first has ended
        assert result.executes[1].start_ms >= result.executes[0].end_ms - 5, result.describe()


REFUSED_REASON = (
    'Invalid argument: Resource count for "R1" is limited to 1 which will prevent scheduling of one or more '
    "model instances, the minimum required count is 2"
)


@pytest.fixture(scope="module")
def refused_rate_limit(tmp_path_factory):
    """R1:1 with --exit-on-error=false: the server stays up, rate_limited is UNAVAILABLE."""
    case = RATE_LIMITER["rl_exec_count_R1_1_no_exit"]
    running = Probe(REPOSITORY, tmp_path_factory.mktemp("rl_refused"), *_flags(case["server_command"]))
    yield running
    running.stop()


def test_rate_limit_refusal_keeps_the_server_up(refused_rate_limit):
    case = RATE_LIMITER["rl_exec_count_R1_1_no_exit"]
    assert case["server_came_up"]
    for recorded in case["cases"]:  # index, ready, health, load again (HTTP and gRPC), infer
        replay_case(refused_rate_limit, recorded)
    assert _index_row(case["cases"][0]["answer"]["json"], "rate_limited")["reason"] == REFUSED_REASON
    log = refused_rate_limit.server.log()
    # Triton's line, message quoted and escaped: "failed to load 'rate_limited' version 1: ... \"R1\" ..."
    quoted = REFUSED_REASON.replace('"', '\\"')
    assert f"] \"failed to load 'rate_limited' version 1: {quoted}\"" in log
    assert f"| rate_limited | 1       | UNAVAILABLE: {REFUSED_REASON} |" in log


def test_rate_limit_options_table(refused_rate_limit):
    log = refused_rate_limit.server.log()
    assert re.search(r"\| rate_limit +\| EXEC_COUNT +\|", log)
    assert re.search(r'\| rate_limit_resource\[0\] +\| \{"name":"R1", "count":1 "device":-1\} +\|', log)


def assert_refusal_lines(done: subprocess.CompletedProcess, case: dict) -> None:
    """Triton prints its usage text, then 'Bad option: "<flag>".' and the reason (the last lines checked)."""
    tail = [line for line in case["log_tail"] if line]
    tail = tail[next(i for i, line in enumerate(tail) if line.startswith("Bad option")) :]
    output = (done.stdout + done.stderr).splitlines()
    for line in tail:
        assert any(got.endswith(line) for got in output), (line, output[-5:])


def test_rate_limit_resource_without_count_is_refused(exits):
    case = RATE_LIMITER["rl_bad_resource"]
    done = exits(_flags(case["server_command"]))
    assert done.returncode == case["exit_code"] == 1
    assert_refusal_lines(done, case)


def test_rate_limit_bad_mode_is_refused_like_triton(exits):
    case = RATE_LIMITER["rl_bad_mode"]
    done = exits(_flags(case["server_command"]))
    assert done.returncode == case["exit_code"] == 1
    assert_refusal_lines(done, case)
