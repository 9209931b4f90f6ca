"""Each server thread's CPU time and run-queue wait per batch, under onnx_mlp.py's perf_analyzer run.

    .venv/bin/python benchmarks/onnx_threads.py [--concurrency 16] [--hidden 4096 --layers 6] [--repeat 2]

Starts tritonlite and onnx_floor.py's floor server in turn on the ONNX MLP of onnx_mlp.py, drives
each with perf_analyzer (HTTP, one request per client in flight), and reads
/proc/PID/task/TID/schedstat over four seconds in the middle of the run: time on a CPU, time
runnable but waiting for one (preempted or not yet placed), and time slices, per batch (one
request of each client). The event loop's row says how much CPU the server's own request
handling takes per batch and how long other threads (perf_analyzer's, on the same 2 cores) keep
it from running; the instance thread's row is onnxruntime's run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx_mlp
from compare import PERF_ANALYZER, launch, perf_analyzer_missing, stop

PORTS = (8150, 8151, 8152)


def thread_times(pid: int) -> dict[str, tuple[str, int, int, int]]:
    """tid -> (name, on-CPU ns, run-queue wait ns, time slices)."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            cpu, wait, slices = map(int, (task / "schedstat").read_text().split())
        except OSError:
            continue  # the thread ended
        times[task.name] = (name, cpu, wait, slices)
    return times


def measure(server_kind: str, repository: Path, concurrency: int, window: float = 4.0) -> dict:
    floor = (str(Path(__file__).parent / "onnx_floor.py"), "--serve")
    entry = ("-m", "tritonlite") if server_kind == "tritonlite" else floor
    server, _ = launch("tritonlite", repository, PORTS, entry=entry)
    command = [str(PERF_ANALYZER), "-m", "mlp_large", "-u", f"127.0.0.1:{PORTS[0]}",
               "--concurrency-range", f"{concurrency}:{concurrency}", "--stability-percentage", "1000"]  # fmt: skip
    try:
        subprocess.run([*command, "--measurement-interval", "1000", "--max-trials", "2"], capture_output=True)
        client = subprocess.Popen(
            [*command, "--measurement-interval", "3000", "--max-trials", "3"], stdout=subprocess.PIPE, text=True
        )
        time.sleep(3)
        before, started = thread_times(server.pid), time.monotonic()
        time.sleep(window)
        after, spent = thread_times(server.pid), time.monotonic() - started
        output = client.communicate()[0]
    finally:
        stop(server)
    rate = next((float(line.split()[-2]) for line in output.splitlines() if "Throughput:" in line), 0.0)
    batches = rate * spent / concurrency  # a batch is one request of each client
    rows = []
    for tid, (name, cpu, wait, slices) in after.items():
        if tid not in before or not batches or cpu - before[tid][1] < 0.01 * spent * 1e9:
            continue  # threads that hardly ran
        _, cpu0, wait0, slices0 = before[tid]
        label = "event loop" if tid == str(server.pid) else f"{name} {tid}"
        rows.append({
            "thread": label, "cpu_us": round((cpu - cpu0) / batches / 1e3),
            "wait_us": round((wait - wait0) / batches / 1e3), "slices": round((slices - slices0) / batches, 1),
        })  # fmt: skip
    return {"server": server_kind, "throughput": rate, "per_batch": sorted(rows, key=lambda row: row["cpu_us"])}


def main() -> int:
    parser = argparse.ArgumentParser()
    onnx_mlp.model_arguments(parser)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if perf_analyzer_missing():
        return 2
    with tempfile.TemporaryDirectory() as folder:
        repository = Path(folder)
        onnx_mlp.write_repository(repository, args.hidden, args.layers, args.concurrency)
        for _ in range(args.repeat):
            for kind in ("tritonlite", "floor"):
                result = measure(kind, repository, args.concurrency)
                print(f"{result['server']}: {result['throughput']:.0f} infer/s; per batch of {args.concurrency}:")
                for row in result["per_batch"]:
                    print(f"  {row['thread']:24s} on CPU {row['cpu_us']:6d} us, waiting for a CPU "
                          f"{row['wait_us']:5d} us, {row['slices']} slices")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
