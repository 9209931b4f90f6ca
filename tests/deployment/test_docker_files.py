"""docker/: the Dockerfiles (hadolint and structure), the install script, entrypoint, healthcheck, .dockerignore.

There is no Docker engine here: the images' install step itself runs in test_docker_install_smoke.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import (
    DOCKER,
    DOCKERFILES,
    INSTALL_SH,
    ROOT,
    dockerignore_rules,
    exec_form,
    is_ignored,
    parse_dockerfile,
)

import tritonlite

BIN = Path(sys.executable).parent
FLAVORS = sorted(DOCKERFILES)
REQUIRED_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.source",
)


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' brings it)")
    return found


@pytest.fixture(params=FLAVORS)
def flavor(request) -> str:
    return request.param


@pytest.fixture
def dockerfile(flavor):
    return parse_dockerfile(DOCKERFILES[flavor])


def copies(stage) -> dict[str, str]:
    """COPY destination -> source, for the COPYs from the build context (not --from another stage)."""
    found = {}
    for ins in stage.all("COPY"):
        flags, words = ins.flags_and_args()
        if "from" not in flags:
            *sources, dest = words
            for source in sources:
                found[dest] = source
    return found


# --------------------------------------------------------------------------- linters


def test_hadolint_passes(flavor):
    hadolint = tool("hadolint")
    labels = [f"--require-label={label}:text" for label in REQUIRED_LABELS]
    result = subprocess.run([hadolint, "--no-color", *labels, str(DOCKERFILES[flavor])], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The linter is really consulted: an unpinned base image and a root ENTRYPOINT in shell form fail."""
    hadolint = tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install tritonlite\nENTRYPOINT tritonlite-server\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3025" in result.stdout


def test_shell_scripts_pass_shellcheck():
    shellcheck = tool("shellcheck")
    scripts = [INSTALL_SH, DOCKER / "entrypoint.sh"]
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script} is not executable"


# --------------------------------------------------------------------------- structure


def test_base_images_are_pinned_by_tag(flavor, dockerfile):
    stage_names = {s.name for s in dockerfile.stages if s.name}
    for stage in dockerfile.stages:
        if stage.base in stage_names:
            continue
        assert "$" not in stage.base, f"unresolved ARG in FROM {stage.base}"
        image, _, tag = stage.base.rpartition(":")
        assert image and tag and tag != "latest" and "/" not in tag, f"FROM {stage.base} is not pinned by a tag"
    external = {s.base for s in dockerfile.stages if s.base not in stage_names}
    (base,) = external
    if flavor == "cpu":
        assert base.startswith("python:3.") and "-slim" in base, base
    else:
        assert base.startswith("nvidia/cuda:12.") and "-runtime-" in base and "cudnn" in base, base


def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile):
    users = dockerfile.final.all("USER")
    assert users, "the final stage sets no USER: the server would run as root"
    user = users[-1].value.split(":")[0]
    # numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd
    assert user.isdigit() and int(user) != 0, f"USER {users[-1].value}"
    run_lines = " ".join(ins.value for ins in dockerfile.final.all("RUN"))
    assert f"--uid {user}" in run_lines, "the USER's uid is not created in the image"


def test_exposes_triton_ports(dockerfile):
    ports = {int(p.split("/")[0]) for ins in dockerfile.final.all("EXPOSE") for p in ins.value.split()}
    assert ports == {8000, 8001, 8002}


def test_healthcheck_hits_ready_endpoint(dockerfile):
    (health,) = dockerfile.final.all("HEALTHCHECK")
    flags, _ = health.flags_and_args()
    assert {"interval", "timeout", "start-period"} <= set(flags), flags
    command = exec_form(health)
    assert command[-1] == "http://127.0.0.1:8000/v2/health/ready"
    script = command[1]
    assert copies(dockerfile.final).get(script) == "docker/healthcheck.py"
    assert (ROOT / "docker" / "healthcheck.py").is_file()


def test_entrypoint_runs_tritonlite_server_with_models_cmd(dockerfile):
    (entrypoint,) = dockerfile.final.all("ENTRYPOINT")
    (cmd,) = dockerfile.final.all("CMD")
    assert exec_form(cmd) == ["--model-repository=/models"]
    (program,) = exec_form(entrypoint)
    # the entrypoint is docker/entrypoint.sh, installed on PATH; it execs tritonlite-server
    assert copies(dockerfile.final).get(f"/usr/local/bin/{program}") == "docker/entrypoint.sh"
    assert "exec tritonlite-server" in (DOCKER / "entrypoint.sh").read_text()
    env = " ".join(ins.value for ins in dockerfile.final.all("ENV"))
    assert "PATH=/opt/tritonlite/bin:" in env, "tritonlite-server (in the venv) is not on PATH"


