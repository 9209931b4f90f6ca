"""Shared helpers for the deployment tests: Dockerfile parsing, .dockerignore matching, manifests, wheels."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DEPLOY = ROOT / "deploy"
DOCKERFILES = {"gpu": DOCKER / "Dockerfile", "cpu": DOCKER / "Dockerfile.cpu"}
INSTALL_SH = DOCKER / "install.sh"
EXAMPLES = ROOT / "examples" / "model_repository"

# What a build context needs to build the package (what the Dockerfiles COPY into /src).
PACKAGE_FILES = ("pyproject.toml", "README.md", "src")


# --------------------------------------------------------------------------- Dockerfiles


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    value: str  # the rest of the (continued) line, comments removed
    line: int

    def flags_and_args(self) -> tuple[dict[str, str], list[str]]:
        """``--flag=value`` options (as on COPY/HEALTHCHECK) and the remaining shell-split words."""
        words = shlex.split(self.value)
        flags: dict[str, str] = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        return flags, words


@dataclass
class Stage:
    base: str  # the FROM image, with ARG defaults substituted
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def arg_default(self, name: str) -> str | None:
        for stage in self.stages:
            for ins in stage.all("ARG"):
                key, _, value = ins.value.partition("=")
                if key.strip() == name:
                    return value.strip().strip('"')
        return self.global_args.get(name)


def _substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def parse_dockerfile(path: Path) -> Dockerfile:
    """A small Dockerfile parser: continuation lines, comments, ARGs before FROM, stages."""
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):  # comment lines inside a continued instruction
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    assert not buffer, f"{path}: dangling line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in logical:
        keyword, _, value = text.partition(" ")
        ins = Instruction(keyword.upper(), value.strip(), line)
        if ins.keyword == "FROM":
            words = ins.value.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = _substitute(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert ins.keyword == "ARG", f"{path}:{line}: only ARG may come before the first FROM"
            key, _, default = ins.value.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append(ins)
    return Dockerfile(path, global_args, stages)


def exec_form(ins: Instruction) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD; fails on shell form."""
    import json

    value = ins.value
    if ins.keyword == "HEALTHCHECK":
        _, _, value = value.partition("CMD")
    value = value.strip()
    assert value.startswith("["), f"line {ins.line}: {ins.keyword} should use the exec (JSON) form"
    return json.loads(value)


# --------------------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        rules.append((negate, _pattern_regex(pattern.strip("/"))))
    return rules


def is_ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent folders decides."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


# --------------------------------------------------------------------------- manifests


def manifest_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yaml"))


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_objects() -> list[tuple[Path, dict]]:
    """Every Kubernetes object under deploy/ (documents with apiVersion and kind; not helm values)."""
    found = []
    for path in manifest_files():
        for doc in load_documents(path):
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                found.append((path, doc))
    return found


def objects_of_kind(kind: str) -> list[tuple[Path, dict]]:
    return [(path, doc) for path, doc in k8s_objects() if doc["kind"] == kind]


# --------------------------------------------------------------------------- packaging


def stage_package_source(dest: Path) -> Path:
    """Copy what the Dockerfiles COPY to build the package (no build leftovers) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in PACKAGE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    return dest


def build_wheel(dest: Path) -> Path:
    """``pip wheel --no-deps`` of a clean copy of the checkout; returns the wheel's path."""
    source = stage_package_source(dest / "source")
    out = dest / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", out, source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = out.glob("tritonlite-*.whl")
    return wheel
