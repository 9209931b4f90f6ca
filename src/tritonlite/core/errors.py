"""One error type for the whole server, carrying Triton's error kinds.

Frontends translate the kind to an HTTP status or a gRPC status code; nothing else in the
core knows about either protocol.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """Triton's TRITONSERVER_Error_Code values."""

    UNKNOWN = "UNKNOWN"
    INTERNAL = "INTERNAL"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ARG = "INVALID_ARG"
    UNAVAILABLE = "UNAVAILABLE"
    UNSUPPORTED = "UNSUPPORTED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CANCELLED = "CANCELLED"


# How Triton names each kind when it prints a status ("Internal: ...").
KIND_LABELS = {
    ErrorKind.UNKNOWN: "Unknown",
    ErrorKind.INTERNAL: "Internal",
    ErrorKind.NOT_FOUND: "Not found",
    ErrorKind.INVALID_ARG: "Invalid argument",
    ErrorKind.UNAVAILABLE: "Unavailable",
    ErrorKind.UNSUPPORTED: "Unsupported",
    ErrorKind.ALREADY_EXISTS: "Already exists",
    ErrorKind.CANCELLED: "Cancelled",
}


class TritonError(Exception):
    """An error with a Triton kind and the message a client will see."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"TritonError({self.kind.name}, {self.message!r})"

    def status_text(self) -> str:
        """The error as Triton prints a status: ``Internal: message``."""
        return f"{KIND_LABELS[self.kind]}: {self.message}"


def invalid_arg(message: str) -> TritonError:
    return TritonError(ErrorKind.INVALID_ARG, message)


def not_found(message: str) -> TritonError:
    return TritonError(ErrorKind.NOT_FOUND, message)


def unavailable(message: str) -> TritonError:
    return TritonError(ErrorKind.UNAVAILABLE, message)


def internal(message: str) -> TritonError:
    return TritonError(ErrorKind.INTERNAL, message)


def unsupported(message: str) -> TritonError:
    return TritonError(ErrorKind.UNSUPPORTED, message)


class DecoupledModelError(TritonError):
    """A decoupled model (zero or more responses per request) was asked for exactly one response.

    Each frontend answers it with its own text (Triton's HTTP and gRPC texts differ)."""

    def __init__(self, model_name: str) -> None:
        super().__init__(ErrorKind.UNSUPPORTED, f"model '{model_name}' is decoupled: its responses need a stream")
