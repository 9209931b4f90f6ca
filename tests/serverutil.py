"""Start a real tritonlite-server on free ports for integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    """A tritonlite-server subprocess; ``http``/``grpc`` are "host:port" addresses."""

    def __init__(self, repositories: list[Path], *extra: str, wait_ready: bool = True) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.http = f"127.0.0.1:{self.http_port}"
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tritonlite-test-{self.http_port}.log"
        args = [sys.executable, "-m", "tritonlite"]
        for repo in repositories:
            args.append(f"--model-repository={repo}")
        args += [
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            *extra,
        ]
        self._metrics_on = "--allow-metrics=false" not in extra
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        if wait_ready:
            self.wait_listening()

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonlite-server exited early:\n{self.log()}")
            try:
                requests.get(f"http://{self.http}/v2/health/live", timeout=1)
                if self._metrics_on:  # the metrics endpoint opens just after HTTP
                    requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"tritonlite-server did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
