"""The status page: ``GET /`` shows the server's models live; ``GET /status.json`` is what it polls.

The page is one HTML file in the package (no build step, no external assets). Its script fetches
the snapshot every second and derives throughput and latency from the change in the counters
between two snapshots, so the server keeps no history for it.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response

from tritonlite import TRITON_COMPATIBLE_VERSION, __version__
from tritonlite.engine import Engine

STATUS_PATH = "/status.json"


def status_snapshot(engine: Engine) -> dict[str, Any]:
    """Every model of the repository with its state, and for ready versions their counters."""
    ready = {(name, model.version_str): model for name, model in engine.ready_versions()}
    models: dict[str, dict[str, Any]] = {}
    for row in engine.repository_index():
        model = models.setdefault(row["name"], {"name": row["name"], "versions": []})
        if "version" not in row:  # a model that never got as far as a version: its state is the model's
            model["versions"].append({"version": "", "state": row.get("state", ""), "reason": row.get("reason", "")})
            continue
        version: dict[str, Any] = {
            "version": row["version"], "state": row.get("state", ""), "reason": row.get("reason", "")
        }  # fmt: skip
        loaded = ready.get((row["name"], row["version"]))
        if loaded is not None:
            stats = loaded.stats
            version.update(
                platform=loaded.config_json.get("platform") or loaded.config_json.get("backend", ""),
                max_batch_size=loaded.max_batch_size,
                decoupled=loaded.decoupled,
                instance_groups=[
                    {"name": g.get("name", ""), "kind": g.get("kind", ""), "count": g.get("count", 1)}
                    for g in loaded.config_json.get("instance_group", [])
                ],
                pending=stats.pending,
                success=stats.success.count,
                failure=stats.fail.count,
                request_ns=stats.success.ns,
                queue_ns=stats.queue.ns,
                compute_ns=stats.compute_input.ns + stats.compute_infer.ns + stats.compute_output.ns,
                inference_count=stats.inference_count,
                execution_count=stats.execution_count,
            )
        model["versions"].append(version)
    return {
        "server": {"version": __version__, "triton_version": TRITON_COMPATIBLE_VERSION, "ready": engine.is_ready()},
        "time_ms": int(time.time() * 1000),
        "models": list(models.values()),
    }


def add_status_page(api: FastAPI, engine: Engine) -> None:
    """Serve the page at ``/`` and its snapshot at ``/status.json``."""
    page = resources.files("tritonlite.frontends.http").joinpath("static/status.html").read_bytes()

    @api.get("/", include_in_schema=False)
    async def _page() -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @api.get(STATUS_PATH, include_in_schema=False)
    async def _snapshot() -> Response:
        return Response(orjson.dumps(status_snapshot(engine)), media_type="application/json")
