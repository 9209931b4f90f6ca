"""Importing TensorFlow quietly, with bounded thread pools.

TensorFlow's thread pools and log level are per process and fixed once its runtime starts, so
they are set at the first import: ``TF_NUM_INTRA_THREADS`` / ``TF_NUM_INTER_THREADS`` of the first
TensorFlow model that loads (Triton's parameter names), else ``--backend-config=tensorflow,
intra-op-threads=N`` / ``inter-op-threads=N``, else the CPU count and 2. Its C++ logging is off
unless ``TF_CPP_MIN_LOG_LEVEL`` is set.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from tritonlite.backends.framework import backend_missing

log = logging.getLogger(__name__)

_lock = threading.Lock()
_threads: ThreadSettings | None = None


@dataclass(frozen=True)
class ThreadSettings:
    intra_op: int
    inter_op: int
    # a model's parameter or --backend-config asked for these (not only the defaults)
    explicit: bool = False

    def same_pools(self, other: ThreadSettings) -> bool:
        return (self.intra_op, self.inter_op) == (other.intra_op, other.inter_op)


def default_threads() -> ThreadSettings:
    return ThreadSettings(os.cpu_count() or 1, 2)


def import_tensorflow(threads: ThreadSettings | None = None) -> Any:
    """The ``tensorflow`` module, its threads set on first use (later requests are only compared)."""
    global _threads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise backend_missing("tensorflow", "tensorflow", "tensorflow", exc) from None
    if not hasattr(tf, "saved_model"):  # e.g. a stray folder named tensorflow on sys.path
        raise backend_missing("tensorflow", "tensorflow", "tensorflow", ImportError("no tf.saved_model"))
    with _lock:
        if _threads is None:
            _threads = threads or default_threads()
            tf.get_logger().setLevel(logging.ERROR)
            try:
                tf.config.threading.set_intra_op_parallelism_threads(_threads.intra_op)
                tf.config.threading.set_inter_op_parallelism_threads(_threads.inter_op)
            except RuntimeError:  # the runtime started before tritonlite imported it (in-process use)
                log.warning("TensorFlow was initialized before tritonlite set its thread pools; keeping its own")
        elif threads is not None and threads.explicit and not threads.same_pools(_threads):
            log.warning(
                "TensorFlow's thread pools are per process and already set to %d intra-op / %d inter-op threads; "
                "ignoring %d / %d",
                _threads.intra_op,
                _threads.inter_op,
                threads.intra_op,
                threads.inter_op,
            )
    return tf
