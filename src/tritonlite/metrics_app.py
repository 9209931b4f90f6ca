"""The metrics endpoint (Prometheus text format on /metrics)."""

from __future__ import annotations

from prometheus_client import make_asgi_app


def build_metrics_app():
    app = make_asgi_app()

    async def router(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    return router
