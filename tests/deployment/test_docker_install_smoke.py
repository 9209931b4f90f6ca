"""The CPU image's steps without Docker: lay out its files, run its install step, serve, and smoke-test.

docker/Dockerfile.cpu is read, not restated: its COPY instructions (filtered by .dockerignore) lay the
build context out under a temporary "image root", its RUN of docker/install.sh runs there (into a fresh
virtualenv, with pip's cache instead of --no-cache), and the server starts through the image's
ENTRYPOINT script and is waited for with its HEALTHCHECK command, with the example repository.
tritonclient then talks to it over HTTP and gRPC from this test's own environment.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from deploy_helpers import (
    DOCKERFILES,
    EXAMPLES,
    ROOT,
    dockerignore_rules,
    exec_form,
    is_ignored,
    load_documents,
    objects_of_kind,
    parse_dockerfile,
)

import tritonlite

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

IMAGE_SIZE_BUDGET = 1024**3  # the CPU venv; the python:slim base adds ~0.15 GB (README: image size targets)
ADAPTER_VALUES = ROOT / "deploy" / "kubernetes" / "autoscaling" / "prometheus-adapter-values.yaml"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


class Image:
    """The CPU image's filesystem under ``root``, with paths as the Dockerfile names them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dockerfile = parse_dockerfile(DOCKERFILES["cpu"])
        self.install_log = ""

    def path(self, image_path: str, workdir: str = "/") -> Path:
        absolute = image_path if image_path.startswith("/") else f"{workdir.rstrip('/')}/{image_path}"
        return self.root / absolute.lstrip("/")

    def copy_context(self, stage) -> None:
        rules = dockerignore_rules(ROOT / ".dockerignore")
        workdir = "/"
        for ins in stage.instructions:
            if ins.keyword == "WORKDIR":
                workdir = ins.value
                self.path(workdir).mkdir(parents=True, exist_ok=True)
            if ins.keyword != "COPY":
                continue
            flags, words = ins.flags_and_args()
            if "from" in flags:
                continue
            *sources, dest = words
            for source in sources:
                target = self.path(dest, workdir)
                if dest.endswith("/") or len(sources) > 1:
                    target = target / Path(source).name
                self._copy(ROOT / source, target, source, rules)

    @staticmethod
    def _copy(source: Path, target: Path, relative: str, rules) -> None:
        if source.is_dir():
            for item in sorted(source.rglob("*")):
                rel = f"{relative.rstrip('/')}/{item.relative_to(source)}"
                if item.is_file() and not is_ignored(rel, rules):
                    (target / item.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(item, target / item.relative_to(source))
        else:
            assert not is_ignored(relative, rules), f"{relative} is left out of the build context"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)

    def install_command(self) -> list[str]:
        """The build stage's RUN of the install script, mapped onto this root."""
        build = self.dockerfile.stage("build")
        (run,) = [ins.value for ins in build.all("RUN") if "tritonlite-install" in ins.value]
        extras = self.dockerfile.arg_default("EXTRAS")
        words = shlex.split(run.replace("${EXTRAS}", extras))
        assert words[0] == "tritonlite-install", run
        command = ["bash", str(self.path("/usr/local/bin/tritonlite-install")), "--python", sys.executable]
        for word in words[1:]:
            if word == "--no-cache":
                continue  # reuse pip's cache here; the image keeps none
            if word == "--extras":
                # the framework extras (onnx) may not be defined yet by this version: install what exists
                word = "--optional-extras"
            command.append(str(self.path(word)) if word.startswith("/") else word)
        return command

    @property
    def venv(self) -> Path:
        return self.path("/opt/tritonlite")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        for ins in self.dockerfile.final.all("ENV"):
            for assignment in shlex.split(ins.value):
                key, _, value = assignment.partition("=")
                if key == "PATH":
                    value = value.replace("/opt/tritonlite/bin", str(self.venv / "bin")).replace(
                        "$PATH", os.environ["PATH"]
                    )
                env[key] = value
        return env


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Image:
    image = Image(tmp_path_factory.mktemp("cpu-image"))
    for stage in image.dockerfile.stages:
        image.copy_context(stage)
    started = time.monotonic()
    result = subprocess.run(image.install_command(), capture_output=True, text=True, timeout=540, cwd=image.root)
    image.install_log = result.stdout + result.stderr
    assert result.returncode == 0, f"docker/install.sh failed:\n{image.install_log[-6000:]}"
    print(f"\ninstall.sh took {time.monotonic() - started:.1f}s")
    return image


