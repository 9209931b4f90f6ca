"""Exception classes named as the ``tritonserver`` package names them, one per Triton error kind.

They subclass the core's TritonError, so their ``kind`` and ``message`` are the engine's and the
message is the text an HTTP or gRPC client would read for the same failure.
"""

from __future__ import annotations

from tritonlite.core.errors import ErrorKind
from tritonlite.core.errors import TritonError as CoreTritonError


class TritonError(CoreTritonError):
    """Base of the in-process API's errors (``tritonserver.TritonError``)."""

    KIND = ErrorKind.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(type(self).KIND, message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class UnknownError(TritonError):
    KIND = ErrorKind.UNKNOWN


class InternalError(TritonError):
    KIND = ErrorKind.INTERNAL


class NotFoundError(TritonError):
    KIND = ErrorKind.NOT_FOUND


class InvalidArgumentError(TritonError):
    KIND = ErrorKind.INVALID_ARG


class UnavailableError(TritonError):
    KIND = ErrorKind.UNAVAILABLE


class UnsupportedError(TritonError):
    KIND = ErrorKind.UNSUPPORTED


class AlreadyExistsError(TritonError):
    KIND = ErrorKind.ALREADY_EXISTS


class CancelledError(TritonError):
    KIND = ErrorKind.CANCELLED


_CLASS_BY_KIND: dict[ErrorKind, type[TritonError]] = {
    cls.KIND: cls
    for cls in (
        UnknownError,
        InternalError,
        NotFoundError,
        InvalidArgumentError,
        UnavailableError,
        UnsupportedError,
        AlreadyExistsError,
        CancelledError,
    )
}


def public_error(exc: CoreTritonError) -> TritonError:
    """The API's exception for a core error: the class of its kind, the same message."""
    if isinstance(exc, TritonError):
        return exc
    return _CLASS_BY_KIND[exc.kind](exc.message)
