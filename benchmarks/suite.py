"""The whole performance comparison in one command: tritonlite vs the real Triton, side by side.

    .venv/bin/pip install -e ".[bench]"        # matplotlib, for the plot
    python3 scripts/get_reference.py            # the real Triton 2.51 and perf_analyzer (never run for you)
    .venv/bin/python benchmarks/suite.py        # --repeat 3 by default; --quick for a smoke run

Each repeat starts each server once on examples/model_repository (the order alternates between
repeats), records the time from start to ready and the idle memory of the whole process tree
(the server plus every helper process it started), then runs every workload below with the same
perf_analyzer command against it: a short warm-up run, then the measured run (stable windows).
Writes benchmarks/results/suite.json (every run and the medians), suite.md (the table with
ratios tritonlite / Triton) and suite.png (throughput and p99 against concurrency).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from compare import RESULTS, ROOT, launch, measure, perf_analyzer_missing, stop

REPOSITORY = ROOT / "examples" / "model_repository"
SERVERS = ("triton", "tritonlite")
PORTS = {"triton": (18000, 18001, 18002), "tritonlite": (8100, 8101, 8102)}
FOUR_MB = ["INPUT0:1048576"]  # 1,048,576 FP32 values
SHM = ["--shared-memory=system", "--output-shared-memory-size=4194304"]


@dataclass(frozen=True)
class Workload:
    group: str
    model: str
    protocol: str
    concurrency: int
    shapes: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.group} {self.protocol} c{self.concurrency}"


def workloads(quick: bool) -> list[Workload]:
    levels = (1, 4) if quick else (1, 4, 16, 64)
    found = [Workload("add_sub", "add_sub", p, c) for p in ("http", "grpc") for c in levels]
    found += [Workload("identity batched", "identity", "http", c, ["INPUT0:16"]) for c in (8, 32)]
    found += [
        Workload("identity 4 MB", "identity", "http", 1, FOUR_MB),
        Workload("identity 4 MB", "identity", "grpc", 1, FOUR_MB),
        Workload("identity 4 MB shm", "identity", "http", 1, FOUR_MB, SHM),
    ]
    return found


def process_tree(root: int) -> list[int]:
    """The pid and every descendant of it, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(stat.parent.name)
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_memory_mib(root: int) -> dict[str, float]:
    """Resident (RSS) and proportional (PSS) memory of a process tree, in MiB."""
    rss = pss = 0
    for pid in process_tree(root):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in rollup:
            name, _, rest = line.partition(":")
            if name == "Rss":
                rss += int(rest.split()[0])
            elif name == "Pss":
                pss += int(rest.split()[0])
    return {"rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1)}


def run_server(server: str, plan: list[Workload], interval_ms: int) -> dict:
    process, ready_s = launch(server, REPOSITORY, PORTS[server])
    try:
        time.sleep(2)
        result = {"ready_s": round(ready_s, 3), **tree_memory_mib(process.pid), "workloads": {}}
        grpc_port, http_port = PORTS[server][1], PORTS[server][0]
        for item in plan:
            port = http_port if item.protocol == "http" else grpc_port
            args = (item.model, item.protocol, port, item.concurrency)
            measure(*args, max(interval_ms // 4, 250), item.shapes, item.extra)  # warm-up, not kept
            result["workloads"][item.label] = measure(*args, interval_ms, item.shapes, item.extra)
            print(f"  {server:10s} {item.label:28s} {json.dumps(result['workloads'][item.label])}", flush=True)
        return result
    finally:
        stop(process)


def median_of(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(statistics.median(kept), 3) if kept else None


def ratio(mine: float | None, theirs: float | None) -> float | None:
    return round(mine / theirs, 3) if mine and theirs else None


def paired_ratio(label: str, runs: dict[str, list[dict]]) -> float | None:
    """Median over repeats of tritonlite / Triton within the same repeat.

    Both servers of one repeat are measured minutes apart, so this follows the machine when its
    speed drifts between repeats (a ratio of medians can pair a fast Triton run with a slow one).
    """
    pairs = zip(runs["triton"], runs["tritonlite"], strict=False)
    values = [ratio(lite["workloads"][label].get("throughput"), triton["workloads"][label].get("throughput"))
              for triton, lite in pairs]  # fmt: skip
    return median_of(values)


def summarize(plan: list[Workload], runs: dict[str, list[dict]]) -> dict:
    rows = []
    for item in plan:
        row = {"workload": item.label, "group": item.group, "model": item.model, "protocol": item.protocol,
               "concurrency": item.concurrency}  # fmt: skip
        for server in SERVERS:
            results = [run["workloads"][item.label] for run in runs[server]]
            row[server] = {key: median_of([r.get(key) for r in results]) for key in ("throughput", "p50_us", "p99_us")}
            errors = [r["error"] for r in results if "error" in r]
            if errors:
                row[server]["errors"] = errors
        row["throughput_ratio"] = ratio(row["tritonlite"]["throughput"], row["triton"]["throughput"])
        row["paired_throughput_ratio"] = paired_ratio(item.label, runs)
        row["p99_ratio"] = ratio(row["tritonlite"]["p99_us"], row["triton"]["p99_us"])
        rows.append(row)
    server_rows = {
        server: {key: median_of([run[key] for run in runs[server]]) for key in ("ready_s", "rss_mib", "pss_mib")}
        for server in SERVERS
    }
    for key in ("ready_s", "rss_mib", "pss_mib"):
        server_rows.setdefault("ratio", {})[key] = ratio(server_rows["tritonlite"][key], server_rows["triton"][key])
    return {"workloads": rows, "server": server_rows}


def markdown(summary: dict, repeat: int) -> str:
    lines = [
        f"Medians of {repeat} run(s) per server; ratio = tritonlite / Triton (throughput: higher is better, "
        "p99 and memory: lower is better); paired = the median of the ratios within each repeat.",
        "",
        "| workload | Triton infer/s | tritonlite infer/s | ratio | paired "
        "| Triton p99 us | tritonlite p99 us | p99 ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["workloads"]:
        t, lite = row["triton"], row["tritonlite"]
        lines.append(
            f"| {row['workload']} | {t['throughput']} | {lite['throughput']} | {row['throughput_ratio']} | "
            f"{row.get('paired_throughput_ratio')} | {t['p99_us']} | {lite['p99_us']} | {row['p99_ratio']} |"
        )
    server = summary["server"]
    lines += ["", "| server | Triton | tritonlite | ratio |", "|---|---|---|---|"]
    for key, name in (("ready_s", "time from start to ready (s)"), ("rss_mib", "idle RSS, process tree (MiB)"),
                      ("pss_mib", "idle PSS, process tree (MiB)")):  # fmt: skip
        lines.append(f"| {name} | {server['triton'][key]} | {server['tritonlite'][key]} | {server['ratio'][key]} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> bool:
    """Throughput and p99 latency of every workload, Triton's bar beside tritonlite's at each concurrency."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot written", file=sys.stderr)
        return False
    series: dict[tuple[str, str], list[dict]] = {}
    for row in summary["workloads"]:
        series.setdefault((row["group"], row["protocol"]), []).append(row)
    figure, axes = plt.subplots(2, len(series), figsize=(3.6 * len(series), 7), squeeze=False)
    panels = (("throughput", "infer/s"), ("p99_us", "p99 latency (µs)"))
    for column, ((group, protocol), rows) in enumerate(series.items()):
        rows = sorted(rows, key=lambda r: r["concurrency"])
        positions = range(len(rows))
        for line, (metric, unit) in enumerate(panels):
            axis = axes[line][column]
            for offset, server, color in ((-0.2, "triton", "#76b900"), (0.2, "tritonlite", "#3b6fd8")):
                values = [(r.get(server) or {}).get(metric) or 0 for r in rows]
                axis.bar([p + offset for p in positions], values, width=0.4, label=server, color=color)
            axis.set_xticks(list(positions), [f"c{r['concurrency']}" for r in rows])
            axis.set_xlim(-0.8, len(rows) - 0.2)
            axis.set_ylim(bottom=0)
            axis.set_ylabel(unit)
            axis.set_title(f"{group}, {protocol.upper()}", fontsize=10)
            axis.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper right", ncols=2)
    figure.suptitle("tritonlite and Triton 2.51 on the same machine (higher infer/s and lower p99 are better)")
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    figure.savefig(path, dpi=100)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="starts of each server (order alternates)")
    parser.add_argument("--interval-ms", type=int, default=3000, help="perf_analyzer measurement window")
    parser.add_argument("--quick", action="store_true", help="one repeat, short windows, concurrency 1 and 4")
    parser.add_argument("--output", default="suite", help="results file name (without extension)")
    parser.add_argument("--port-offset", type=int, default=0, help="added to every port (18000-2, 8100-2)")
    args = parser.parse_args()
    for server, ports in PORTS.items():
        PORTS[server] = tuple(port + args.port_offset for port in ports)
    if perf_analyzer_missing(need_triton=True):
        return 2
    repeat, interval = (1, 1000) if args.quick else (args.repeat, args.interval_ms)
    plan = workloads(args.quick)
    runs: dict[str, list[dict]] = {server: [] for server in SERVERS}
    for attempt in range(repeat):
        order = SERVERS if attempt % 2 == 0 else SERVERS[::-1]
        for server in order:
            print(f"repeat {attempt + 1}/{repeat}: {server}", flush=True)
            runs[server].append(run_server(server, plan, interval))
    summary = summarize(plan, runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"repeat": repeat, "interval_ms": interval, "runs": runs, **summary}
    (RESULTS / f"{args.output}.json").write_text(json.dumps(document, indent=2))
    table = markdown(summary, repeat)
    (RESULTS / f"{args.output}.md").write_text(table)
    plot(summary, RESULTS / f"{args.output}.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
