"""Which model an infer request's target names: ``/v2/models/{name}[/versions/{version}]/infer``."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote

TARGET_LIMIT = 1024  # request targets remembered; starts over when full


class InferTarget(NamedTuple):
    model_name: str
    model_version: str  # "" for the model's default version policy


def parse_infer_path(path: str) -> InferTarget | None:
    """The model and version of an infer path, or None when ``path`` is not one."""
    if not path.startswith("/v2/models/") or not path.endswith("/infer"):
        return None
    parts = path[len("/v2/models/") : -len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return InferTarget(parts[0], "")
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2].isdigit():
        return InferTarget(parts[0], parts[2])
    return None


class InferTargets:
    """Infer targets by the raw request target, parsed once (clients repeat their targets)."""

    def __init__(self) -> None:
        self._found: dict[bytes, InferTarget | None] = {}

    def find(self, url: bytes) -> InferTarget | None:
        """The infer target of a request target as sent (query ignored, escapes unquoted)."""
        raw_path = url.partition(b"?")[0]
        found = self._found
        try:
            return found[raw_path]
        except KeyError:
            pass
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            target = None
        else:
            target = parse_infer_path(unquote(path) if "%" in path else path)
        if len(found) >= TARGET_LIMIT:
            found.clear()
        found[raw_path] = target
        return target
