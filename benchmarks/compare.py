"""tritonlite vs the real Triton, same repository, same perf_analyzer command, same run.

    .venv/bin/python benchmarks/compare.py [--concurrency 1 4] [--protocols http grpc]
    .venv/bin/python benchmarks/compare.py --model identity --shape INPUT0:16 --concurrency 1 8 32 \
        --protocols http --output batching

Needs perf_analyzer and the real Triton (``python3 scripts/get_reference.py`` installs both; see
reference.py for where they are looked for). Servers run one at a time, alternating per measurement. Writes
benchmarks/results/compare.json and compare.md and prints the table with ratios.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from reference import perf_analyzer_path, say_missing, triton_command

ROOT = Path(__file__).resolve().parents[1]
PERF_ANALYZER = perf_analyzer_path()
RESULTS = ROOT / "benchmarks" / "results"


def launch(
    server: str, repository: Path, ports: tuple[int, int, int], entry: tuple[str, ...] = ("-m", "tritonlite")
) -> tuple[subprocess.Popen, float]:
    """Start Triton or tritonlite on (http, grpc, metrics) ports; returns it and seconds until ready.

    ``entry`` is what follows the Python interpreter to start tritonlite (another script that ends
    in tritonlite's command line, for instrumented runs).
    """
    http, grpc, metrics = ports
    env = None
    if server == "triton":
        triton = triton_command()
        if triton is None:
            raise RuntimeError("Triton is not installed: run python3 scripts/get_reference.py")
        cmd, env = triton.argv(repository, http, grpc, metrics), triton.env or None
    else:
        cmd = [sys.executable, *entry, f"--model-repository={repository}",
               f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}"]  # fmt: skip
    began = time.monotonic()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while time.monotonic() - began < 120:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1).status == 200:
                return process, time.monotonic() - began
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{server} did not become ready within 120 s")


def perf_analyzer_missing(need_triton: bool = False) -> bool:
    """True (after saying what is missing and how to get it, on stderr) when a tool is not installed."""
    return say_missing(need_triton)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    time.sleep(2)  # let the server's helper processes exit before the next one starts


def start(server: str, repository: Path) -> tuple[subprocess.Popen, int, int]:
    ports = (18000, 18001, 18002) if server == "triton" else (8100, 8101, 8102)
    process, _ = launch(server, repository, ports)
    return process, ports[0], ports[1]


def measure(
    model: str, protocol: str, port: int, concurrency: int, interval_ms: int, shapes: list[str], extra: list[str]
) -> dict:
    cmd = [str(PERF_ANALYZER), "-m", model, "-i", protocol, "-u", f"127.0.0.1:{port}",
           "--concurrency-range", f"{concurrency}:{concurrency}", "--measurement-interval", str(interval_ms),
           "--stability-percentage", "100", "--max-trials", "6"]  # fmt: skip
    for shape in shapes:
        cmd += ["--shape", shape]
    cmd += extra
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    throughput = re.search(r"Throughput: ([\d.]+) infer/sec", text)
    p50 = re.search(r"p50 latency: (\d+) usec", text)
    p99 = re.search(r"p99 latency: (\d+) usec", text)
    if out.returncode != 0 or throughput is None:
        return {"error": text[-500:]}
    return {
        "throughput": float(throughput.group(1)),
        "p50_us": int(p50.group(1)) if p50 else None,
        "p99_us": int(p99.group(1)) if p99 else None,
    }


def _median(results: list[dict]) -> dict:
    good = [r for r in results if "throughput" in r]
    if not good:
        return {"error": results[-1].get("error", "no result")}
    merged = {}
    for key in ("throughput", "p50_us", "p99_us"):
        values = sorted(r[key] for r in good if r.get(key) is not None)
        merged[key] = statistics.median(values) if values else None
    return merged


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="add_sub")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--protocols", nargs="+", default=["http", "grpc"])
    parser.add_argument("--interval-ms", type=int, default=3000)
    parser.add_argument("--repository", type=Path, default=ROOT / "examples" / "model_repository")
    parser.add_argument("--shape", action="append", default=[], help="perf_analyzer --shape, e.g. INPUT0:16")
    parser.add_argument("--output", default="compare", help="results file name (without extension)")
    parser.add_argument("--pa-arg", action="append", default=[], help="extra perf_analyzer argument (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per point (order alternates); medians reported")
    args = parser.parse_args()
    if perf_analyzer_missing(need_triton=True):
        return 2
    rows = []
    for protocol in args.protocols:
        for concurrency in args.concurrency:
            row = {"model": args.model, "protocol": protocol, "concurrency": concurrency}
            runs: dict[str, list[dict]] = {"triton": [], "tritonlite": []}
            for attempt in range(args.repeat):
                order = ("triton", "tritonlite") if attempt % 2 == 0 else ("tritonlite", "triton")
                for server in order:
                    process, http, grpc = start(server, args.repository.resolve())
                    try:
                        port = http if protocol == "http" else grpc
                        runs[server].append(
                            measure(args.model, protocol, port, concurrency, args.interval_ms, args.shape, args.pa_arg)
                        )
                    finally:
                        stop(process)
            for server, results in runs.items():
                row[server] = _median(results)
                row[server]["runs"] = results
            t, lite = row["triton"].get("throughput"), row["tritonlite"].get("throughput")
            row["throughput_ratio"] = round(lite / t, 3) if t and lite else None
            rows.append(row)
            print(json.dumps(row))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| model | protocol | concurrency | Triton infer/s | tritonlite infer/s | ratio "
        "| Triton p50/p99 us | tritonlite p50/p99 us |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['protocol']} | {r['concurrency']} | {r['triton'].get('throughput')} | "
            f"{r['tritonlite'].get('throughput')} | {r['throughput_ratio']} | "
            f"{r['triton'].get('p50_us')}/{r['triton'].get('p99_us')} | "
            f"{r['tritonlite'].get('p50_us')}/{r['tritonlite'].get('p99_us')} |"
        )
    (RESULTS / f"{args.output}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
