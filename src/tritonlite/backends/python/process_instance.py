"""Python model instances in their own process: true CPU parallelism and crash isolation.

A model selects it in its config::

    parameters { key: "TRITONLITE_INSTANCE_MODE" value: { string_value: "process" } }

and ``--python-instance-mode=process`` (the backend setting ``instance-mode``) makes it the default
of every python model whose config does not say (but decoupled ones, which run on threads only).

Each instance then starts a stub process (``python -m tritonlite.backends.python.stub``) that
runs the model with the in-process ``PythonInstance``; ``execute`` sends the requests over a
socket pair and waits for the results (large tensors travel through shared memory, see
``ipc.py``). If the stub dies, the requests in flight fail (UNAVAILABLE) with Triton's "Stub process
... is not healthy."; ``watch`` tells the instance runner at once, which starts a new instance.
Without a watcher, the next ``execute`` starts a fresh stub (running ``initialize`` again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tritonlite
from tritonlite.backends.base import BackendInstance, InstanceSpec
from tritonlite.backends.python import triton_python_backend_utils as pb_utils
from tritonlite.backends.python.cancel_flags import CancelFlags
from tritonlite.backends.python.ipc import Channel, ChannelClosed, UnreadableMessage
from tritonlite.backends.python.metrics_relay import MetricsMirror
from tritonlite.core.errors import TritonError, internal, invalid_arg, unavailable
from tritonlite.core.types import InferRequest, InferResponse

log = logging.getLogger(__name__)

MODE_PARAMETER = "TRITONLITE_INSTANCE_MODE"
MODE_SETTING = "instance-mode"  # the python backend setting that --python-instance-mode sets
THREAD, PROCESS = "thread", "process"
MODES = (THREAD, PROCESS)
FINALIZE_TIMEOUT_S = 30.0  # how long the model's finalize may take when the instance stops
EXIT_TIMEOUT_S = 5.0  # how long a stub may take to exit once it answered
WATCH_INTERVAL_S = 0.5  # how often a stub's exit is checked where there are no pidfds


def instance_mode(spec: InstanceSpec) -> str:
    """The model's ``TRITONLITE_INSTANCE_MODE`` parameter: "thread" or "process"; without one, the
    server's ``instance-mode`` python setting (default "thread"), which a decoupled model ignores."""
    parameters = getattr(spec.config, "parameters", None)
    if parameters is None or MODE_PARAMETER not in parameters:
        value = spec.backend_settings.get(MODE_SETTING, THREAD)
        mode = value.strip().lower()
        if mode not in MODES:
            raise invalid_arg(
                f"unknown value '{value}' for the python backend setting '{MODE_SETTING}'; "
                f"allowed values are '{THREAD}' (the default) and '{PROCESS}'"
            )
        if mode == PROCESS and spec.config.model_transaction_policy.decoupled:
            return THREAD  # decoupled python models run in thread mode only
        return mode
    value = parameters[MODE_PARAMETER].string_value
    mode = value.strip().lower()
    if mode not in MODES:
        raise invalid_arg(
            f"model '{spec.model_name}': unknown value '{value}' for parameter '{MODE_PARAMETER}'; "
            f"allowed values are '{THREAD}' (the default) and '{PROCESS}'"
        )
    return mode


def _child_env() -> dict[str, str]:
    """The environment of a stub: tritonlite importable even when it runs from a source tree."""
    env = dict(os.environ)
    root = str(Path(tritonlite.__file__).resolve().parent.parent)
    paths = env.get("PYTHONPATH", "").split(os.pathsep) if env.get("PYTHONPATH") else []
    if root not in paths:  # last: the user's entries keep their precedence
        env["PYTHONPATH"] = os.pathsep.join([*paths, root])
    return env


