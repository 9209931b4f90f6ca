"""How the HTTP frontend words a failure: a status from the error's kind and ``{"error": "..."}``."""

from __future__ import annotations

import logging

import orjson

from tritonlite.core.errors import DecoupledModelError, ErrorKind, TritonError

log = logging.getLogger(__name__)

STATUS_BY_KIND = {
    ErrorKind.UNKNOWN: 500,
    ErrorKind.INTERNAL: 500,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.INVALID_ARG: 400,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.UNSUPPORTED: 501,
    ErrorKind.ALREADY_EXISTS: 400,
    ErrorKind.CANCELLED: 499,
}

# Triton's answer to /infer on a decoupled model (its gRPC text differs)
DECOUPLED_MESSAGE = "HTTP end point doesn't support models with decoupled transaction policy"

JSON_HEADERS = [(b"content-type", b"application/json")]

Headers = list[tuple[bytes, bytes]]


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_answer(exc: TritonError) -> tuple[int, bytes]:
    """Status and body for a core error."""
    message = DECOUPLED_MESSAGE if isinstance(exc, DecoupledModelError) else exc.message
    return STATUS_BY_KIND[exc.kind], error_body(message)


def failure(exc: BaseException, model_name: str) -> tuple[int, Headers, bytes]:
    """Status, headers and body answering an infer that raised ``exc``: Triton's status for a
    TritonError; any other exception is a bug, logged and answered 500 rather than dropping the
    connection."""
    if isinstance(exc, TritonError):
        status, body = error_answer(exc)
        return status, JSON_HEADERS, body
    log.error("infer on '%s' failed", model_name, exc_info=exc)
    return 500, JSON_HEADERS, error_body(f"internal error: {type(exc).__name__}: {exc}")
