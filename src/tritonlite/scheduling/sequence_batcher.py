"""Triton's sequence batcher: stateful models see each sequence's requests in order, on one slot.

Rules (Triton's, checked against Triton 2.51):
- a request names its sequence with ``sequence_id`` (an integer or a string; 0 and "" mean none)
  and flags the first and last request with ``sequence_start`` / ``sequence_end``; a request of a
  batching model must have batch size 1;
- each instance has sequence slots: ``max_batch_size`` of them (at least 1), or
  ``oldest.max_candidate_sequences``; a starting sequence takes a free slot (the lowest slot
  index first, spreading over instances), or waits in the backlog until a slot frees; a request
  of a sequence that is not known (never started, ended, or released as idle) is refused;
- a sequence keeps its slot until its END request is taken for execution, or until it has been
  idle for ``max_sequence_idle_microseconds`` (default 1 s); a backlogged sequence whose request
  ``timeout`` passes is refused with "timeout of the corresponding sequence has been expired";
- ``direct``: every execution takes the front request of each slot up to the highest slot that
  has one, in slot order; an empty slot below it gets a "null" request (a copy of another request
  with READY false and CORRID 0) whose result is dropped;
- ``oldest``: every execution takes the front request of up to ``max_batch_size`` slots, the
  oldest first (at most one request of a sequence at a time), waiting up to
  ``max_queue_delay_microseconds`` for a preferred batch size;
- control inputs (START, END, READY, CORRID) are added to each request as input tensors of shape
  [1] (or [1, 1] with batching) with the configured false/true values and data types;
- implicit state: each ``state`` input is added from the slot's state (reset to its initial
  state when a sequence starts: zeros, or ``initial_state/<data_file>``), and the model's state
  output becomes the next request's state input (it is not returned unless asked for).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tritonlite.core.datatypes import CONFIG_TO_DATATYPE, numpy_dtype
from tritonlite.core.errors import TritonError, internal, invalid_arg, unavailable
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput
from tritonlite.protocol import model_config_pb2 as mc
from tritonlite.scheduling.base import Scheduler
from tritonlite.scheduling.instance_runner import InstanceRunner
from tritonlite.statistics.model_stats import ModelStats
from tritonlite.tracing.tracer import stamp_compute

START_FLAG = 1
END_FLAG = 2

DEFAULT_IDLE_MICROSECONDS = 1_000_000
INITIAL_STATE_FOLDER = "initial_state"

_Kind = mc.ModelSequenceBatching.Control


def _kind_name(kind: int) -> str:
    return mc.ModelSequenceBatching.Control.Kind.Name(kind)


# --- configuration ---------------------------------------------------------------------------------


def _string_corrid_as_number(corrid: str, dtype: np.dtype) -> np.ndarray:
    """A string sequence id in a numeric CORRID control, as Triton 2.51 fills it: the id serialized as
    a BYTES element (4-byte little-endian length, then the UTF-8 bytes), its first itemsize bytes read
    as the number, zero-padded. Not a hash: "seq-abc" gives 0x2d71657300000007 in a UINT64 and 7 in a
    UINT32, the same for every request of the sequence (and for every id of that length and prefix)."""
    dtype = np.dtype(dtype)
    encoded = corrid.encode()
    serialized = len(encoded).to_bytes(4, "little") + encoded
    return np.frombuffer(serialized[: dtype.itemsize].ljust(dtype.itemsize, b"\0"), dtype=dtype).copy()


@dataclass
class BooleanControl:
    """START, END or READY: a tensor holding the false or the true value."""

    name: str
    datatype: str
    false_value: np.ndarray
    true_value: np.ndarray


@dataclass
class StateSpec:
    input_name: str
    output_name: str
    datatype: str
    dims: tuple[int, ...]
    initial: np.ndarray  # without the batch dimension


@dataclass
class SequenceSettings:
    """What the sequence batcher needs from the config, validated (Triton's load-time errors)."""

    model_name: str
    max_batch_size: int
    oldest: bool
    idle_seconds: float
    slots_per_instance: int
    start: BooleanControl | None = None
    end: BooleanControl | None = None
    ready: BooleanControl | None = None
    corrid_name: str = ""
    corrid_datatype: str = ""
    states: list[StateSpec] = field(default_factory=list)
    max_queue_delay: float = 0.0
    preferred: tuple[int, ...] = ()
    minimum_slot_utilization: float = 0.0

    @classmethod
    def from_config(cls, config: mc.ModelConfig, model_path: Path | None = None) -> SequenceSettings:
        batching = config.sequence_batching
        name = config.name
        mbs = config.max_batch_size
        oldest = batching.HasField("oldest")
        slots = max(1, mbs)
        if oldest and batching.oldest.max_candidate_sequences > 0:
            slots = batching.oldest.max_candidate_sequences
        idle = batching.max_sequence_idle_microseconds or DEFAULT_IDLE_MICROSECONDS
        settings = cls(name, mbs, oldest, idle / 1e6, slots)
        if oldest:
            settings.max_queue_delay = batching.oldest.max_queue_delay_microseconds / 1e6
            settings.preferred = tuple(sorted(p for p in batching.oldest.preferred_batch_size if p > 0))
        else:
            settings.max_queue_delay = batching.direct.max_queue_delay_microseconds / 1e6
            settings.minimum_slot_utilization = batching.direct.minimum_slot_utilization
        settings.start = _boolean_control(batching, name, _Kind.CONTROL_SEQUENCE_START)
        settings.end = _boolean_control(batching, name, _Kind.CONTROL_SEQUENCE_END)
        settings.ready = _boolean_control(batching, name, _Kind.CONTROL_SEQUENCE_READY)
        corrid = _typed_control(batching, name, _Kind.CONTROL_SEQUENCE_CORRID)
        if corrid is not None:
            settings.corrid_name, config_type = corrid
            allowed = (mc.TYPE_UINT64, mc.TYPE_INT64, mc.TYPE_UINT32, mc.TYPE_INT32, mc.TYPE_STRING)
            if config_type not in allowed:
                raise invalid_arg(
                    "unexpected control data type, expected TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32, "
                    f"or TYPE_STRING for CONTROL_SEQUENCE_CORRID for {name}"
                )
            settings.corrid_datatype = CONFIG_TO_DATATYPE[mc.DataType.Name(config_type)]
        seen: set[str] = set()
        for state in batching.state:
            settings.states.append(_state_spec(state, name, model_path, seen))
        return settings


def _controls_of(batching: mc.ModelSequenceBatching, model_name: str, kind: int) -> list:
    """The controls of one kind, after Triton's checks of every control tensor."""
    seen_tensors: set[str] = set()
    found = []
    for control_input in batching.control_input:
        if not control_input.name:
            raise invalid_arg(f"sequence batching control tensor must have a name for {model_name}")
        if control_input.name in seen_tensors:
            raise invalid_arg(
                f"sequence batching control tensor '{control_input.name}' is specified for multiple control "
                f"kinds for {model_name}"
            )
        seen_tensors.add(control_input.name)
        for control in control_input.control:
            if control.kind == kind:
                if found:
                    raise invalid_arg(
                        f"sequence batching specifies multiple {_kind_name(kind)} tensors for {model_name}"
                    )
                found.append((control_input.name, control))
    return found


def _boolean_control(batching: mc.ModelSequenceBatching, model_name: str, kind: int) -> BooleanControl | None:
    found = _controls_of(batching, model_name, kind)
    if not found:
        return None
    name, control = found[0]
    kind_name = _kind_name(kind)
    specified = [
        label
        for label, values in (
            ("int32_false_true", control.int32_false_true),
            ("fp32_false_true", control.fp32_false_true),
            ("bool_false_true", control.bool_false_true),
        )
        if len(values)
    ]
    if len(specified) > 1:
        raise invalid_arg(
            f"sequence batching specifies both '{specified[0]}' and '{specified[1]}' for {kind_name} for {model_name}"
        )
    if not specified:
        raise invalid_arg(
            "sequence batching must specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' "
            f"for {kind_name} for {model_name}"
        )
    label = specified[0]
    values = getattr(control, label)
    if len(values) != 2:
        raise invalid_arg(
            f"sequence batching control '{label}' must have exactly 2 entries for {kind_name} for {model_name}"
        )
    datatype, dtype = {"int32_false_true": ("INT32", np.int32), "fp32_false_true": ("FP32", np.float32)}.get(
        label, ("BOOL", np.bool_)
    )
    return BooleanControl(name, datatype, np.array(values[0], dtype), np.array(values[1], dtype))


def _typed_control(batching: mc.ModelSequenceBatching, model_name: str, kind: int) -> tuple[str, int] | None:
    found = _controls_of(batching, model_name, kind)
    if not found:
        return None
    name, control = found[0]
    if len(control.int32_false_true) or len(control.fp32_false_true) or len(control.bool_false_true):
        raise invalid_arg(
            "sequence batching must not specify either 'int32_false_true' nor 'fp32_false_true' for "
            f"{_kind_name(kind)} for {model_name}"
        )
    return name, control.data_type


def _state_spec(state, model_name: str, model_path: Path | None, seen: set[str]) -> StateSpec:
    datatype = CONFIG_TO_DATATYPE.get(mc.DataType.Name(state.data_type), "")
    if not state.input_name or not state.output_name or not datatype:
        raise invalid_arg(
            f"sequence batching state of model '{model_name}' must specify 'input_name', 'output_name' and 'data_type'"
        )
    dims = tuple(int(d) for d in state.dims)
    if len(state.initial_state) > 1:
        raise invalid_arg(
            f"initial_state field for state input '{state.input_name}' must contain exactly one or zero element. "
            f"Found '{len(state.initial_state)}' elements."
        )
    if state.input_name in seen:
        raise invalid_arg(f"State input name '{state.input_name}' specified more than once.")
    seen.add(state.input_name)
    dtype = numpy_dtype(datatype)
    if not state.initial_state:
        shape = tuple(0 if d == -1 else d for d in dims)
        initial = np.full(shape, b"", dtype=object) if datatype == "BYTES" else np.zeros(shape, dtype)
        return StateSpec(state.input_name, state.output_name, datatype, dims, initial)
    init = state.initial_state[0]
    if init.data_type != state.data_type:
        raise invalid_arg(
            f"The data type used for 'initial_state' field of state '{state.input_name}' does not match the "
            "state data type."
        )
    if not init.name:
        raise invalid_arg(f"Field 'name' must be set when using initial_state for state input '{state.input_name}'.")
    if len(init.dims) != len(dims):
        raise invalid_arg(
            "Number of dimensions in 'initial_state' doesn't match the size of 'state' dimensions for state input "
            f"'{state.input_name}'. {len(init.dims)} != {len(dims)}"
        )
    shape = []
    for init_dim, state_dim in zip(init.dims, dims, strict=True):
        if init_dim == -1:
            raise invalid_arg(
                f"'initial_state' field for state input name '{state.input_name}' contains variable dimensions."
            )
        if state_dim != -1 and init_dim != state_dim:
            raise invalid_arg(
                f"'initial_state' dim for input name '{state.input_name}' doesn't match 'state' dim description. "
                f"{init_dim} != {state_dim}"
            )
        shape.append(int(init_dim))
    count = int(np.prod(shape)) if shape else 1
    which = init.WhichOneof("state_data")
    if which == "zero_data":
        initial = np.full(shape, b"", dtype=object) if datatype == "BYTES" else np.zeros(shape, dtype)
    elif which == "data_file":
        path = (model_path or Path(".")) / INITIAL_STATE_FOLDER / init.data_file
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise invalid_arg(f"failed to read initial state file '{path}': {exc.strerror}") from None
        if datatype == "BYTES":
            from tritonlite.core.datatypes import deserialize_bytes

            initial = np.array(deserialize_bytes(raw)[:count], dtype=object).reshape(shape)
        else:
            needed = count * dtype.itemsize
            if needed > len(raw):
                raise invalid_arg(
                    f"initial_state setting expects {needed} bytes, but the data provided from {init.data_file}"
                    f"only has {len(raw)} bytes."
                )
            initial = np.frombuffer(raw[:needed], dtype=dtype).reshape(shape).copy()
    else:
        raise invalid_arg(f"initial_state setting expects state'{state.input_name}' to have state_data set")
    return StateSpec(state.input_name, state.output_name, datatype, dims, initial)


# --- the scheduler -----------------------------------------------------------------------------------


class _Item:
    """A queued request of a sequence: its future resolves with the request's result."""

    __slots__ = ("request", "future", "enqueued_ns")

    def __init__(self, request: InferRequest, future: asyncio.Future) -> None:
        self.request = request
        self.future = future
        self.enqueued_ns = time.monotonic_ns()


class _Slot:
    """One sequence slot of one instance."""

    __slots__ = ("instance", "index", "queue", "corrid", "states")

    def __init__(self, instance: int, index: int) -> None:
        self.instance = instance
        self.index = index
        self.queue: collections.deque[_Item | None] = collections.deque()  # None: release the slot here
        self.corrid: int | str | None = None
        self.states: dict[str, np.ndarray] | None = None


class _Backlog:
    """A sequence waiting for a free slot."""

    __slots__ = ("corrid", "items", "expires")

    def __init__(self, corrid: int | str) -> None:
        self.corrid = corrid
        self.items: collections.deque[_Item] = collections.deque()
        self.expires = float("inf")


def _batch_size(request: InferRequest) -> int:
    for tensor in request.inputs:
        if tensor.shape:
            return tensor.shape[0]
    return 1


class SequenceBatcher(Scheduler):
    """Routes each sequence to a slot of an instance and feeds the instances batches of slots."""

    def __init__(
        self,
        runners: list[InstanceRunner],
        config: mc.ModelConfig,
        stats: ModelStats | None = None,
        model_path: Path | None = None,
    ) -> None:
        self.runners = runners
        self.settings = SequenceSettings.from_config(config, model_path)
        self.stats = stats if stats is not None else ModelStats()
        self.batched = config.max_batch_size > 0
        self.control_shape = [1, 1] if self.batched else [1]
        self.state_outputs = {s.output_name: s for s in self.settings.states}
        self.config_outputs = {o.name for o in config.output}
        self.slots = [
            [_Slot(instance, index) for index in range(self.settings.slots_per_instance)]
            for instance in range(len(runners))
        ]
        self._free: list[tuple[int, int]] = [
            (index, instance) for instance in range(len(runners)) for index in range(self.settings.slots_per_instance)
        ]
        heapq.heapify(self._free)
        self.sequences: dict[int | str, _Slot] = {}
        self.backlogs: dict[int | str, _Backlog] = {}
        self.backlog_queue: collections.deque[_Backlog] = collections.deque()
        self.last_seen: dict[int | str, float] = {}
        self._wake = [asyncio.Event() for _ in runners]
        self._reaper_wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # --- admission -------------------------------------------------------------------------------

    def check(self, request: InferRequest) -> None:
        """Triton's refusals, before anything is queued."""
        if self.batched and _batch_size(request) > 1:
            raise invalid_arg(
                f"inference request to model '{request.model_name}' must specify batch-size 1 due to requirements "
                "of sequence batcher"
            )
        corrid = request.correlation_id
        if corrid is None or corrid == 0 or corrid == "" or isinstance(corrid, bool):
            raise invalid_arg(
                f"inference request to model '{request.model_name}' must specify a non-zero or non-empty correlation ID"
            )
        if not request.flags & START_FLAG and corrid not in self.sequences and corrid not in self.backlogs:
            raise invalid_arg(
                f"inference request for sequence {corrid} to model '{request.model_name}' must specify the START "
                "flag on the first request of the sequence"
            )

    def enqueue(self, request: InferRequest) -> asyncio.Future[InferResponse | TritonError]:
        """Takes its place in its sequence at once: the next request of the sequence, checked right
        after this call, finds it (a stream's requests come in order, each before the next is read)."""
        self.check(request)
        if self._stopping and request.flags & START_FLAG:
            raise unavailable("Server is stopping, scheduler for model has stopped accepting new inference requests")
        if not self._tasks:
            self._start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        item = _Item(request, future)
        corrid = request.correlation_id
        end = bool(request.flags & END_FLAG)
        now = time.monotonic()
        self.last_seen[corrid] = now
        slot = self.sequences.get(corrid)
        backlog = self.backlogs.get(corrid)
        if slot is not None:
            slot.queue.append(item)
            if end:
                del self.sequences[corrid]
            self._wake[slot.instance].set()
        elif backlog is not None:
            backlog.items.append(item)
            self._set_expiry(backlog, request, now)
            if end:
                del self.backlogs[corrid]
        elif self._free:
            _, instance = index_instance = heapq.heappop(self._free)
            slot = self.slots[instance][index_instance[0]]
            slot.corrid = corrid
            slot.queue.append(item)
            if not end:
                self.sequences[corrid] = slot
            self._wake[instance].set()
        else:
            backlog = _Backlog(corrid)
            backlog.items.append(item)
            self._set_expiry(backlog, request, now)
            self.backlog_queue.append(backlog)
            if not end:
                self.backlogs[corrid] = backlog
        return future

    def _set_expiry(self, backlog: _Backlog, request: InferRequest, now: float) -> None:
        if request.timeout_us:
            backlog.expires = min(backlog.expires, now + request.timeout_us / 1e6)
            self._reaper_wake.set()

    # --- slots -----------------------------------------------------------------------------------

    def _release(self, slot: _Slot) -> None:
        """The slot's sequence ended or idled: give the slot to the oldest backlogged sequence."""
        slot.corrid = None
        while self.backlog_queue:
            backlog = self.backlog_queue.popleft()
            live = [item for item in backlog.items if not item.future.done()]
            if not live:
                if self.backlogs.get(backlog.corrid) is backlog:
                    del self.backlogs[backlog.corrid]
                continue
            last = live[-1].request
            if self.backlogs.get(backlog.corrid) is backlog:
                del self.backlogs[backlog.corrid]
            if not last.flags & END_FLAG:
                self.sequences[backlog.corrid] = slot
            slot.corrid = backlog.corrid
            slot.queue.extend(live)
            self._wake[slot.instance].set()
            return
        heapq.heappush(self._free, (slot.index, slot.instance))

    # --- background tasks --------------------------------------------------------------------------

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for instance in range(len(self.runners)):
            self._tasks.append(loop.create_task(self._run_instance(instance)))
        self._tasks.append(loop.create_task(self._reap()))

    async def _reap(self) -> None:
        """Release sequences idle for longer than the idle limit; refuse expired backlogs."""
        idle = self.settings.idle_seconds
        while True:
            now = time.monotonic()
            wait = idle
            for corrid, seen in list(self.last_seen.items()):
                remaining = idle - (now - seen)
                if remaining > 0:
                    wait = min(wait, remaining)
                    continue
                slot = self.sequences.pop(corrid, None)
                if slot is not None:
                    del self.last_seen[corrid]
                    slot.queue.append(None)  # released once the requests before it ran
                    self._wake[slot.instance].set()
                elif corrid in self.backlogs:
                    wait = min(wait, 0.05)  # still waiting for a slot: look again later
                else:
                    del self.last_seen[corrid]
            expiring = [b for b in self.backlog_queue if b.expires != float("inf")]
            for backlog in expiring:
                if backlog.expires <= now:
                    self.backlog_queue.remove(backlog)
                    if self.backlogs.get(backlog.corrid) is backlog:
                        del self.backlogs[backlog.corrid]
                    expired = unavailable("timeout of the corresponding sequence has been expired")
                    for item in backlog.items:
                        if not item.future.done():
                            item.future.set_result(expired)
                else:
                    wait = min(wait, backlog.expires - now)
            self._reaper_wake.clear()
            try:
                await asyncio.wait_for(self._reaper_wake.wait(), max(wait, 0.001))
            except asyncio.TimeoutError:
                pass

    async def _run_instance(self, instance: int) -> None:
        wake = self._wake[instance]
        while True:
            await wake.wait()
            wake.clear()
            while True:
                batch, wait = self._collect(instance)
                if batch:
                    await self._execute(instance, batch)
                    continue
                if wait is not None:
                    try:
                        await asyncio.wait_for(wake.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                    wake.clear()
                    continue
                break

    # --- batch formation ---------------------------------------------------------------------------

    def _fronts(self, instance: int) -> list[_Slot]:
        """Slots with a request at the front (releasing slots whose front is a release mark)."""
        ready = []
        for slot in self.slots[instance]:
            queue = slot.queue
            while queue:
                front = queue[0]
                if front is None:
                    queue.popleft()
                    rest = [item for item in queue if item is not None]
                    queue.clear()
                    for item in rest:  # requests after an idle release: their sequence is gone
                        if not item.future.done():
                            item.future.set_result(_unknown_sequence(item.request))
                    self._release(slot)
                    continue
                if front.future.done():  # cancelled by its client
                    queue.popleft()
                    if front.request.flags & END_FLAG:
                        self._release(slot)
                    continue
                break
            if queue:
                ready.append(slot)
        return ready

    def _collect(self, instance: int) -> tuple[list[tuple[_Slot, _Item | None]], float | None]:
        """The next batch of (slot, item) pairs (item None: a null request), or ([], seconds to wait)."""
        ready = self._fronts(instance)
        if not ready:
            return [], None
        settings = self.settings
        limit = max(1, settings.max_batch_size)
        if settings.oldest:
            ready.sort(key=lambda s: s.queue[0].enqueued_ns)
            chosen = ready[:limit]
            if settings.max_queue_delay > 0:
                target = settings.preferred[-1] if settings.preferred else limit
                waited = (time.monotonic_ns() - chosen[0].queue[0].enqueued_ns) / 1e9
                if len(chosen) < target and len(chosen) not in settings.preferred and waited < settings.max_queue_delay:
                    return [], settings.max_queue_delay - waited
            return [(slot, self._take(slot)) for slot in chosen], None
        if settings.max_queue_delay > 0 and settings.minimum_slot_utilization > 0:
            oldest = min(slot.queue[0].enqueued_ns for slot in ready)
            waited = (time.monotonic_ns() - oldest) / 1e9
            if waited < settings.max_queue_delay and len(ready) / limit < settings.minimum_slot_utilization:
                return [], settings.max_queue_delay - waited
        highest = max(slot.index for slot in ready)
        batch: list[tuple[_Slot, _Item | None]] = []
        for slot in self.slots[instance][: highest + 1]:
            if slot.queue:
                batch.append((slot, self._take(slot)))
            else:
                batch.append((slot, None))
        return batch, None

    def _take(self, slot: _Slot) -> _Item:
        item = slot.queue.popleft()
        if item.request.flags & END_FLAG:
            self._release(slot)  # as Triton: the slot frees when its END request is taken
        return item

    # --- execution ---------------------------------------------------------------------------------

    def _prepare(
        self, slot: _Slot, item: _Item | None, representative: tuple[InferRequest, list, list | None]
    ) -> InferRequest:
        """The request the model sees: controls and state inputs added (a null request for item None)."""
        settings = self.settings
        if item is None:
            source, inputs, outputs = representative
            request = InferRequest(source.model_name, source.model_version, source.id, list(inputs))
            request.outputs = outputs
            request.parameters = source.parameters
            flags, ready, corrid = 0, False, 0
            states = {s.input_name: self._initial(s) for s in settings.states}
        else:
            request = item.request
            request.inputs = list(request.inputs)
            flags, ready, corrid = request.flags, True, request.correlation_id
            if flags & START_FLAG or slot.states is None:
                slot.states = {s.input_name: self._initial(s) for s in settings.states}
            states = slot.states
        shape = self.control_shape
        for control, value in (
            (settings.start, bool(flags & START_FLAG)),
            (settings.end, bool(flags & END_FLAG)),
            (settings.ready, ready),
        ):
            if control is not None:
                data = (control.true_value if value else control.false_value).reshape(shape)
                request.inputs.append(InferTensor(control.name, control.datatype, list(shape), data))
        if settings.corrid_name:
            request.inputs.append(self._corrid_tensor(corrid))
        for state in settings.states:
            data = states[state.input_name]
            if self.batched:
                data = data.reshape((1, *data.shape))
            request.inputs.append(InferTensor(state.input_name, state.datatype, list(data.shape), data))
        if settings.states and request.outputs is not None:
            wanted = {o.name for o in request.outputs}
            extra = [RequestedOutput(s.output_name) for s in settings.states if s.output_name not in wanted]
            request.outputs = list(request.outputs) + extra
        return request

    def _initial(self, state: StateSpec) -> np.ndarray:
        return state.initial

    def _corrid_tensor(self, corrid: int | str) -> InferTensor:
        datatype = self.settings.corrid_datatype
        shape = self.control_shape
        if datatype == "BYTES":
            value = corrid if isinstance(corrid, str) else str(corrid)
            data = np.array([value.encode()], dtype=object).reshape(shape)
        elif isinstance(corrid, int):
            data = np.array([corrid], dtype=numpy_dtype(datatype)).reshape(shape)
        else:
            data = _string_corrid_as_number(corrid, numpy_dtype(datatype)).reshape(shape)
        return InferTensor(self.settings.corrid_name, datatype, list(shape), data)

    async def _execute(self, instance: int, batch: list[tuple[_Slot, _Item | None]]) -> None:
        runner = self.runners[instance]
        first = next(item.request for _, item in batch if item is not None)
        representative = (first, list(first.inputs), first.outputs)  # before controls are added
        requests = [self._prepare(slot, item, representative) for slot, item in batch]
        real = [(slot, item, request) for (slot, item), request in zip(batch, requests, strict=True) if item]
        now = time.monotonic_ns()
        for _, item, _ in real:
            self.stats.record_queue(now - item.request.arrival_ns)
        try:
            results = await runner.execute(requests)
            stamp_compute([r for _, _, r in real], now, time.monotonic_ns(), runner.last_timings)
            self.stats.record_execution(len(real), len(real), *runner.last_timings)
        except Exception as exc:  # a backend bug fails this batch, not the server
            results = [internal(f"{type(exc).__name__}: {exc}")] * len(requests)
        for (slot, item), result in zip(batch, results, strict=True):
            if item is None:
                continue
            if isinstance(result, InferResponse) and self.state_outputs:
                result = self._keep_state(slot, item.request, result)
            if not item.future.done():
                item.future.set_result(result)

    def _keep_state(self, slot: _Slot, request: InferRequest, response: InferResponse) -> InferResponse:
        asked = {o.name for o in request.outputs} if request.outputs is not None else None
        kept = []
        for tensor in response.outputs:
            state = self.state_outputs.get(tensor.name)
            if state is None:
                kept.append(tensor)
                continue
            data = np.asarray(tensor.data)
            if self.batched and data.ndim:
                data = data[0]
            if slot.states is not None:
                slot.states[state.input_name] = data
            if tensor.name in self.config_outputs and (asked is None or tensor.name in asked):
                kept.append(tensor)
        response.outputs = kept
        return response

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await asyncio.gather(task, return_exceptions=True)
        self._tasks = []
        for rows in self.slots:
            for slot in rows:
                for item in slot.queue:
                    if item is not None and not item.future.done():
                        item.future.set_exception(unavailable("Server is stopping"))
        for backlog in self.backlog_queue:
            for item in backlog.items:
                if not item.future.done():
                    item.future.set_exception(unavailable("Server is stopping"))
        for runner in self.runners:
            await runner.stop()


def _unknown_sequence(request: InferRequest) -> TritonError:
    return invalid_arg(
        f"inference request for sequence {request.correlation_id} to model '{request.model_name}' must specify "
        "the START flag on the first request of the sequence"
    )
