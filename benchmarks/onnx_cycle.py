"""Where one batch cycle of the ONNX MLP benchmark goes, step by step, inside the server.

    .venv/bin/python benchmarks/onnx_cycle.py [--hidden 4096 --layers 6 --concurrency 16]

Runs the server of benchmarks/onnx_mlp.py with timestamps at each step of a batch's life (the
server is started by this file in ``--serve`` mode, which wraps a few functions before handing over
to the normal command line), drives it with perf_analyzer, and prints the median and mean of each
step over all batches after the first 20 of those that start 2 s after the server's first batch:

    wake          the instance thread finished the batch (outputs split) -> its result's callback runs
                  on the loop (the loop thread woken from epoll)
    resume        the instance thread finished the batch -> the loop has the results (the batch's task)
    last_sent     -> the 16th answer is ready to be written
    last_enqueue  -> the 16th new request is queued
    dispatch      -> the batch is formed and its execute starts on the loop
    thread_start  -> the instance thread starts it
    gather        inputs concatenated on the instance thread
    gap           everything between two onnxruntime runs

and the whole cycle from one run's start to the next: median, mean, and how much of the time
the unusually slow cycles (over 1.2x the median) take, with a breakdown of the first few slow
ones, and the garbage collector's pauses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKS_FILE = "TRITONLITE_CYCLE_MARKS"


def serve() -> int:
    """The server, with marks; they are written to $TRITONLITE_CYCLE_MARKS at exit."""
    import atexit
    import gc

    import tritonlite.backends.framework as framework
    import tritonlite.frontends.http.exchange as exchange
    import tritonlite.scheduling.dynamic_batcher as batcher
    import tritonlite.scheduling.instance_runner as runner
    from tritonlite.cli import main

    marks: list[tuple[str, int]] = []
    now = time.monotonic_ns

    def wrap_async(owner, name, label, before=True):
        original = getattr(owner, name)

        async def wrapped(*args):
            if before:
                marks.append((label, now()))
            result = await original(*args)
            if not before:
                marks.append((label, now()))
            return result

        setattr(owner, name, wrapped)

    def wrap_sync(owner, name, label, before=True):
        original = getattr(owner, name)

        def wrapped(*args):
            if before:
                marks.append((label, now()))
            result = original(*args)
            if not before:
                marks.append((label, now()))
            return result

        setattr(owner, name, wrapped)

    wrap_sync(batcher.DynamicBatcher, "enqueue", "enqueue")
    wrap_async(batcher.DynamicBatcher, "_execute", "dispatch")
    wrap_async(runner.InstanceRunner, "execute", "resume", before=False)
    wrap_sync(exchange.InferExchange, "_answer", "sent", before=False)  # every infer answer is written here
    original_execute = framework.TensorInstance.execute

    def execute(self, requests):
        marks.append(("thread_start", now()))
        results = original_execute(self, requests)
        marks.append(("thread_end", now()))
        marks.append(("gather_ns", self.timings[0]))
        marks.append(("infer_ns", self.timings[1]))
        return results

    framework.TensorInstance.execute = execute
    original_settle = runner._settle

    def settle(*args):  # the instance thread's result reaches the loop (looked up per call)
        marks.append(("settle", now()))
        return original_settle(*args)

    runner._settle = settle

    def collected(phase, info):
        marks.append((f"gc_{phase}", now()))

    gc.callbacks.append(collected)
    atexit.register(lambda: Path(os.environ[MARKS_FILE]).write_text(json.dumps(marks)))
    return main(sys.argv[2:])


def cycles(marks: list[tuple[str, int]], batch: int) -> list[dict[str, float]]:
    """Per batch: microseconds from the end of one execute to each step before the next."""
    ends = [i for i, (label, _) in enumerate(marks) if label == "thread_end"]
    rows = []
    for first, second in zip(ends[20:], ends[21:], strict=False):
        end = marks[first][1]
        between = marks[first + 1 : second + 1]

        def times(label: str, between=between) -> list[int]:
            return [t for name, t in between if name == label]

        resume, sent, queued, settled = times("resume"), times("sent"), times("enqueue"), times("settle")
        dispatch, start, gather = times("dispatch"), times("thread_start"), times("gather_ns")
        if not (settled and resume and dispatch and start and gather) or len(sent) < batch or len(queued) < batch:
            continue  # a batch that did not follow the usual path (warm-up, a partial batch)
        rows.append({
            "wake": settled[0] - end,
            "resume": resume[0] - end,
            "last_sent": sent[batch - 1] - resume[0],
            "last_enqueue": queued[batch - 1] - sent[batch - 1],
            "dispatch": dispatch[-1] - queued[batch - 1],
            "thread_start": start[0] - dispatch[-1],
            "gather": gather[0],
            "gap": start[0] + gather[0] - end,
        })  # fmt: skip
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        return serve()
    sys.path.insert(0, str(Path(__file__).parent))
    import onnx_mlp
    from compare import PERF_ANALYZER, launch, perf_analyzer_missing, stop

    parser = argparse.ArgumentParser()
    onnx_mlp.model_arguments(parser)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    if perf_analyzer_missing():
        return 2
    with tempfile.TemporaryDirectory() as folder:
        repository, marks_file = Path(folder) / "repository", Path(folder) / "marks.json"
        onnx_mlp.write_repository(repository, args.hidden, args.layers, args.concurrency)
        os.environ[MARKS_FILE] = str(marks_file)  # the server inherits it
        server, _ = launch("tritonlite", repository, (8110, 8111, 8112), entry=(__file__, "--serve"))
        try:
            subprocess.run(
                [str(PERF_ANALYZER), "-m", "mlp_large", "-u", "127.0.0.1:8110", "--concurrency-range",
                 f"{args.concurrency}:{args.concurrency}", "--measurement-interval", str(args.seconds * 500),
                 "--max-trials", "2", "--stability-percentage", "1000"],
                capture_output=True, check=False, timeout=300,
            )  # fmt: skip
        finally:
            stop(server)  # the marks are written as the server exits
        marks = json.loads(marks_file.read_text())
    # the first seconds of a fresh server are slow (weights paged in, first runs): not counted
    settled = marks[0][1] + 2_000_000_000 if marks else 0
    first = next((i for i, (label, t) in enumerate(marks) if label == "thread_end" and t >= settled), len(marks))
    marks = marks[first:]
    rows = cycles(marks, args.concurrency)
    infer = [t / 1e3 for label, t in marks if label == "infer_ns"][20:]
    print(f"{len(rows)} batches; onnxruntime run: median {statistics.median(infer):.0f} us")
    for step in rows[0] if rows else []:
        values = [row[step] / 1e3 for row in rows]
        print(f"  {step:13s} median {statistics.median(values):8.1f} us   mean {statistics.mean(values):8.1f} us")
    slow_gaps = [row for row in rows if row["gap"] > 3e6]
    for row in slow_gaps[:8]:
        print("    slow gap: " + ", ".join(f"{step} {value / 1e3:.0f}" for step, value in row.items()) + " us")
    starts_gc = [t for label, t in marks if label == "gc_start"]
    stops_gc = [t for label, t in marks if label == "gc_stop"]
    pauses = [(b - a) / 1e3 for a, b in zip(starts_gc, stops_gc, strict=False)]
    if pauses:
        print(f"  garbage collections: {len(pauses)}, median {statistics.median(pauses):.0f} us, "
              f"longest {max(pauses):.0f} us")
    starts = [t for label, t in marks if label == "thread_start"][20:]
    periods = [(b - a) / 1e3 for a, b in zip(starts, starts[1:], strict=False)]
    if periods:
        usual = statistics.median(periods)
        slow = [p for p in periods if p > 1.2 * usual]
        print(f"  cycle (one run start to the next): median {usual:.0f} us, mean {statistics.mean(periods):.0f} us; "
              f"{len(slow)} of {len(periods)} over 1.2x the median, {sum(p - usual for p in slow) / sum(periods):.1%} "
              f"of the time; slowest {max(periods):.0f} us")
        runs = [t / 1e3 for label, t in marks if label == "infer_ns"][20:]
        slow_cycles = [(p, runs[i]) for i, p in enumerate(periods) if p > 1.2 * usual and i < len(runs)]
        for period, run in slow_cycles[:8]:
            print(f"    slow cycle {period:.0f} us: its onnxruntime run {run:.0f} us, the rest {period - run:.0f} us")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
