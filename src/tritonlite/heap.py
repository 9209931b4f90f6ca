"""Python's garbage collector, set for a long-running server.

Two costs of CPython's defaults show up in a server's latency:

- **Full collections walk the whole heap.** A started server holds ~65,000 objects the
  collector tracks (modules, the web frameworks' routes and validators, protobuf descriptors,
  the loaded models); a full collection walks them all: 13 ms warm and up to ~24 ms while a
  large model keeps the caches cold, with every request on the event loop stalled meanwhile.
  ``freeze()`` collects once and freezes what survives (``gc.freeze``) after the models are
  loaded and after each change of the loaded models; later collections skip the frozen objects.
  Before freezing again it unfreezes, so what an unloaded model leaves in reference cycles is
  collected then.
- **Young collections run every 700 net allocations.** Each one walks the objects of the
  requests in flight (~200 µs on a cold cache), which with 16 requests per batch happened every
  ~9 batches. Most request objects die by reference counting before any collection sees them, so a
  collection costs about the same however rarely it runs: ``tune_collector()`` raises the
  threshold to ``YOUNG_THRESHOLD`` (the older generations keep theirs).

``TRITONLITE_GC_TUNING=0`` leaves the collector as CPython sets it.
"""

from __future__ import annotations

import gc
import logging
import os

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000


def enabled() -> bool:
    return os.environ.get("TRITONLITE_GC_TUNING", "1") != "0"


def tune_collector() -> bool:
    """Raise the young generation's threshold; True when applied."""
    if not enabled():
        return False
    young, middle, old = gc.get_threshold()
    if young and young < YOUNG_THRESHOLD:  # 0 means the collector is off: leave it off
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return True


def freeze() -> bool:
    """Collect everything once, then freeze the survivors so later collections skip them.

    Call it when the set of loaded models has changed (it blocks the calling thread for one full
    collection, ~15 ms). True when applied.
    """
    if not enabled():
        return False
    gc.unfreeze()  # what was frozen before and is garbage now (an unloaded model) is collected
    gc.collect()
    gc.freeze()
    log.debug("heap frozen: %d objects", gc.get_freeze_count())
    return True