class _Stub:
    """One stub process and its channel. ``call`` runs one exchange (answering BLS calls)."""

    def __init__(self, instance_name: str) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.cancel_flags = CancelFlags()
        fds = [child_sock.fileno(), self.cancel_flags.fd]
        try:
            command = [sys.executable, "-m", "tritonlite.backends.python.stub", *map(str, fds), instance_name]
            proc = subprocess.Popen(command, pass_fds=fds, env=_child_env())
        except BaseException:
            parent_sock.close()
            self.cancel_flags.close()
            raise
        finally:
            child_sock.close()
            self.cancel_flags.release_fd()
        self.proc = proc
        self.channel = Channel(parent_sock, alive=lambda: proc.poll() is None)
        self.lock = threading.Lock()
        # stop the stub (model finalize included) if the instance is dropped or at interpreter exit
        self.mirror = MetricsMirror()  # the custom metrics its model holds in the server's registry
        self._finalizer = weakref.finalize(self, _stop, proc, self.channel, self.lock, instance_name, self.mirror)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, message: Any) -> Any:
        with self.lock:
            return _exchange(self.channel, message, self.mirror)

    def stop(self) -> None:
        """Finalize the model in the stub, let it exit (kill it if it does not)."""
        self._finalizer()

    def kill(self, wait_s: float = 0.0) -> int | None:
        """End the stub without a finalize (after ``wait_s`` for it to exit). Returns its exit status."""
        self._finalizer.detach()
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
        _end(self.proc, self.channel, graceful=False, mirror=self.mirror)
        return self.proc.returncode


def _exchange(channel: Channel, message: Any, mirror: MetricsMirror | None = None) -> Any:
    """Send a message and return the stub's answer, running the BLS requests it makes meanwhile
    (and taking in its custom metrics' changes)."""
    channel.send(message)
    while True:
        try:
            reply = channel.recv()
        except UnreadableMessage as exc:
            if exc.kind != "bls":
                raise
            channel.send(("bls_error", f"unable to read the BLS request of the stub process: {exc}"))
            continue
        if reply[0] == "metrics":
            if mirror is not None:
                mirror.apply(reply[1])
            continue
        if reply[0] != "bls":
            return reply
        _, request, decoupled = reply
        del reply
        try:
            answer: tuple = ("bls_result", request.exec(decoupled))
        except pb_utils.TritonModelException as exc:
            answer = ("bls_error", str(exc))
        except Exception as exc:
            answer = ("bls_error", f"{type(exc).__name__}: {exc}")
        del request
        try:
            channel.send(answer)
        except ChannelClosed:
            raise
        except Exception as exc:  # the response does not pickle (a decoupled generator, say)
            channel.send(("bls_error", f"unable to pass the BLS response to the stub process: {exc!r}"))


def _stop(proc: subprocess.Popen, channel: Channel, lock: threading.Lock, name: str, mirror: MetricsMirror) -> None:
    graceful = lock.acquire(timeout=EXIT_TIMEOUT_S)
    try:
        _end(proc, channel, graceful, name, mirror)
    finally:
        if graceful:
            lock.release()


def _end(
    proc: subprocess.Popen, channel: Channel, graceful: bool, name: str = "", mirror: MetricsMirror | None = None
) -> None:
    if graceful and proc.poll() is None:
        channel.deadline = time.monotonic() + FINALIZE_TIMEOUT_S
        try:
            _exchange(channel, ("finalize",), mirror)
        except ChannelClosed as exc:
            if proc.poll() is None:
                log.warning("stub process of '%s' did not finalize: %s; killing it", name, exc)
                proc.kill()
    elif proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    channel.close()
    if mirror is not None:
        mirror.release_all()


