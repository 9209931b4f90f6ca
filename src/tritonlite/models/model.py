"""One version of one model: its config, its inputs and outputs, its scheduler and its state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritonlite.core.classification import classify
from tritonlite.core.config_json import config_to_json
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.response_cache import request_key
from tritonlite.core.streaming import StreamItem
from tritonlite.core.types import InferRequest, InferResponse
from tritonlite.core.validation import TensorSpec, tensor_spec, validate_request
from tritonlite.models.submission import Submission
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.base import Scheduler
from tritonlite.statistics.model_stats import ModelStats

if TYPE_CHECKING:
    from tritonlite.scheduling.instance_runner import InstanceRunner

READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
LOADING = "LOADING"
UNLOADING = "UNLOADING"

VALID_KEYS_LIMIT = 512  # validation keys remembered per version; starts over when full


class ModelVersion:
    """A loaded (or failed) version of a model."""

    def __init__(self, name: str, version: int, config: mc.ModelConfig | None, model_path: Path) -> None:
        self.name = name
        self.version = version
        self.version_str = str(version)
        self.model_path = model_path
        self.state = LOADING
        self.reason = ""
        self.scheduler: Scheduler | None = None
        self.config = config
        self.config_json: dict = config_to_json(config) if config is not None else {}
        self.inputs: dict[str, TensorSpec] = {}
        self.outputs: dict[str, TensorSpec] = {}
        self.labels: dict[str, list[str]] = {}
        self.max_batch_size = 0
        self.required_inputs = 0
        self.load_seconds = 0.0  # from the start of its load to ready (nv_model_load_duration_secs)
        self.stats = ModelStats()
        self.cache = None  # core.response_cache.ResponseCache when response_cache is enabled
        self.limiter_keys: list[str] = []
        self.runners: list[InstanceRunner] = []  # its instances (an ensemble has none)
        self._valid_keys: set = set()  # validation keys of requests that passed validation
        self.decoupled = False  # model_transaction_policy { decoupled: true }: zero or more responses
        self.ensemble = False  # platform "ensemble": the scheduler runs member models
        if config is not None:
            self.decoupled = config.model_transaction_policy.decoupled
            self.ensemble = config.platform == "ensemble"
            self.inputs = {t.name: tensor_spec(t) for t in config.input}
            self.outputs = {t.name: tensor_spec(t) for t in config.output}
            self.max_batch_size = config.max_batch_size
            self.required_inputs = sum(1 for s in self.inputs.values() if not s.optional)
            for out in config.output:
                if out.label_filename:
                    self.labels[out.name] = _read_labels(model_path / out.label_filename)

    @property
    def ready(self) -> bool:
        return self.state == READY

    @property
    def healthy(self) -> bool:
        """Whether an instance can run its requests now (not all of them hung or dead, being replaced)."""
        return not self.runners or any(runner.healthy for runner in self.runners)

    def instances_ready(self) -> bool:
        """Whether every instance's model says it is ready (a python model's ``is_ready()``)."""
        for runner in self.runners:
            instance = runner.instance
            if instance is not None and not instance.is_ready():
                return False
        return True

    # -- one request, one response -------------------------------------------------------------

    def submit(self, request: InferRequest) -> Submission:
        """Validate ``request`` and hand it to the scheduler; the submission gives the response.

        Raises TritonError for a request refused before it is queued (validation, a full queue).
        Requests that carry the ``validation_key`` of one that passed are not validated again.
        """
        self._validate(request)
        return self._admit(request)

    def _validate(self, request: InferRequest) -> None:
        """Triton's input checks, once per ``validation_key`` (every time for a request without one)."""
        key = request.validation_key
        if key is None or key not in self._valid_keys:
            validate_request(request, self.name, self.inputs, self.outputs, self.required_inputs, self.max_batch_size)
            if key is not None:
                if len(self._valid_keys) >= VALID_KEYS_LIMIT:
                    self._valid_keys.clear()
                self._valid_keys.add(key)

    def _admit(self, request: InferRequest) -> Submission:
        """Hand a validated request to the response cache or the scheduler."""
        stats = self.stats
        start = request.arrival_ns = time.monotonic_ns()
        trace = request.trace
        if trace is not None:
            trace.model(self.name, self.version_str, request.id)
            trace.stamp("REQUEST_START", start)
            trace.stamp("QUEUE_START", start)
            for tensor in request.inputs:
                trace.tensor("TENSOR_QUEUE_INPUT", tensor.name, tensor.datatype, tensor.shape, tensor.data)
        cache = self.cache
        cache_key = None
        lookup_ns = 0
        if cache is not None:
            cache_key = request_key(self.name, self.version_str, request)
            cached = cache.lookup(cache_key, request)
            lookup_ns = time.monotonic_ns() - start
            if cached is not None:
                stats.record_cache_hit(lookup_ns)
                stats.record_success(lookup_ns)
                return Submission.answered(request, cached)
        stats.pending += 1
        try:
            future = self.scheduler.enqueue(request)
        except TritonError as exc:  # refused by the scheduler: full queue, stopping
            stats.pending -= 1
            self._refused(request, exc)
            raise
        return Submission(request, future, self._outcome, cache_key, lookup_ns)

    async def infer(self, request: InferRequest) -> InferResponse:
        return await self.submit(request)

    def _outcome(self, submission: Submission) -> InferResponse | BaseException:
        """What the scheduler's future means for the client, with statistics recorded (once):
        the response, or the exception the submission raises."""
        request, future = submission.request, submission.future
        stats = self.stats
        stats.pending -= 1
        if future.cancelled():  # withdrawn: a model still running it sees is_cancelled()
            request.cancel()
            stats.record_failure(time.monotonic_ns() - request.arrival_ns, "CANCELED")
            return asyncio.CancelledError()
        error = future.exception()
        if error is not None:
            if isinstance(error, TritonError):
                self._refused(request, error)
            return error
        try:
            return self._finish(request, future.result(), submission.cache_key, submission.lookup_ns)
        except TritonError as exc:
            return exc

    def _refused(self, request: InferRequest, exc: TritonError) -> None:
        reason = "REJECTED" if exc.kind == ErrorKind.UNAVAILABLE else "OTHER"
        self.stats.record_failure(time.monotonic_ns() - request.arrival_ns, reason)

    def _finish(
        self, request: InferRequest, result: InferResponse | TritonError, cache_key: Any, lookup_ns: int
    ) -> InferResponse:
        """The scheduler's result made the answer: classification, the response cache, statistics."""
        stats = self.stats
        start = request.arrival_ns
        if isinstance(result, TritonError):
            stats.record_failure(time.monotonic_ns() - start, "BACKEND")
            raise result
        if request.outputs:
            self._classify(request, result)
        if cache_key is not None:
            insert_start = time.monotonic_ns()
            self.cache.insert(cache_key, result)
            stats.record_cache_miss(lookup_ns + (time.monotonic_ns() - insert_start))
        end = time.monotonic_ns()
        stats.record_success(end - start)
        trace = request.trace
        if trace is not None:
            for tensor in result.outputs:
                trace.tensor("TENSOR_BACKEND_OUTPUT", tensor.name, tensor.datatype, tensor.shape, tensor.data)
            trace.stamp("REQUEST_END", end)
        return result

    # -- one request, zero or more responses ---------------------------------------------------

    async def infer_stream(self, request: InferRequest) -> AsyncIterator[StreamItem]:
        """The request's responses as ``(response, final)`` items, for any model.

        Errors raised before the first item mean the request was refused (validation, sequence
        rules); an error of the execution comes as a final ``TritonError`` item. A model that is
        not decoupled gives exactly one final item.
        """
        self._validate(request)
        self.scheduler.check(request)
        if not self.decoupled:
            try:
                response = await self._admit(request)
            except TritonError as exc:
                yield exc, True
                return
            yield response, True
            return
        stats = self.stats
        start = request.arrival_ns = time.monotonic_ns()
        stats.pending += 1
        failed = False
        first = True
        final = False
        try:
            async for response, final in self.scheduler.responses(request):
                if isinstance(response, TritonError):
                    failed = True
                    stats.record_failure(time.monotonic_ns() - start, "BACKEND")
                elif response is not None:
                    if first:
                        first = False
                        stats.record_first_response(time.monotonic_ns() - start)
                    if request.outputs:
                        self._classify(request, response)
                yield response, final
                if final:
                    break
        except TritonError as exc:  # refused by the scheduler
            failed = True
            self._refused(request, exc)
            raise
        finally:
            stats.pending -= 1
            if final and not failed:
                stats.record_success(time.monotonic_ns() - start)
            elif not failed:  # the reader went away (a closed stream): the request was withdrawn
                stats.record_failure(time.monotonic_ns() - start, "CANCELED")

    def _classify(self, request: InferRequest, response: InferResponse) -> None:
        for requested in request.outputs:
            if requested.class_count <= 0:
                continue
            for i, tensor in enumerate(response.outputs):
                if tensor.name == requested.name:
                    response.outputs[i] = classify(
                        tensor, requested.class_count, self.labels.get(tensor.name), self.max_batch_size > 0
                    )


def _read_labels(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
