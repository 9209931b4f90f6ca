"""``--http-restricted-api`` on the HTTP port: which group a path belongs to, and Triton's 403.

Triton 2.51 finds a request's group from its path alone (``HTTPAPIServer::Handle``), before it looks
at the method, the model or the body: a restricted group answers 403 with
``{"error":"This API is restricted, expecting header 'KEY'"}`` (``text/plain``, as Triton's) to a
request without ``KEY: VALUE``. Infer requests are checked by their exchange (``InferHeaders.of``
asks ``HeaderCheck.allows``); every other path by ``RestrictedApi``, wrapped around the FastAPI
application. Paths that are no Triton endpoint (404) belong to no group, but for tritonlite's own
data endpoints: the status snapshot needs every restricted group among model-repository, metadata and
statistics, and the OpenAI routes follow Triton's OpenAI frontend (completions, chat completions and
embeddings are inference; ``/v1/models`` is model-repository).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tritonlite.frontends import access
from tritonlite.frontends.access import Restriction, Restrictions
from tritonlite.frontends.http.errors import Headers, error_body
from tritonlite.frontends.http.status_page import STATUS_PATH

# Triton's own expressions (http_server.cc), matched against the whole path
_MODEL = re.compile(
    r"/v2/models/([^/]+)(?:/versions/([0-9]+))?(?:/(infer|generate|generate_stream|ready|config|stats|trace/setting))?"
)
_HEALTH = re.compile(r"/v2(?:/health/(live|ready))?")
_SHARED_MEMORY = re.compile(r"/v2/(?:system|cuda)sharedmemory(?:/region/([^/]+))?/(status|register|unregister)")
_REPOSITORY = re.compile(r"/v2/repository(?:/([^/]+))?/(index|models/([^/]+)/(load|unload))")

_GROUP_BY_KIND = {
    "ready": access.HEALTH,
    "infer": access.INFERENCE,
    "generate": access.INFERENCE,
    "generate_stream": access.INFERENCE,
    "config": access.MODEL_CONFIG,
    "stats": access.STATISTICS,
    "": access.METADATA,
}


def group_of_path(path: str) -> str | None:
    """The group of the endpoint at ``path``, in the order Triton's dispatch tries them; None for a path
    that is no Triton endpoint."""
    if path == "/v2/models/stats":
        return access.STATISTICS
    if path == "/v2/logging":
        return access.LOGGING
    match = _MODEL.fullmatch(path)
    if match is not None:
        kind = match.group(3) or ""
        if kind != "trace/setting":
            return _GROUP_BY_KIND[kind]
        if match.group(2) is None:  # a model's trace settings have no version: with one it is a 404
            return access.TRACE
    if path == "/v2":
        return access.METADATA
    if _HEALTH.fullmatch(path):
        return access.HEALTH
    if _SHARED_MEMORY.fullmatch(path):
        return access.SHARED_MEMORY
    if _REPOSITORY.fullmatch(path):
        return access.MODEL_REPOSITORY
    if path == "/v2/trace/setting":
        return access.TRACE
    return None


_OPENAI_INFERENCE = frozenset(("/v1/completions", "/v1/chat/completions", "/v1/embeddings"))


def groups_of_path(path: str) -> tuple[str, ...]:
    """Every group a request for ``path`` must pass: Triton's one, or those of a tritonlite endpoint."""
    group = group_of_path(path)
    if group is not None:
        return (group,)
    if path == STATUS_PATH:  # models, their states and their statistics in one snapshot
        return (access.MODEL_REPOSITORY, access.METADATA, access.STATISTICS)
    if path in _OPENAI_INFERENCE:
        return (access.INFERENCE,)
    if path == "/v1/models" or path.startswith("/v1/models/"):
        return (access.MODEL_REPOSITORY,)
    return ()


REFUSAL_HEADERS: Headers = [(b"content-type", b"text/plain")]


@dataclass(frozen=True, slots=True)
class HeaderCheck:
    """One restriction, ready to test parsed headers (lower-case names) and to answer a refusal."""

    name: bytes  # lower-case: header names match in any case
    value: bytes
    refusal: bytes  # the 403 body

    @classmethod
    def of(cls, restriction: Restriction) -> HeaderCheck:
        message = f"This API is restricted, expecting header '{restriction.header}'"
        return cls(restriction.header.lower().encode(), restriction.value.encode(), error_body(message))

    def allows(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """As Triton: the first header of the name decides, and its value must match exactly."""
        for name, value in headers:
            if name == self.name:
                return value == self.value
        return False


def infer_check(restrictions: Restrictions) -> HeaderCheck | None:
    """The check every infer request passes, None when inference is not restricted."""
    restriction = restrictions.get(access.INFERENCE)
    return HeaderCheck.of(restriction) if restriction is not None else None


class RestrictedApi:
    """An ASGI application answering Triton's 403 for a restricted path without its header, and
    handing every other request to ``app``."""

    def __init__(self, app: Any, restrictions: Restrictions) -> None:
        self.app = app
        self.checks = {group: HeaderCheck.of(restriction) for group, restriction in restrictions.by_group.items()}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for group in groups_of_path(scope["path"]):
                check = self.checks.get(group)
                if check is not None and not check.allows(scope["headers"]):
                    body = check.refusal
                    headers = [*REFUSAL_HEADERS, (b"content-length", str(len(body)).encode())]
                    await send({"type": "http.response.start", "status": 403, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


def restrict_api(app: Any, restrictions: Restrictions) -> Any:
    """``app`` behind ``RestrictedApi`` when some group is restricted; ``app`` itself otherwise."""
    return RestrictedApi(app, restrictions) if restrictions else app