def test_labels(dockerfile):
    labels = " ".join(ins.value for stage in dockerfile.stages for ins in stage.all("LABEL"))
    for label in REQUIRED_LABELS:
        assert f"{label}=" in labels
    assert dockerfile.arg_default("VERSION") == tritonlite.__version__, "image label VERSION default is stale"


def test_install_script_is_what_builds_the_venv(flavor, dockerfile):
    build = dockerfile.stage("build")
    installed_as = {dest: src for dest, src in copies(build).items()}
    (script_path,) = [dest for dest, src in installed_as.items() if src == "docker/install.sh"]
    assert INSTALL_SH.is_file()
    runs = [ins.value for ins in build.all("RUN") if Path(script_path).name in ins.value]
    assert len(runs) == 1, "the build stage should RUN docker/install.sh exactly once"
    assert "/opt/tritonlite /src" in runs[0] and "--extras" in runs[0] and "--no-cache" in runs[0]
    for dest, source in copies(build).items():
        assert (ROOT / source).exists(), f"COPY {source} {dest}: no such file in the checkout"
    # the venv comes into the final stage from the build stage
    final_copies = [ins.value for ins in dockerfile.final.all("COPY")]
    assert any("--from=build /opt/tritonlite /opt/tritonlite" in value for value in final_copies)


def test_image_extras(flavor, dockerfile):
    extras = dockerfile.arg_default("EXTRAS")
    if flavor == "cpu":
        assert extras == "onnx"
    else:
        assert extras == "gpu"
        assert dockerfile.arg_default("WITH_TORCH") == "0" and dockerfile.arg_default("WITH_TENSORRT") == "0"
        (run,) = [ins.value for ins in dockerfile.stage("build").all("RUN") if "tritonlite-install" in ins.value]
        assert "torch" in run and "tensorrt" in run
    # that these extras exist in the package is checked on the built wheel (test_wheel_packaging.py)


def test_dockerignore_keeps_what_the_images_copy():
    rules = dockerignore_rules(ROOT / ".dockerignore")
    for path in DOCKERFILES.values():
        for stage in parse_dockerfile(path).stages:
            for source in copies(stage).values():
                assert not is_ignored(source, rules), f"{path.name} copies {source}, which .dockerignore leaves out"
    for kept in (
        "src/tritonlite/__init__.py",
        "src/tritonlite/protocol/grpc_service_pb2.py",
        "src/tritonlite/py.typed",
    ):
        assert not is_ignored(kept, rules), kept
    for dropped in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "benchmarks/compare.py", "build/lib/x.py",
                    "src/tritonlite/__pycache__/cli.cpython-311.pyc", "src/tritonlite.egg-info/PKG-INFO",
                    "examples/model_repository/add_sub/config.pbtxt", "deploy/kserve/hpa.yaml"):  # fmt: skip
        assert is_ignored(dropped, rules), f".dockerignore lets {dropped} into the build context"


# --------------------------------------------------------------------------- entrypoint and healthcheck scripts


@pytest.fixture
def fake_server_path(tmp_path) -> str:
    """A PATH whose tritonlite-server just prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tritonlite-server"
    fake.write_text('#!/bin/sh\necho "server $*"\n')
    fake.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model-repository=/models"], "server --model-repository=/models"),
        (
            ["tritonlite-server", "--model-repository=/m", "--log-verbose=1"],
            "server --model-repository=/m --log-verbose=1",
        ),
        (["tritonserver", "--model-repository=/m"], "server --model-repository=/m"),
        (["echo", "other", "command"], "other command"),
    ],
)
def test_entrypoint_forms(fake_server_path, args, expected):
    result = subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": fake_server_path},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_healthcheck_fails_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    result = subprocess.run([sys.executable, str(DOCKER / "healthcheck.py"), url], capture_output=True, text=True)
    assert result.returncode == 1
    assert url in result.stderr


def test_install_script_rejects_unknown_extra(tmp_path):
    """A required extra the package does not define fails the build (an image never silently lacks it)."""
    from deploy_helpers import build_wheel

    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["bash", str(INSTALL_SH), "--python", sys.executable, "--extras", "no-such-extra", str(venv), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "has no extra no-such-extra" in result.stderr
    assert not (venv / "bin" / "tritonlite-server").exists()