class PythonProcessInstance(BackendInstance):
    """A ``PythonInstance`` in a stub process; ``execute`` blocks its (instance) thread meanwhile."""

    # execute waits for another process: the runner must keep it off the event loop
    may_run_inline = False

    def __init__(self, spec: InstanceSpec) -> None:
        self.spec = spec
        self._watcher: tuple[asyncio.AbstractEventLoop, Callable[[str], None]] | None = None
        self._ending = False  # killed or finalized: its stub's exit is no news
        self._stub: _Stub | None = self._start()

    @property
    def pid(self) -> int | None:
        """The stub's process id (None between a crash and the next execute)."""
        return self._stub.pid if self._stub is not None else None

    def _start(self) -> _Stub:
        name = self.spec.instance_name
        stub = _Stub(name)
        try:
            # the config protobuf travels serialized (its class does not pickle by name)
            spec = dataclasses.replace(self.spec, config=self.spec.config.SerializeToString())
            reply = stub.call(("init", spec, list(sys.path), logging.getLogger().getEffectiveLevel()))
        except ChannelClosed:
            status = stub.kill()
            raise internal(
                f"Failed to initialize stub, stub process exited unexpectedly: {name} (exit status {status})"
            ) from None
        except BaseException:
            stub.kill()
            raise
        if reply[0] == "init_error":
            stub.kill(wait_s=EXIT_TIMEOUT_S)  # it exits once it answered
            raise reply[1] from None
        return stub

    def kill(self) -> bool:
        """Kill the stub process: an execute waiting on it returns (its requests fail)."""
        self._ending = True
        stub = self._stub
        if stub is not None and stub.proc.poll() is None:
            stub.proc.kill()
        return True

    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[str], None]) -> None:
        self._watcher = (loop, on_exit)
        if self._stub is not None:
            self._watch_stub(self._stub)

    def _watch_stub(self, stub: _Stub) -> None:
        """On the loop: report the stub's exit as soon as it happens (a pidfd turns readable then;
        without pidfds, a check every ``WATCH_INTERVAL_S``)."""
        assert self._watcher is not None
        loop, on_exit = self._watcher

        def exited() -> None:
            if not self._ending:  # not ended on purpose
                on_exit(f"stub process exited (status {_exit_status(stub)})")

        try:
            fd = os.pidfd_open(stub.pid)
        except (AttributeError, OSError):  # not Linux 5.3+: poll

            def check() -> None:
                if stub.proc.poll() is None:
                    loop.call_later(WATCH_INTERVAL_S, check)
                else:
                    exited()

            loop.call_later(WATCH_INTERVAL_S, check)
            return

        def readable() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            exited()

        loop.add_reader(fd, readable)

    def execute(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        name = self.spec.instance_name
        if self._watcher is not None and (self._stub is None or self._stub.proc.poll() is not None):
            # watched: its runner replaces the whole instance, the stub is not started again here
            error = unavailable(
                f"Failed to process the request(s) for model '{name}', message: Stub process '{name}' is not healthy."
            )
            return [error] * len(requests)
        if self._stub is not None and self._stub.proc.poll() is not None:  # died while idle: restart now
            status = self._stub.kill()
            self._stub = None
            log.error("stub process of '%s' exited (status %s) while idle; restarting it", name, status)
        if self._stub is None:
            try:
                self._stub = self._start()
            except TritonError as exc:
                log.error("failed to restart the stub process of '%s': %s", name, exc.message)
                error = TritonError(exc.kind, f"Failed to restart the stub process of model '{name}': {exc.message}")
                return [error] * len(requests)
        stub = self._stub
        started = time.monotonic_ns()
        try:
            with stub.cancel_flags.watching(requests):
                reply = stub.call(("execute", requests))
        except ChannelClosed:
            self._stub = None
            status = stub.kill()
            log.error("stub process of '%s' exited (status %s); it will be restarted", name, status)
            if self._watcher is not None and not self._ending:
                # told now, ahead of this answer (the pidfd may turn readable a moment later): the runner
                # is restarting the instance before the client can send its next request
                loop, on_exit = self._watcher
                loop.call_soon_threadsafe(on_exit, f"stub process exited (status {status})")
            # UNAVAILABLE: the request may be sent again once the instance restarted
            error = unavailable(
                f"Failed to process the request(s) for model '{name}', message: Stub process '{name}' is not healthy."
            )
            return [error] * len(requests)
        except UnreadableMessage as exc:
            error = internal(f"Failed to read the response(s) of model '{name}' from its stub process: {exc}")
            return [error] * len(requests)
        if reply[0] == "raise":
            raise reply[1]
        _, results, (received, compute_input, compute_infer, compute_output, sent) = reply
        if compute_infer:  # the stub's PythonInstance measured them: add the trips both ways
            passing_in, passing_out = max(0, received - started), max(0, time.monotonic_ns() - sent)
            self.timings = (compute_input + passing_in, compute_infer, compute_output + passing_out)
        return results

    def finalize(self) -> None:
        self._ending = True
        stub, self._stub = self._stub, None
        if stub is not None:
            stub.stop()


def _exit_status(stub: _Stub) -> int | None:
    """The status of a stub known to have exited. ``poll()`` answers None while another thread is
    reaping the same process (``kill`` after a closed channel), so wait briefly for the reaper."""
    try:
        return stub.proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return None
