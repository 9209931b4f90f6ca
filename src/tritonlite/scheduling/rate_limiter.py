"""Triton's rate limiter: ``--rate-limit``, ``--rate-limit-resource`` and ``rate_limiter`` in instance groups.

With ``--rate-limit=execution_count`` an instance runs only when it can take the resources its
instance group lists (``rate_limiter { resources [...] priority: N }``). Resources are per device
unless marked global. How many copies of a resource exist:

* with no ``--rate-limit-resource`` at all: the most any single registered instance needs, so that
  every instance can run (recomputed whenever an instance registers or unregisters);
* with at least one ``--rate-limit-resource``: the given count (per device, for ``name:count``
  every device, for ``name:count:device`` that device; a global resource takes the largest count
  given for its name on any device). A resource that no flag names then has 0 copies, so an
  instance needing it is refused at load, as in Triton.

Which waiting instance runs next follows Triton's scheduling: every instance has a "scaled
priority", ``execution count * max(priority, 1)``; among the instances that waiting requests
could use, the one with the lowest scaled priority goes first (so an instance with priority 2
gets about half the executions of one with priority 1 when they compete). If that instance's
resources are not free, nothing else is started before it (no starvation of large requests).
Within one candidate list requests are served in arrival order.

Everything runs on one asyncio event loop; no locks, no threads.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tritonlite.core.errors import TritonError, internal, invalid_arg, unavailable

OFF = "off"
EXECUTION_COUNT = "execution_count"

# Triton's keys in its resource maps (rate_limiter.h)
GLOBAL_RESOURCE_KEY = -2
PER_DEVICE_RESOURCE_KEY = -1

_SIZE_T = 1 << 64
_INT_PREFIX = re.compile(r"\s*([+-]?\d+)")


def _stoi(text: str) -> int:
    """``std::stoi`` as Triton's option parser uses it: leading digits count, the rest is ignored."""
    match = _INT_PREFIX.match(text)
    if match is None:
        raise invalid_arg(f"Invalid option value. Got {text}")
    value = int(match.group(1))
    if not -(1 << 31) <= value < (1 << 31):
        raise invalid_arg(f"Provided option value is out of bound. Got {text}")
    return value


def parse_rate_limit_mode(text: str) -> str:
    """``--rate-limit``: ``off`` or ``execution_count`` (any case)."""
    mode = text.lower()
    if mode not in (OFF, EXECUTION_COUNT):
        raise invalid_arg("invalid argument for --rate-limit")
    return mode


def parse_resource_spec(spec: str) -> tuple[str, int, int]:
    """``--rate-limit-resource=<name>:<count>[:<device>]`` as ``(name, count, device)``.

    Device -1 (the default) means "this count on every device". Errors carry Triton's texts
    (Triton prints them after ``Bad option: "--rate-limit-resource".`` and exits). Like Triton, an
    empty name is accepted and a negative count wraps around (it becomes practically unlimited).
    """
    format_error = invalid_arg(
        "--rate-limit-resource option format is '<resource_name>:<count>:<device>' or "
        f"'<resource_name>:<count>'. Got {spec}"
    )
    parts = spec.split(":")
    if len(parts) == 2:
        name, count_text, device = parts[0], parts[1], PER_DEVICE_RESOURCE_KEY
    elif len(parts) == 3:
        name, count_text = parts[0], parts[1]
        device = None
    else:
        raise format_error
    count = _stoi(count_text)
    if device is None:
        device = _stoi(parts[2])
    return name, count % _SIZE_T, device


def instance_rate_limit(group: Any) -> tuple[list[tuple[str, int, bool]], int]:
    """The ``(resources, priority)`` an instance group's ``rate_limiter`` asks for, ready for ``register``."""
    if not group.HasField("rate_limiter"):
        return [], 1
    limiter = group.rate_limiter
    return [(r.name, r.count, getattr(r, "global")) for r in limiter.resources], limiter.priority


@dataclass(eq=False)
class _Instance:
    name: str
    device_id: int
    needs: dict[int, dict[str, int]]  # device id or GLOBAL_RESOURCE_KEY -> resource -> count
    priority: int
    exec_count: int = 0
    held: bool = False

    def scaled_priority(self) -> int:
        return self.exec_count * self.priority


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future
    seq: int


