"""``Server``: a tritonlite server inside the calling process, without sockets, driven as
``tritonserver.Server`` is."""

from __future__ import annotations

import enum
import time
from typing import Any

from tritonlite.inprocess.errors import InvalidArgumentError, UnavailableError
from tritonlite.inprocess.model import Model
from tritonlite.inprocess.options import Options
from tritonlite.inprocess.runtime import Runtime

# states in which a version no longer serves (Triton's list; None: known to the repository only)
_UNLOADED_STATES = (None, "UNAVAILABLE", "UNLOADING")


class MetricFormat(enum.IntEnum):
    """TRITONSERVER_MetricFormat."""

    PROMETHEUS = 0


class ModelDictionary(dict):
    """``Server.models()``: ``(name, version)`` to ``Model``; a bare name gives the model at version -1."""

    def __init__(self, runtime: Runtime, models: list[Model]) -> None:
        super().__init__()
        for model in models:
            self[(model.name, model.version)] = model
        self._runtime = runtime
        self._names = {name for name, _ in self}

    def __getitem__(self, key: Any) -> Model:
        if isinstance(key, tuple):
            try:
                return dict.__getitem__(self, key)
            except KeyError:
                raise KeyError(f"Unknown Model: {key}") from None
        if key in self._names:
            return Model(self._runtime, key)
        raise KeyError(f"Unknown Model: {key}")


class Server:
    """An in-process server: ``Server(model_repository=PATH).start(wait_until_ready=True)``.

    The engine runs on an event loop in a background thread; every method may be called from any
    thread, including one running its own event loop. ``stop()`` unloads the models and ends that
    thread; a server left running stops once neither it nor any of its Model objects is referenced,
    or when the interpreter exits.
    """

    def __init__(self, options: Options | None = None, **kwargs: Any) -> None:
        self.options = options if options is not None else Options(**kwargs)
        self._runtime: Runtime | None = None

    def start(
        self, wait_until_ready: bool = False, polling_interval: float = 0.1, timeout: float | None = None
    ) -> Server:
        """Load the repository's models (as the model control mode says) and start serving."""
        if self._runtime is not None:
            raise InvalidArgumentError("Server already started")
        self._runtime = Runtime.start(self.options.engine_options(), self.options.exit_on_error)
        if wait_until_ready:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self.ready():
                # tritonlite loads before start() returns: without a poller nothing changes later
                if self.options.model_control_mode != 1 or (deadline is not None and time.monotonic() >= deadline):
                    raise UnavailableError("Timeout before ready")
                time.sleep(polling_interval)
        return self

    def stop(self) -> None:
        """Stop serving and unload every model; the server can be started again."""
        runtime = self._started()
        self._runtime = None
        runtime.stop()

    def __enter__(self) -> Server:
        return self if self._runtime is not None else self.start(wait_until_ready=True)

    def __exit__(self, *exc_info: object) -> None:
        if self._runtime is not None:
            self.stop()

    def _started(self) -> Runtime:
        if self._runtime is None:
            raise InvalidArgumentError("Server not started")
        return self._runtime

    # --- health and metadata ---------------------------------------------------------------------

    def live(self) -> bool:
        runtime = self._started()
        return runtime.call(runtime.engine.is_live)

    def ready(self) -> bool:
        runtime = self._started()
        return runtime.call(runtime.engine.is_ready)

    def metadata(self) -> dict[str, Any]:
        runtime = self._started()
        return runtime.call(runtime.engine.server_metadata)

    def metrics(self, metric_format: MetricFormat = MetricFormat.PROMETHEUS) -> str:
        """The metrics endpoint's exposition (Prometheus text): the model families and CPU metrics."""
        from tritonlite.metrics.families import render  # noqa: PLC0415 - only for those who ask

        runtime = self._started()
        if metric_format != MetricFormat.PROMETHEUS:
            raise InvalidArgumentError(f"unsupported metric format {metric_format!r}")
        engine = runtime.engine
        return runtime.call(lambda: render(engine, config=engine.options.metrics_config))

    # --- models ----------------------------------------------------------------------------------

    def model(self, model_name: str, model_version: int = -1) -> Model:
        """A model to infer with; it is looked up when used."""
        return Model(self._started(), model_name, model_version)

    def models(self, exclude_not_ready: bool = False) -> ModelDictionary:
        """The repository index: every known model version with its state and reason."""
        runtime = self._started()
        rows = runtime.call(runtime.engine.repository_index, exclude_not_ready)
        models = [
            Model(runtime, row["name"], int(row.get("version", -1)), row.get("state"), row.get("reason"))
            for row in rows
        ]
        return ModelDictionary(runtime, models)

    def load(self, model_name: str, parameters: dict[str, str | int | bool | bytes] | None = None) -> Model:
        """Load (or reload) a model, explicit mode only; ``parameters`` as the repository load's
        (``config`` JSON, ``file:<path>`` bytes)."""
        runtime = self._started()
        runtime.run(runtime.engine.load_model(model_name, dict(parameters) if parameters else None))
        return self.model(model_name)

    def unload(
        self,
        model: str | Model,
        unload_dependents: bool = False,
        wait_until_unloaded: bool = False,
        polling_interval: float = 0.1,
        timeout: float | None = None,
    ) -> None:
        """Unload a model (explicit mode only); its requests in flight finish first."""
        runtime = self._started()
        name = model.name if isinstance(model, Model) else model
        runtime.run(runtime.engine.unload_model(name, unload_dependents))
        if wait_until_unloaded:
            deadline = None if timeout is None else time.monotonic() + timeout
            while any(key[0] == name and m.state not in _UNLOADED_STATES for key, m in self.models().items()) and (
                deadline is None or time.monotonic() < deadline
            ):
                time.sleep(polling_interval)

    def poll_model_repository(self) -> None:
        """Apply the repository's changes now (POLL mode)."""
        runtime = self._started()
        if self.options.model_control_mode != 1:
            raise UnavailableError("poll is only allowed in POLL model control mode")

        async def poll() -> None:
            if await runtime.engine.models.poll():
                runtime.engine.freeze_heap()

        runtime.run(poll())
