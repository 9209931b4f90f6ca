"""The stub process of a python model instance in process mode.

``python -m tritonlite.backends.python.stub FD CANCEL_FD [NAME]``: FD is this end of the socket pair
that ``process_instance.PythonProcessInstance`` made, CANCEL_FD its cancellation flags
(``cancel_flags.py``). The stub receives the instance spec, runs a
plain in-process ``PythonInstance`` (so the model's import, initialize, execute and finalize
behave exactly as in thread mode), then answers execute requests until it is told to finalize
or tritonlite goes away. NAME (the instance name) only labels the process for ``ps``.

Messages (tuples, see ``ipc.Channel``), tritonlite -> stub:
``("init", spec, sys_path, log_level)``, ``("execute", requests)``, ``("finalize",)``,
``("bls_result", response)`` / ``("bls_error", message)`` answering a BLS call;
stub -> tritonlite: ``("ready", pid)`` / ``("init_error", TritonError)``, ``("results", list, times)`` /
``("raise", TritonError)``, ``("finalized",)`` and ``("bls", request, decoupled)`` while a model
method runs; ``("metrics", ops)`` (custom metrics' changes, ``metrics_relay.py``) before an answer.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from tritonlite.backends.python import triton_python_backend_utils as pb_utils
from tritonlite.backends.python.backend import PythonInstance, describe_exception
from tritonlite.backends.python.cancel_flags import StubCancelFlags
from tritonlite.backends.python.ipc import Channel, ChannelClosed, UnreadableMessage
from tritonlite.backends.python.metrics_relay import JournalingMetrics
from tritonlite.core.errors import TritonError, internal


class _Bls:
    """``InferenceRequest.exec`` in the stub: ask tritonlite to run the request, wait for the answer.

    Only while a model method runs (tritonlite reads the channel then); calls from several model
    threads take turns.
    """

    def __init__(self, channel: Channel, metrics: JournalingMetrics | None = None) -> None:
        self.channel = channel
        self.metrics = metrics
        self.lock = threading.Lock()
        self.active = False

    def __call__(self, request: pb_utils.InferenceRequest, decoupled: bool) -> Any:
        with self.lock:
            if not self.active:
                raise pb_utils.TritonModelException(
                    "BLS requests can only be executed while the model's initialize, execute or finalize runs"
                )
            self.channel.send(("bls", request, decoupled))
            kind, value = self.channel.recv()
        if kind == "bls_error":
            raise pb_utils.TritonModelException(value)
        return value

    def reply(self, message: Any) -> None:
        """Send the answer to tritonlite once no BLS call is in flight; later calls are refused.
        The custom metrics' changes go first."""
        with self.lock:
            self.active = False
            ops = self.metrics.take() if self.metrics is not None else None
            if ops:
                self.channel.send(("metrics", ops))
            self.channel.send(message)


def _configure_logging(level: int) -> None:
    from tritonlite.logging_setup import TritonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TritonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def serve(channel: Channel, cancel_flags: StubCancelFlags | None = None) -> None:
    try:
        kind, spec, sys_path, log_level = channel.recv()
    except ChannelClosed:
        return
    assert kind == "init", kind
    from tritonlite.protocol import model_config_pb2 as mc

    spec = dataclasses.replace(spec, config=mc.ModelConfig.FromString(spec.config))
    _configure_logging(log_level)
    sys.path.extend(entry for entry in sys_path if entry not in sys.path)
    metrics = JournalingMetrics()
    pb_utils._metrics = metrics
    bls = _Bls(channel, metrics)
    pb_utils._bls_executor = bls
    bls.active = True
    try:
        instance = PythonInstance(spec)
    except TritonError as exc:
        bls.reply(("init_error", exc))
        return
    except Exception as exc:
        bls.reply(("init_error", internal(describe_exception(exc, skip_frames=0))))
        return
    instance.cancel_flags = cancel_flags
    bls.reply(("ready", os.getpid()))

    while True:
        try:
            message = channel.recv()
        except ChannelClosed:  # tritonlite is gone: finish like a finalize
            instance.finalize()
            return
        except UnreadableMessage as exc:
            bls.reply(
                ("raise", internal(f"the stub process of '{spec.instance_name}' cannot read the request(s): {exc}"))
            )
            continue
        if message[0] == "finalize":
            bls.active = True
            instance.finalize()
            bls.reply(("finalized",))
            return
        received = time.monotonic_ns()
        requests = message[1]
        del message
        bls.active = True
        try:
            results = instance.execute(requests)
            timings = getattr(instance, "timings", (0, 0, 0))
            reply: tuple = ("results", results, (received, *timings, time.monotonic_ns()))
            del results
        except TritonError as exc:
            reply = ("raise", exc)
        except Exception as exc:
            reply = ("raise", internal(f"{type(exc).__name__}: {exc}"))
        count = len(requests)
        del requests
        try:
            bls.reply(reply)
        except ChannelClosed:
            return
        except Exception as exc:  # something in the results does not pickle: nothing was sent
            error = internal(
                f"Failed to pass the response(s) of model '{spec.instance_name}' out of its stub process: "
                f"{type(exc).__name__}: {exc}"
            )
            bls.reply(("results", [error] * count, (0, 0, 0, 0, 0)))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fd = int(args[0])
    os.set_inheritable(fd, False)
    cancel_flags = StubCancelFlags(int(args[1])) if len(args) > 1 and args[1].isdigit() else None
    # Ctrl-C reaches the whole process group: tritonlite decides when the stub stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = Channel(socket.socket(fileno=fd))
    try:
        serve(channel, cancel_flags)
    finally:
        channel.close()
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
