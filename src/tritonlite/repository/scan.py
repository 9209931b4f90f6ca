"""Find models and their versions in one or more repository folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tritonlite.core.errors import invalid_arg


@dataclass(frozen=True)
class ModelSource:
    """Where a model lives: its name and its folder."""

    name: str
    path: Path
    # the repository its folder and config must resolve into (None: symlinks may lead anywhere)
    root: Path | None = None
    # --model-config-name: configs/<name>.pbtxt is read instead of config.pbtxt where it exists
    config_name: str = ""


def find_models(
    repositories: list[str | Path], allow_symlinks_outside: bool = False, config_name: str = ""
) -> tuple[dict[str, ModelSource], dict[str, str]]:
    """Model folders of all repositories.

    Returns the models found, and the names that are ambiguous (same model in two
    repositories) with the reason they cannot be loaded. Unless ``allow_symlinks_outside``, each
    source names its repository as the root its files must stay in (``config.read_config``).
    """
    found: dict[str, ModelSource] = {}
    duplicates: dict[str, str] = {}
    for repository in repositories:
        root = Path(repository)
        if not root.is_dir():
            raise invalid_arg(f"failed to stat file {root}")
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if entry.name in found:
                duplicates[entry.name] = (
                    f"model '{entry.name}' appears in multiple repositories: {found[entry.name].path.parent} and {root}"
                )
                continue
            found[entry.name] = ModelSource(
                entry.name, Path(entry.path), None if allow_symlinks_outside else root, config_name
            )
    for name in duplicates:
        found.pop(name, None)
    return found, duplicates


def version_folders(model_path: Path) -> list[int]:
    """Numeric version folders of a model, ascending (version 0 is not a valid version)."""
    versions = []
    for entry in os.scandir(model_path):
        if entry.is_dir() and entry.name.isascii() and entry.name.isdigit() and not entry.name.startswith("0"):
            versions.append(int(entry.name))
    return sorted(versions)


def select_versions(available: list[int], policy) -> list[int]:
    """Apply a ModelVersionPolicy (latest N, all, specific) to the available versions."""
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return list(available)
    if which == "specific":
        wanted = list(policy.specific.versions)
        missing = [v for v in wanted if v not in available]
        if missing:
            raise invalid_arg(f"version {missing[0]} is specified for model but the version directory is not present")
        return sorted(wanted)
    count = policy.latest.num_versions if which == "latest" else 1
    return available[-count:] if count > 0 else []


def fingerprint(model_path: Path) -> tuple:
    """What changes when any file of the model changes: (relative path, size, mtime) of each file."""
    items = []
    for root, dirs, files in os.walk(model_path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if name.startswith(".") or name.endswith(".pyc"):
                continue
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            items.append((os.path.relpath(path, model_path), stat.st_size, stat.st_mtime_ns))
    return tuple(items)
