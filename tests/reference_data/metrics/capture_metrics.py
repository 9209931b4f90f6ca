#!/usr/bin/env python3
"""Capture what the real Triton 2.51 exposes with --metrics-config and --metrics-interval-ms.

Run manually against the reference server (NOT part of the test suite):

    /work/main/.venv/bin/python tests/reference_data/metrics/capture_metrics.py

Each run starts Triton (/work/shared/reference/run-triton.sh) on a temporary repository built from
tests/data/repository (add_sub, identity, identity_batched, exec_fails, and add_sub_cached: add_sub
with ``response_cache { enable: true }``), sends a known workload, scrapes the metrics port and
stops the server. Startup refusals are recorded with their exit code and output. Everything is
written verbatim to triton_2.51_metrics.json beside this script.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from capture import stop_server  # noqa: E402  (the 2.51 capture's way to stop run-triton.sh)

ROOT = HERE.parents[2]
SOURCE = ROOT / "tests" / "data" / "repository"
RUN_TRITON = Path("/work/shared/reference/run-triton.sh")
HTTP_PORT, GRPC_PORT, METRICS_PORT = 18100, 18101, 18102
MODELS = ["add_sub", "identity", "identity_batched", "exec_fails"]
MODEL_METRICS_BLOCK = """
model_metrics {
  metric_control [
    {
      metric_identifier { family: "nv_inference_first_response_histogram_ms" }
      histogram_options { buckets: [ 1, 2, 4 ] }
    }
  ]
}
"""

# name -> (flags, workload?)
RUNS = {
    "summary_and_histogram": ["--metrics-config=summary_latencies=true", "--metrics-config=histogram_latencies=true"],
    "custom_quantiles_no_counters": [
        "--metrics-config=summary_latencies=true",
        "--metrics-config=summary_quantiles=0.5:0.05,0.9:0.01",
        "--metrics-config=counter_latencies=false",
    ],
    "summary_with_cache": ["--metrics-config=summary_latencies=true", "--cache-config=local,size=1048576"],
    "bad_quantile_option": ["--metrics-config=summary_latencies=true", "--metrics-config=summary_quantiles=0.5,0.9:x"],
    "load_time_keys": [
        "--metrics-config=model_load_time=true", "--metrics-config=histogram_latencies=true",
        "--metrics-config=no_such_setting=1", "--metrics-interval-ms=500",
    ],
    "model_metrics_in_config": ["--metrics-config=histogram_latencies=true", "--exit-on-error=false"],
}  # fmt: skip

STARTUP_REFUSALS = {
    "metrics_config_without_equals": ["--metrics-config=summary_latencies"],
    "metrics_interval_not_a_number": ["--metrics-interval-ms=abc"],
    "metrics_interval_negative": ["--metrics-interval-ms=-5"],
    "summary_latencies_not_a_bool": ["--metrics-config=summary_latencies=yes"],
}


def build_repository(root: Path, with_model_metrics: bool) -> Path:
    repo = root / "repo"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir()
    for name in MODELS:
        shutil.copytree(SOURCE / name, repo / name)
    cached = repo / "add_sub_cached"
    shutil.copytree(SOURCE / "add_sub", cached)
    config = (cached / "config.pbtxt").read_text().replace('name: "add_sub"', 'name: "add_sub_cached"')
    (cached / "config.pbtxt").write_text(config + "\nresponse_cache { enable: true }\n")
    if with_model_metrics:
        identity = repo / "identity" / "config.pbtxt"
        identity.write_text(identity.read_text() + MODEL_METRICS_BLOCK)
    return repo


def metrics_text() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as answer:
        return answer.read().decode()


def start(repo: Path, log_path: Path, flags: list[str], expect_up: bool = True):
    cmd = [str(RUN_TRITON), str(repo), str(HTTP_PORT), str(GRPC_PORT), str(METRICS_PORT), "--", *flags]
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            return proc
        if "--exit-on-error=false" in flags and b"Started Metrics Service" in log_path.read_bytes():
            time.sleep(0.5)
            return proc
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/v2/health/ready", timeout=1) as answer:
                if answer.status == 200:
                    time.sleep(0.5)
                    return proc
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("tritonserver did not come up")


def workload() -> list[str]:
    """The known workload; returns what was sent, in words."""
    client = httpclient.InferenceServerClient(f"127.0.0.1:{HTTP_PORT}")
    ones = np.ones(4, np.float32)

    def add_sub(model: str) -> None:
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(ones)
        inputs[1].set_data_from_numpy(ones)
        client.infer(model, inputs)

    for _ in range(3):
        add_sub("add_sub")
    for _ in range(2):
        add_sub("add_sub_cached")  # a miss, then a hit
    failing = httpclient.InferInput("INPUT0", [4], "FP32")
    failing.set_data_from_numpy(ones)
    try:
        client.infer("exec_fails", [failing])
    except InferenceServerException:
        pass
    batch = httpclient.InferInput("INPUT0", [3, 4], "FP32")
    batch.set_data_from_numpy(np.ones((3, 4), np.float32))
    client.infer("identity_batched", [batch])
    for _ in range(2):
        single = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        single.set_data_from_numpy(np.ones((1, 4), np.float32))
        try:
            client.infer("identity", [single])
        except InferenceServerException:  # model_metrics_in_config: identity did not load
            pass
    return [
        "add_sub: 3 successful requests",
        "add_sub_cached: 2 identical requests (response cache: 1 miss, 1 hit when the cache is on)",
        "exec_fails: 1 failed request (BACKEND)",
        "identity_batched: 1 request of batch 3",
        "identity: 2 requests of batch 1, one after the other",
    ]


def log_lines(text: str, *needles: str) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in needles)]


def main() -> int:
    facts: dict = {
        "triton_version": "2.51.0",
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "server_command": ["run-triton.sh", "REPO", str(HTTP_PORT), str(GRPC_PORT), str(METRICS_PORT), "--"],
        "model_metrics_block_added_to_identity_in_model_metrics_in_config": MODEL_METRICS_BLOCK.strip(),
        "runs": {},
        "startup_refusals": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, flags in RUNS.items():
            repo = build_repository(root, with_model_metrics=name == "model_metrics_in_config")
            log_path = root / f"{name}.log"
            proc = start(repo, log_path, flags)
            if proc.poll() is not None:
                facts["runs"][name] = {
                    "flags": flags,
                    "exited": proc.returncode,
                    "log_tail": log_path.read_text(errors="replace")[-3000:],
                }
                continue
            before = metrics_text()
            sent = workload()
            time.sleep(0.5)
            after = metrics_text()
            stop_server(proc)
            log = log_path.read_text(errors="replace")
            facts["runs"][name] = {
                "flags": flags,
                "workload": sent,
                "exposition_before_workload": before,
                "exposition_after_workload": after,
                "log_lines": log_lines(log, "metric", "Invalid option", "model_metrics", "Option", "metrics"),
                "error_lines": [line for line in log.splitlines() if line.startswith("E")],
                "models_loaded": log_lines(log, "successfully loaded"),
            }
            print(f"{name}: {len(after.splitlines())} lines", flush=True)
        repo = build_repository(root, with_model_metrics=False)
        for name, flags in STARTUP_REFUSALS.items():
            log_path = root / f"{name}.log"
            proc = start(repo, log_path, flags)
            alive = proc.poll() is None
            stop_server(proc)
            text = log_path.read_text(errors="replace")
            facts["startup_refusals"][name] = {
                "flags": flags,
                "started": alive,
                "returncode": None if alive else proc.returncode,
                "output_tail": text[-400:] if not alive else "",
            }
            print(f"{name}: started={alive}", flush=True)
    out = HERE / "triton_2.51_metrics.json"
    out.write_text(json.dumps(facts, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