class Server:
    def __init__(self, image: Image, workdir: Path) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.image = image
        (entrypoint,) = exec_form(image.dockerfile.final.all("ENTRYPOINT")[0])
        args = [
            "tritonlite-server",  # the Triton-style form: the command named after the image
            f"--model-repository={EXAMPLES}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
        ]
        self.log_path = workdir / "server.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["sh", str(image.path(f"/usr/local/bin/{entrypoint}")), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=image.env(),
            cwd=workdir,  # not the checkout: only the installed package can be imported
        )

    def healthcheck(self) -> int:
        (health,) = self.image.dockerfile.final.all("HEALTHCHECK")
        interpreter, script, url = exec_form(health)
        url = url.replace(":8000/", f":{self.http_port}/")
        command = [str(self.image.path(interpreter)), str(self.image.path(script)), url]
        return subprocess.run(command, capture_output=True, timeout=30, env=self.image.env()).returncode

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited early:\n{self.log_path.read_text(errors='replace')}")
            if self.healthcheck() == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"not healthy after {timeout}s:\n{self.log_path.read_text(errors='replace')}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def server(image, tmp_path_factory):
    running = Server(image, tmp_path_factory.mktemp("server"))
    try:
        running.wait_healthy()
        yield running
    finally:
        running.stop()


# --------------------------------------------------------------------------- install


def test_install_builds_a_venv_within_the_size_budget(image, record_property):
    size = tree_size(image.venv)
    installed = subprocess.run(
        [str(image.venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packages = dict(line.split("==", 1) for line in installed.split() if "==" in line)
    record_property("venv_bytes", size)
    print(f"\nCPU image venv: {size / 1e6:.0f} MB, {len(packages)} packages (onnxruntime: {'onnxruntime' in packages})")
    assert packages["tritonlite"] == tritonlite.__version__
    assert size < IMAGE_SIZE_BUDGET, f"the CPU venv is {size / 1e6:.0f} MB"
    assert re.search(r"install\.sh: installed size \S+", image.install_log)
    # the wheel was built and installed; nothing points back at the checkout
    assert not list((image.venv / "lib").glob("python*/site-packages/__editable__*"))
    assert not list((image.venv / "lib").glob("python*/site-packages/*.pth")) or all(
        str(ROOT) not in p.read_text() for p in (image.venv / "lib").glob("python*/site-packages/*.pth")
    )


def test_installed_package_is_imported_from_the_venv(image, tmp_path):
    result = subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", "import tritonlite, sys; print(tritonlite.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=image.env(),
        check=True,
    )
    location = Path(result.stdout.strip())
    assert image.venv in location.parents, location
    version = subprocess.run(
        ["tritonlite-server", "--version"], capture_output=True, text=True, env=image.env(), check=True
    ).stdout
    assert version.startswith(f"tritonlite {tritonlite.__version__} ")


# --------------------------------------------------------------------------- serving


def test_http_smoke(server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        metadata = client.get_server_metadata()
        assert metadata["name"] == "triton" and metadata["version"]
        assert client.is_model_ready("add_sub")
        a = np.arange(4, dtype=np.float32)
        b = np.full(4, 2, dtype=np.float32)
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b, binary_data=False)
        result = client.infer("add_sub", inputs)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    finally:
        client.close()


def test_grpc_smoke(server):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata().name == "triton"
        assert client.is_model_ready("add_sub")
        assert {m.name for m in client.get_model_repository_index().models} >= {"add_sub", "identity", "string_upper"}
        a = np.array([1.5, 2.5, 3.5, 4.5], dtype=np.float32)
        b = np.ones(4, dtype=np.float32)
        inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)
        result = client.infer("add_sub", inputs)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    finally:
        client.close()


def test_manifest_probes_answer(server):
    """The paths the Kubernetes probes use answer 200 from the installed server."""
    probes = set()
    for _, doc in objects_of_kind("Deployment"):
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        for name in ("startupProbe", "livenessProbe", "readinessProbe"):
            probes.add(container[name]["httpGet"]["path"])
    assert probes == {"/v2/health/live", "/v2/health/ready"}
    for path in sorted(probes):
        assert requests.get(f"http://127.0.0.1:{server.http_port}{path}", timeout=5).status_code == 200, path


def test_autoscaling_metrics_are_exported(server):
    """Every metric the Prometheus Adapter rules read is in the installed server's /metrics for add_sub."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
    for tensor in inputs:
        tensor.set_data_from_numpy(np.ones(4, dtype=np.float32))
    client.infer("add_sub", inputs)
    client.close()
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    (values,) = load_documents(ADAPTER_VALUES)
    used = set()
    for rule in values["rules"]["custom"]:
        used |= set(re.findall(r"\b(nv_[a-z_]+)\{", rule["metricsQuery"] + rule["seriesQuery"]))
    assert {"nv_inference_queue_duration_us", "nv_inference_pending_request_count"} <= used
    for name in sorted(used):
        assert re.search(rf'^{name}\{{[^}}]*model="add_sub"[^}}]*\}} \d', text, re.MULTILINE), f"{name} not exported"


def test_stops_cleanly_on_sigterm(image, tmp_path):
    """docker stop / a pod's termination sends SIGTERM to the entrypoint, which is the server (exec)."""
    running = Server(image, tmp_path)
    try:
        running.wait_healthy()
        assert running.process.poll() is None
    finally:
        code = running.stop()
    assert code == 0, running.log_path.read_text(errors="replace")
