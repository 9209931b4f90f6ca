"""Ensembles (``platform: "ensemble"``): a graph of member models joined by tensor names.

Each step of ``ensemble_scheduling`` names a member model, an ``input_map`` (member input ->
ensemble tensor) and an ``output_map`` (member output -> ensemble tensor). A step runs as soon as
every tensor it reads exists; steps that are ready together run concurrently. Tensors pass from
step to step as the same numpy arrays (no copies). Members keep their own schedulers, so the
requests of many ensemble calls batch together in a member's dynamic batcher.

Validation follows Triton 2.51 and gives its texts: first the config alone
(``validate_ensemble_config``: steps, data flow, unused tensors), then against the loaded members
(``validate_ensemble_members``: availability, versions, max_batch_size, tensor names, data types
and shapes). An ensemble with a decoupled member is decoupled itself: each response of that
member flows on through the steps after it, and the ensemble streams a response for each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from tritonlite.core.errors import TritonError, invalid_arg
from tritonlite.core.streaming import StreamItem
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.base import TaskScheduler
from tritonlite.statistics.model_stats import ModelStats

ENSEMBLE_PLATFORM = "ensemble"


def is_ensemble(config: mc.ModelConfig) -> bool:
    return config.platform == ENSEMBLE_PLATFORM


def member_names(config: mc.ModelConfig) -> list[str]:
    """The models an ensemble runs, in step order, each once."""
    names: list[str] = []
    for step in config.ensemble_scheduling.step:
        if step.model_name and step.model_name not in names:
            names.append(step.model_name)
    return names


# --- validation of the config alone ------------------------------------------------------------------


class _Node:
    __slots__ = ("ready", "is_output", "prev", "next")

    def __init__(self, is_output: bool) -> None:
        self.ready = False
        self.is_output = is_output
        self.prev: list[_Node] = []
        self.next: list[_Node] = []


def validate_ensemble_config(config: mc.ModelConfig) -> None:
    """Triton's checks of an ensemble's own config (ValidateEnsembleSchedulingConfig)."""
    name = config.name
    if config.HasField("ensemble_scheduling") and not is_ensemble(config):
        raise invalid_arg(
            f"ensemble scheduling cannot be set for model '{name}' whose platform is not {ENSEMBLE_PLATFORM}"
        )
    if not is_ensemble(config):
        return
    if len(config.instance_group):
        raise invalid_arg(f"instance group should not be specified for ensemble '{name}'")
    if config.HasField("optimization"):
        raise invalid_arg(f"optimization should not be specified for ensemble '{name}'")
    if len(config.model_warmup):
        raise invalid_arg(f"model_warmup can not be specified for ensemble '{name}'")
    steps = config.ensemble_scheduling.step
    if not len(steps):
        raise invalid_arg(f"must specify 'step' for ensemble '{name}'")
    tensors: dict[str, _Node] = {}
    for index, step in enumerate(steps):
        if not step.model_name:
            raise invalid_arg(f"must specify 'model_name' in step {index} of ensemble '{name}'")
        if not len(step.input_map):
            raise invalid_arg(f"must specify 'input_map' in step {index} of ensemble '{name}'")
        if not len(step.output_map):
            raise invalid_arg(f"must specify 'output_map' in step {index} of ensemble '{name}'")
        produced = []
        for tensor in step.output_map.values():
            node = tensors.get(tensor)
            if node is not None:
                if node.is_output:
                    raise invalid_arg(
                        f"ensemble tensor '{tensor}' can appear in an output map only once for ensemble "
                        f"'{name}' step {index}"
                    )
                node.is_output = True
            else:
                node = tensors[tensor] = _Node(True)
            produced.append(node)
        for tensor in step.input_map.values():
            node = tensors.get(tensor)
            if node is None:
                node = tensors[tensor] = _Node(False)
            for output in produced:
                output.prev.append(node)
                node.next.append(output)
    ready = []
    for tensor in config.input:
        node = tensors.get(tensor.name)
        if node is None:
            raise invalid_arg(f"ensemble input '{tensor.name}' for ensemble {name}' is not used")
        node.ready = True
        ready.append(node)
    while ready:
        node = ready.pop(0)
        for following in node.next:
            if not following.ready and all(p.ready for p in following.prev):
                following.ready = True
                ready.append(following)
    outputs = set()
    for tensor in config.output:
        node = tensors.get(tensor.name)
        if node is None:
            raise invalid_arg(f"ensemble output '{tensor.name}' for ensemble {name}' is not used")
        if not node.ready:
            raise invalid_arg(f"output '{tensor.name}' for ensemble '{name}' is not written")
        outputs.add(tensor.name)
    # Triton walks its hash map here; for small graphs that is the reverse of insertion order
    for tensor, node in reversed(list(tensors.items())):
        if tensor in outputs:
            continue
        if not node.ready or not node.next:
            raise invalid_arg(f"ensemble tensor '{tensor}' is unused in ensemble '{name}'")


# --- validation against the members -------------------------------------------------------------------


class _Tensor:
    """An ensemble tensor's data type and shape, and the model they were inferred from."""

    __slots__ = ("model", "data_type", "dims", "full_dims", "decoupled", "label", "visited", "prev", "next", "sibling")

    def __init__(self, model: str, batching: bool = False, data_type: int = 0, dims=()) -> None:
        self.model = model
        self.data_type = data_type
        self.dims = [int(d) for d in dims]
        self.full_dims = ([-1] if batching else []) + self.dims
        self.decoupled = False
        self.label = 0
        self.visited = False
        self.prev: list[_Tensor] = []
        self.next: list[_Tensor] = []
        self.sibling: _Tensor | None = None


