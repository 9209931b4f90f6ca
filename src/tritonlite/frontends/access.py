"""Restricted API groups (``--http-restricted-api``, ``--grpc-restricted-protocol``), free of any transport.

Triton 2.51 sorts its endpoints into groups; a restricted group answers only requests that carry a
given header with a given value. This module holds the groups, parses the flags with Triton's
error texts, and decides whether a request's headers pass. The HTTP and gRPC frontends map their
endpoints to groups (``http/restricted.py``, ``grpc/restricted.py``) and word the refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

HEALTH = "health"
METADATA = "metadata"
INFERENCE = "inference"
SHARED_MEMORY = "shared-memory"
MODEL_CONFIG = "model-config"
MODEL_REPOSITORY = "model-repository"
STATISTICS = "statistics"
TRACE = "trace"
LOGGING = "logging"
GROUPS = (HEALTH, METADATA, INFERENCE, SHARED_MEMORY, MODEL_CONFIG, MODEL_REPOSITORY, STATISTICS, TRACE, LOGGING)


@dataclass(frozen=True, slots=True)
class Restriction:
    """The header a restricted group's requests must carry, and its value."""

    header: str  # as the flag gave it; the refusal names it so
    value: str


@dataclass(frozen=True)
class Restrictions:
    """The restricted groups of one frontend; empty when its flag was not given."""

    by_group: Mapping[str, Restriction] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.by_group)

    def get(self, group: str | None) -> Restriction | None:
        return self.by_group.get(group) if group is not None else None


def parse_restrictions(values: Iterable[str], flag: str, noun: str) -> Restrictions:
    """Triton's ``<groups>:<header>=<value>`` values of ``flag`` (repeatable). ``noun`` is Triton's word
    in its errors: "api" for HTTP, "protocol" for gRPC. A bad value raises ValueError with Triton's text."""
    by_group: dict[str, Restriction] = {}
    for text in values:
        groups, _, setting = text.partition(":")
        header, _, value = setting.partition("=")
        if not groups or not header or not value:
            raise ValueError(
                f"Bad option: \"{flag}\".\n{flag} option format is '<config name>:<setting>=<value>'. Got {text}"
            )
        restriction = Restriction(header, value)
        for group in groups.split(","):
            if group not in GROUPS:
                raise ValueError(f"Bad option: \"{flag}\".\nunknown restricted {noun} '{group}' ")
            if group in by_group:
                message = f"restricted {noun} '{group}' can not be specified in multiple config groups"
                raise ValueError(f'Bad option: "{flag}".\n{message}')
            by_group[group] = restriction
    return Restrictions(by_group)
