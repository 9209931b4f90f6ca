"""Paths inside a model folder: nothing may escape it (traversal, absolute paths, symlinks)."""

from __future__ import annotations

import re
from pathlib import Path

from tritonlite.core.errors import invalid_arg

_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def validate_model_name(name: str) -> str:
    """A model name is one folder name: letters, digits, '_', '-', '.', not '.' or '..'."""
    if not name or name in (".", "..") or not _MODEL_NAME.match(name):
        raise invalid_arg(f"invalid model name '{name}'")
    return name


def resolve_inside(root: Path, relative: str) -> Path:
    """``root/relative``, refusing absolute paths, '..' and symlinks that lead outside ``root``."""
    if not relative or relative.startswith(("/", "\\")) or Path(relative).is_absolute():
        raise invalid_arg(f"invalid file path '{relative}': must be relative to the model folder")
    parts = Path(relative).parts
    if any(part in ("..", "") for part in parts) or "\\" in relative:
        raise invalid_arg(f"invalid file path '{relative}': must not leave the model folder")
    base = root.resolve()
    target = (root / relative).resolve()
    if target != base and base not in target.parents:
        raise invalid_arg(f"invalid file path '{relative}': resolves outside the model folder")
    return target