def _dims_match(a: list[int], b: list[int]) -> bool:
    return len(a) == len(b) and all(x == y or x == -1 or y == -1 for x, y in zip(a, b, strict=True))


def _dims_text(dims: list[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def _consistent(lhs: _Tensor, rhs: _Tensor, prefix: str) -> None:
    if lhs.data_type != rhs.data_type:
        raise invalid_arg(
            f"{prefix}inconsistent data type: {mc.DataType.Name(lhs.data_type)} is inferred from model {lhs.model} "
            f"while {mc.DataType.Name(rhs.data_type)} is inferred from model {rhs.model}"
        )
    if not _dims_match(lhs.dims, rhs.dims) and not _dims_match(lhs.full_dims, rhs.full_dims):
        raise invalid_arg(
            f"{prefix}inconsistent shape: {_dims_text(lhs.full_dims)} is inferred from model {lhs.model} while "
            f"{_dims_text(rhs.full_dims)} is inferred from model {rhs.model}"
        )


@dataclass
class Member:
    """What validation needs of a loaded member: its config and which versions are ready."""

    config: mc.ModelConfig
    versions: list[int]


def validate_ensemble_members(config: mc.ModelConfig, members: dict[str, Member | None]) -> bool:
    """Triton's checks of an ensemble against its loaded members; returns whether it is decoupled.

    ``members`` maps each member name to its loaded state (None: not available).
    """
    name = config.name
    missing = [m for m in member_names(config) if members.get(m) is None]
    if missing:
        raise invalid_arg(f"ensemble {name} contains models that are not available or ambiguous: {', '.join(missing)}")
    for step in config.ensemble_scheduling.step:
        member = members[step.model_name]
        if step.model_version > 0 and step.model_version not in member.versions:
            raise invalid_arg(
                f"ensemble '{name}' depends on '{step.model_name}' whose required version {step.model_version} "
                "is not loaded."
            )
    batching = config.max_batch_size > 0
    tensors: dict[str, _Tensor] = {}
    for tensor in config.input:
        dims = tensor.reshape.shape if tensor.HasField("reshape") else tensor.dims
        tensors[tensor.name] = _Tensor(name, batching, tensor.data_type, dims)
    sink = _Tensor(name)
    for tensor in config.output:
        dims = tensor.reshape.shape if tensor.HasField("reshape") else tensor.dims
        node = tensors.setdefault(tensor.name, _Tensor(name, batching, tensor.data_type, dims))
        sink.prev.append(node)
        node.next.append(sink)
    for step in config.ensemble_scheduling.step:
        member = members[step.model_name].config
        if member.max_batch_size != 0 and member.max_batch_size < config.max_batch_size:
            raise invalid_arg(
                f"ensemble {name} allows maximum batch size {config.max_batch_size}, but it contains model "
                f"{step.model_name} which only allows maximum batch size to be {member.max_batch_size}"
            )
        _validate_mapping(name, step, member, tensors)
    label = 0
    current = []
    for tensor in config.input:
        node = tensors[tensor.name]
        node.visited = True
        current.append(node)
    while current:
        node = current.pop(0)
        for following in node.next:
            if following.visited or not all(p.visited for p in following.prev):
                continue
            previous = following.prev[0].label if following.prev else 0
            if any(p.label != previous for p in following.prev):
                raise invalid_arg(
                    f"in ensemble {name}, step of model '{following.model}' receives inputs originated from "
                    "different decoupled models"
                )
            if following.sibling is not None:
                if following.sibling.visited:
                    following.label = following.sibling.label
                else:
                    if following.decoupled:
                        label += 1
                    following.label = label if following.decoupled else previous
                    following.sibling.label = following.label
                    following.sibling.visited = True
            else:
                if following.decoupled:
                    label += 1
                following.label = label if following.decoupled else previous
            following.visited = True
            current.append(following)
    return label != 0


def _validate_mapping(ensemble: str, step, member: mc.ModelConfig, tensors: dict[str, _Tensor]) -> None:
    batching = member.max_batch_size > 0
    input_names = {t.name for t in member.input}
    for model_input, tensor in step.input_map.items():
        if model_input not in input_names:
            raise invalid_arg(
                f"in ensemble {ensemble}, ensemble tensor {tensor} is mapping to non-existing input {model_input} "
                f"in model {step.model_name}"
            )
    for model_input in member.input:
        tensor = step.input_map.get(model_input.name)
        if tensor is None:
            if model_input.optional:
                continue
            raise invalid_arg(
                f"in ensemble {ensemble}, input {model_input.name} in model {member.name} is not mapped to any "
                "ensemble tensors"
            )
        node = _Tensor(step.model_name, batching, model_input.data_type, model_input.dims)
        if tensor in tensors:
            _consistent(tensors[tensor], node, f"in ensemble {ensemble}, ensemble tensor {tensor}: ")
        else:
            tensors[tensor] = node
    output_names = {t.name for t in member.output}
    for model_output, tensor in step.output_map.items():
        if model_output not in output_names:
            raise invalid_arg(
                f"in ensemble {ensemble}, ensemble tensor {tensor} is mapped from non-existing output "
                f"{model_output} in model {step.model_name}"
            )
    sibling = _Tensor(step.model_name)
    by_name = {t.name: t for t in member.output}
    for model_output, tensor in step.output_map.items():
        spec = by_name[model_output]
        node = _Tensor(step.model_name, batching, spec.data_type, spec.dims)
        if tensor in tensors:
            _consistent(tensors[tensor], node, f"in ensemble {ensemble}, ensemble tensor {tensor}: ")
        else:
            tensors[tensor] = node
        tensors[tensor].sibling = sibling
    decoupled = member.model_transaction_policy.decoupled
    for tensor in step.output_map.values():
        node = tensors[tensor]
        node.decoupled = decoupled
        for source in step.input_map.values():
            previous = tensors[source]
            node.prev.append(previous)
            previous.next.append(node)


# --- the scheduler -----------------------------------------------------------------------------------


@dataclass
class _Step:
    model_name: str
    version: str  # "" for the latest
    inputs: tuple[tuple[str, str], ...]  # (member input, ensemble tensor)
    outputs: dict[str, str]  # member output -> ensemble tensor
    requested: tuple[str, ...]


class EnsembleScheduler(TaskScheduler):
    """Runs one ensemble request through the member models.

    ``lookup(name, version)`` returns the ready member version (or raises Triton's error); it is
    asked at every step, so a member reloaded in between serves the next request.
    """

    def __init__(
        self,
        config: mc.ModelConfig,
        version: str,
        lookup: Callable[[str, str], object],
        stats: ModelStats | None = None,
    ) -> None:
        self.name = config.name
        self.version = version
        self.lookup = lookup
        self.stats = stats if stats is not None else ModelStats()
        self.batched = config.max_batch_size > 0
        self.steps = [
            _Step(
                step.model_name,
                str(step.model_version) if step.model_version > 0 else "",
                tuple(step.input_map.items()),
                dict(step.output_map),
                tuple(step.output_map.keys()),
            )
            for step in config.ensemble_scheduling.step
        ]
        self.output_names = [t.name for t in config.output]

    # --- one response -------------------------------------------------------------------------------

    async def run(self, request: InferRequest) -> InferResponse | TritonError:
        started = time.monotonic_ns()
        self.stats.record_queue(started - request.arrival_ns)
        env: dict[str, InferTensor] = {t.name: t for t in request.inputs}
        launched = [False] * len(self.steps)
        running: dict[asyncio.Task, _Step] = {}
        try:
            while True:
                ready = []
                for index, step in enumerate(self.steps):
                    if not launched[index] and all(tensor in env for _, tensor in step.inputs):
                        launched[index] = True
                        ready.append(step)
                if len(ready) == 1 and not running:  # a chain: no task needed
                    step = ready[0]
                    self._store(step, await self._run(step, request, env), env)
                    continue
                for step in ready:
                    running[asyncio.ensure_future(self._run(step, request, env))] = step
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    step = running.pop(task)
                    self._store(step, task.result(), env)
        except TritonError as exc:
            for task in running:
                task.cancel()
            return TritonError(exc.kind, f"in ensemble '{self.name}', {exc.message}")
        except asyncio.CancelledError:  # the client withdrew the request: so are its steps in flight
            for task in running:
                task.cancel()
            raise
        self._record(request, started)
        return self._response(request, env)

    async def _run(self, step: _Step, request: InferRequest, env: dict[str, InferTensor]) -> InferResponse:
        member = self.lookup(step.model_name, step.version)
        return await member.infer(self._member_request(step, request, env))

    def _member_request(self, step: _Step, request: InferRequest, env: dict[str, InferTensor]) -> InferRequest:
        inputs = []
        for name, tensor in step.inputs:
            source = env[tensor]
            inputs.append(InferTensor(name, source.datatype, source.shape, source.data))
        sub = InferRequest(
            step.model_name,
            step.version,
            request.id,
            inputs,
            [RequestedOutput(name) for name in step.requested],
            request.parameters,
        )
        sub.correlation_id = request.correlation_id
        sub.flags = request.flags
        sub.priority = request.priority
        sub.timeout_us = request.timeout_us
        sub.trace = None
        return sub

    def _store(self, step: _Step, response: InferResponse, env: dict[str, InferTensor]) -> None:
        for tensor in response.outputs:
            target = step.outputs.get(tensor.name)
            if target is not None:
                env[target] = InferTensor(target, tensor.datatype, tensor.shape, tensor.data)

    def _record(self, request: InferRequest, started: int) -> None:
        rows = 1
        if self.batched and request.inputs and request.inputs[0].shape:
            rows = request.inputs[0].shape[0]
        self.stats.record_execution(rows, 1, 0, time.monotonic_ns() - started, 0)

    def _response(self, request: InferRequest, env: dict[str, InferTensor]) -> InferResponse:
        names = [o.name for o in request.outputs] if request.outputs else self.output_names
        outputs = [env[name] for name in names if name in env]
        parameters = {
            "sequence_id": request.correlation_id,
            "sequence_start": bool(request.flags & 1),
            "sequence_end": bool(request.flags & 2),
        }
        return InferResponse(self.name, self.version, request.id, outputs, parameters)

    def _complete(self, request: InferRequest, env: dict[str, InferTensor]) -> bool:
        names = [o.name for o in request.outputs] if request.outputs else self.output_names
        return all(name in env for name in names)

    # --- a stream of responses (an ensemble with a decoupled member) -----------------------------------

    async def responses(self, request: InferRequest) -> AsyncIterator[StreamItem]:
        """Each response of a decoupled member carries its flow on through the following steps."""
        started = time.monotonic_ns()
        self.stats.record_queue(started - request.arrival_ns)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        tasks: set[asyncio.Task] = set()
        pending = 0
        emitted: list[dict] = []

        def launch(env: dict[str, InferTensor], launched: list[bool]) -> None:
            nonlocal pending
            for index, step in enumerate(self.steps):
                if not launched[index] and all(tensor in env for _, tensor in step.inputs):
                    launched[index] = True
                    pending += 1
                    task = loop.create_task(self._run_flow(step, request, env, launched, events))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

        launch({t.name: t for t in request.inputs}, [False] * len(self.steps))
        held: InferResponse | None = None
        try:
            while pending:
                if held is not None and events.empty():
                    yield held, False
                    held = None
                event = await events.get()
                kind = event[0]
                if kind == "done":
                    pending -= 1
                elif kind == "error":
                    error = event[1]
                    yield TritonError(error.kind, f"in ensemble '{self.name}', {error.message}"), True
                    return
                else:
                    env, launched = event[1], event[2]
                    launch(env, launched)
                    if self._complete(request, env) and not any(e is env for e in emitted):
                        emitted.append(env)
                        if held is not None:
                            yield held, False
                        held = self._response(request, env)
        finally:
            for task in list(tasks):
                task.cancel()
        self._record(request, started)
        yield held, True

    async def _run_flow(
        self,
        step: _Step,
        request: InferRequest,
        env: dict[str, InferTensor],
        launched: list[bool],
        events: asyncio.Queue,
    ) -> None:
        try:
            member = self.lookup(step.model_name, step.version)
            sub = self._member_request(step, request, env)
            if not member.decoupled:
                self._store(step, await member.infer(sub), env)
                events.put_nowait(("env", env, launched))
                return
            async for response, final in member.infer_stream(sub):
                if isinstance(response, TritonError):
                    events.put_nowait(("error", response))
                    return
                if response is not None:
                    fork = dict(env)
                    self._store(step, response, fork)
                    events.put_nowait(("env", fork, list(launched)))
                if final:
                    return
        except TritonError as exc:
            events.put_nowait(("error", exc))
        finally:
            events.put_nowait(("done",))

    async def stop(self) -> None:
        return None