@dataclass(eq=False)
class _Queue:
    candidates: tuple[str, ...]
    waiters: deque[_Waiter] = field(default_factory=deque)


class RateLimiter:
    """Grants model instances the resources they need to run, in Triton's order."""

    def __init__(self, mode: str = OFF, resources: list[str] | tuple[str, ...] = ()) -> None:
        self.mode = parse_rate_limit_mode(mode)
        # explicit counts from the command line: device (or -1 for every device) -> name -> count
        self.explicit: dict[int, dict[str, int]] = {}
        for spec in resources:
            name, count, device = parse_resource_spec(spec)
            per_device = self.explicit.setdefault(device, {})
            # Triton keeps the smallest count when one name and device are given twice
            per_device[name] = min(count, per_device.get(name, count))
        self._instances: dict[str, _Instance] = {}
        self._retired: dict[str, _Instance] = {}  # unregistered while running
        self._limits: dict[int, dict[str, int]] = {}
        self._allocated: dict[int, dict[str, int]] = {}
        self._queues: dict[tuple[str, ...], _Queue] = {}
        self._seq = 0

    @property
    def enabled(self) -> bool:
        return self.mode != OFF

    # --- instances -----------------------------------------------------------------------------

    def register(
        self,
        instance_name: str,
        device_id: int,
        resources: list[tuple[str, int, bool]],
        priority: int,
    ) -> None:
        """Add an instance (at model load). Raises Triton's INVALID_ARG if its resources cannot be met.

        ``instance_name`` must be unique across all loaded models and versions.
        """
        if not self.enabled:
            return
        if instance_name in self._instances:
            raise internal(f"instance '{instance_name}' is already registered with the rate limiter")
        needs: dict[int, dict[str, int]] = {}
        for name, count, is_global in resources:
            key = GLOBAL_RESOURCE_KEY if is_global else device_id
            needs.setdefault(key, {})[name] = count
        self._instances[instance_name] = _Instance(instance_name, device_id, needs, max(priority, 1))
        try:
            self._update_limits()
        except TritonError:
            del self._instances[instance_name]
            self._update_limits()
            raise

    def unregister(self, instance_name: str) -> None:
        """Remove an instance (at unload). A running instance gives its resources back at ``release``."""
        if not self.enabled:
            return
        instance = self._instances.pop(instance_name, None)
        if instance is None:
            return
        if instance.held:
            self._retired[instance_name] = instance
        self._update_limits()  # cannot fail: removing an instance only lowers the needs
        self._fail_orphaned_waiters()
        self._dispatch()

    def limits(self) -> dict[int, dict[str, int]]:
        """The resource copies that exist now: device id (or -2 for global) -> name -> count."""
        return {key: dict(counts) for key, counts in self._limits.items() if counts}

    def in_use(self) -> dict[int, dict[str, int]]:
        """The resource copies held by running instances now."""
        held = {key: {n: c for n, c in counts.items() if c} for key, counts in self._allocated.items()}
        return {key: counts for key, counts in held.items() if counts}

    def execution_count(self, instance_name: str) -> int:
        instance = self._instances.get(instance_name)
        return instance.exec_count if instance is not None else 0

    # --- scheduling ----------------------------------------------------------------------------

    async def acquire(self, candidates: list[str]) -> str:
        """Wait until one of ``candidates`` may run, take its resources and return its name.

        Candidates are instances of one model (all of them, or the idle ones); an instance is
        never granted twice before it is released. With the rate limiter off the first
        candidate is returned at once and nothing is tracked.
        """
        if not self.enabled:
            return candidates[0]
        if not candidates:
            raise internal("no model instance to acquire from the rate limiter")
        for name in candidates:
            if name not in self._instances:
                raise internal(f"instance '{name}' is not registered with the rate limiter")
        key = tuple(candidates)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(key)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._seq += 1
        queue.waiters.append(_Waiter(future, self._seq))
        self._dispatch()
        if future.done():
            return future.result()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(future.result())  # granted just as the caller gave up
            else:
                future.cancel()
                self._dispatch()  # it may have been the request everyone else waited behind
            raise

    def release(self, instance_name: str) -> None:
        """Give back the resources ``instance_name`` holds (after its execution) and wake waiters."""
        if not self.enabled:
            return
        instance = self._instances.get(instance_name)
        if instance is None or not instance.held:
            instance = self._retired.pop(instance_name, None)
        if instance is None or not instance.held:
            return
        instance.held = False
        instance.exec_count += 1
        for key, counts in instance.needs.items():
            allocated = self._allocated.setdefault(key, {})
            for name, count in counts.items():
                allocated[name] = allocated.get(name, 0) - count
        self._dispatch()

    def _fits(self, instance: _Instance) -> bool:
        for key, counts in instance.needs.items():
            limits = self._limits.get(key, {})
            allocated = self._allocated.get(key, {})
            for name, count in counts.items():
                if allocated.get(name, 0) + count > limits.get(name, 0):
                    return False
        return True

    def _take(self, instance: _Instance) -> None:
        instance.held = True
        for key, counts in instance.needs.items():
            allocated = self._allocated.setdefault(key, {})
            for name, count in counts.items():
                allocated[name] = allocated.get(name, 0) + count

    def _dispatch(self) -> None:
        """Grant instances while the best-placed waiting request can run."""
        while True:
            best: tuple[int, int, _Queue, _Instance] | None = None
            for key in list(self._queues):
                queue = self._queues[key]
                waiters = queue.waiters
                while waiters and waiters[0].future.done():  # cancelled or failed
                    waiters.popleft()
                if not waiters:
                    del self._queues[key]
                    continue
                instance = self._best_free(queue.candidates)
                if instance is None:
                    continue
                rank = (instance.scaled_priority(), waiters[0].seq)
                if best is None or rank < best[:2]:
                    best = (rank[0], rank[1], queue, instance)
            if best is None:
                return
            _, _, queue, instance = best
            if not self._fits(instance):
                return  # Triton: the instance first in line waits for its resources, others wait behind it
            self._take(instance)
            queue.waiters.popleft().future.set_result(instance.name)

    def _best_free(self, candidates: tuple[str, ...]) -> _Instance | None:
        best = None
        for name in candidates:
            instance = self._instances.get(name)
            if instance is None or instance.held:
                continue
            if best is None or instance.scaled_priority() < best.scaled_priority():
                best = instance
        return best

    def _fail_orphaned_waiters(self) -> None:
        for key in list(self._queues):
            if any(name in self._instances for name in key):
                continue
            for waiter in self._queues.pop(key).waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(unavailable("the model instances of this request were unloaded"))

    # --- resource counts -----------------------------------------------------------------------

    def _update_limits(self) -> None:
        """Triton's ResourceManager::UpdateResourceLimits, with its error texts."""
        limits: dict[int, dict[str, int]] = {}
        for instance in self._instances.values():
            for key, counts in instance.needs.items():
                device_limits = limits.setdefault(key, {})
                for name, count in counts.items():
                    device_limits[name] = max(device_limits.get(name, 0), count)
        if self.explicit:
            for key in sorted(limits):
                for name in sorted(limits[key]):
                    needed = limits[key][name]
                    available = self._explicit_count(key, name)
                    if available < needed:
                        raise invalid_arg(
                            f'Resource count for "{name}" is limited to {available} which will prevent scheduling '
                            f"of one or more model instances, the minimum required count is {needed}"
                        )
                    limits[key][name] = available
        for name in sorted(limits.get(GLOBAL_RESOURCE_KEY, {})):
            for key in sorted(limits):
                if key != GLOBAL_RESOURCE_KEY and name in limits[key]:
                    raise invalid_arg(
                        f'Resource "{name}" is present as both global and device-specific resource in the '
                        "model configuration."
                    )
        self._limits = limits

    def _explicit_count(self, key: int, name: str) -> int:
        if key == GLOBAL_RESOURCE_KEY:
            counts = [per_device[name] for per_device in self.explicit.values() if name in per_device]
        else:
            counts = [
                self.explicit[k][name] for k in (key, PER_DEVICE_RESOURCE_KEY) if name in self.explicit.get(k, {})
            ]
        return max(counts, default=0)
