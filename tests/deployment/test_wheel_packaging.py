"""Packaging: the wheel built from the checkout carries the right name, version, entry point, data and extras."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest
from deploy_helpers import ROOT, build_wheel

import tritonlite

# extras this issue owns; the framework extras (onnx, torch, tensorrt) come with their backends
DEPLOYMENT_EXTRAS = {"s3", "gpu", "all"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def dist_info_file(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (path,) = [n for n in archive.namelist() if re.fullmatch(rf"tritonlite-[^/]+\.dist-info/{name}", n)]
        return archive.read(path).decode()


@pytest.fixture(scope="module")
def metadata(wheel) -> Message:
    return Parser().parsestr(dist_info_file(wheel, "METADATA"))


def requirements_of(metadata: Message, extra: str) -> list[str]:
    marker = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    return [req.split(";")[0].strip() for req in metadata.get_all("Requires-Dist") or [] if marker.search(req)]


def test_name_and_version_come_from_the_package(wheel, metadata):
    assert metadata["Name"] == "tritonlite"
    assert metadata["Version"] == tritonlite.__version__
    assert wheel.name == f"tritonlite-{tritonlite.__version__}-py3-none-any.whl"
    assert metadata["Requires-Python"] == ">=3.10"


def test_version_is_defined_in_one_place():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "tritonlite.__version__" }' in pyproject
    assert not re.search(r"^version\s*=\s*\"", pyproject, re.MULTILINE), "a literal version in pyproject.toml"
    init = (ROOT / "src" / "tritonlite" / "__init__.py").read_text()
    assert len(re.findall(r"^__version__\s*=", init, re.MULTILINE)) == 1


def test_console_script(wheel):
    entry_points = dist_info_file(wheel, "entry_points.txt")
    assert re.search(r"^\[console_scripts\]\s*$", entry_points, re.MULTILINE)
    assert re.search(r"^tritonlite-server\s*=\s*tritonlite\.cli:main\s*$", entry_points, re.MULTILINE)


def test_server_reports_the_version():
    result = subprocess.run(
        [sys.executable, "-m", "tritonlite", "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"tritonlite {tritonlite.__version__} " in result.stdout


def test_package_data(names):
    required = {
        "tritonlite/__init__.py",
        "tritonlite/py.typed",
        "tritonlite/cli.py",
        "tritonlite/protocol/grpc_service_pb2.py",
        "tritonlite/protocol/grpc_service_pb2_grpc.py",
        "tritonlite/protocol/model_config_pb2.py",
        "tritonlite/backends/python/triton_python_backend_utils.py",
    }
    assert required <= names, sorted(required - names)
    # every generated module of the checkout is in the wheel, stubs included
    generated = {f"tritonlite/protocol/{p.name}" for p in (ROOT / "src" / "tritonlite" / "protocol").glob("*_pb2*.py*")}
    assert generated and generated <= names, sorted(generated - names)


def test_wheel_holds_every_source_module(wheel, names):
    source = wheel.parents[1] / "source" / "src"  # the copy of the checkout that the wheel was built from
    sources = {str(p.relative_to(source)) for p in (source / "tritonlite").rglob("*.py")}
    assert len(sources) > 10
    assert sources <= names, sorted(sources - names)


def test_wheel_holds_only_the_package(names):
    top = {name.split("/")[0] for name in names}
    assert top == {"tritonlite", f"tritonlite-{tritonlite.__version__}.dist-info"}, top
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_extras(metadata):
    provided = set(metadata.get_all("Provides-Extra") or [])
    assert DEPLOYMENT_EXTRAS | {"test"} <= provided, provided
    assert any(req.startswith("onnxruntime-gpu") for req in requirements_of(metadata, "gpu"))
    assert any(req.startswith("s3fs") for req in requirements_of(metadata, "s3"))
    otel = requirements_of(metadata, "otel")  # --trace-config mode=opentelemetry
    assert any(req.startswith("opentelemetry-sdk") for req in otel)
    assert any(req.startswith("opentelemetry-exporter-otlp-proto-http") for req in otel)
    # `all` lists the other extras by name (self-references), and each of them exists
    (everything,) = requirements_of(metadata, "all")
    match = re.fullmatch(r"tritonlite\[([\w,\- ]+)\]", everything.replace(" ", ""))
    assert match, everything
    named = {extra.strip() for extra in match.group(1).split(",")}
    assert "s3" in named and "gpu" not in named  # onnxruntime-gpu and onnxruntime cannot share a venv
    missing = named - provided
    assert not missing, f"extra 'all' names extras that are not defined: {sorted(missing)}"
