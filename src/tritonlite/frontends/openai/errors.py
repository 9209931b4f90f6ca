"""OpenAI's error answer: ``{"error": {"message", "type", "param", "code"}}`` with an HTTP status."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from tritonlite.core.errors import ErrorKind, TritonError


class OpenAIError(Exception):
    """An error as the OpenAI API reports it."""

    def __init__(
        self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
        code: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return Response(orjson.dumps(self.body()), status_code=self.status, media_type="application/json")


def bad_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def model_not_found(name: str) -> OpenAIError:
    return OpenAIError(404, f"The model `{name}` does not exist.", param="model", code="model_not_found")


def server_error(message: str) -> OpenAIError:
    return OpenAIError(500, message, type="server_error")


_STATUS = {
    ErrorKind.INVALID_ARG: (400, "invalid_request_error"),
    ErrorKind.NOT_FOUND: (404, "invalid_request_error"),
    ErrorKind.UNSUPPORTED: (400, "invalid_request_error"),
    ErrorKind.UNAVAILABLE: (503, "server_error"),
    ErrorKind.CANCELLED: (499, "server_error"),
}


def from_triton(exc: TritonError) -> OpenAIError:
    """A core error (a refused or failed request) in OpenAI's words; the message stays the core's."""
    status, kind = _STATUS.get(exc.kind, (500, "server_error"))
    return OpenAIError(status, exc.message, type=kind)
