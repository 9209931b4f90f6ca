"""heap: the collector's young threshold, and freeze() freezing what survives (and collecting what
an unload left behind). Run in subprocesses: a freeze in the test process would outlive the test."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tritonlite import heap
from tritonlite.engine import Engine, EngineOptions

EXAMPLES = Path(__file__).parent.parent / "examples" / "model_repository"


def _run(program: str, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, env={**os.environ, **env}
    )
    return out.stdout.strip()


THRESHOLD = """
import gc
from tritonlite.heap import tune_collector
before = gc.get_threshold()
applied = tune_collector()
print(applied, before[0], gc.get_threshold()[0], gc.get_threshold()[1:] == before[1:])
"""


def test_tune_collector_raises_only_the_young_threshold():
    applied, before, after, older_kept = _run(THRESHOLD).split()
    assert applied == "True" and older_kept == "True"
    assert int(before) == 700 and int(after) == heap.YOUNG_THRESHOLD


def test_tuning_can_be_turned_off():
    assert _run(THRESHOLD, TRITONLITE_GC_TUNING="0").split()[:3] == ["False", "700", "700"]


def test_a_disabled_threshold_stays_disabled():
    program = "import gc\ngc.set_threshold(0)\nfrom tritonlite.heap import tune_collector\n"
    program += "tune_collector()\nprint(gc.get_threshold()[0])"
    assert _run(program) == "0"


SETTLE = """
import gc, weakref
from tritonlite.heap import freeze

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a

kept = cycle()
alive = weakref.ref(kept)
print(freeze(), gc.get_freeze_count() > 0)
del kept  # now garbage, but frozen: an ordinary full collection does not look at it
gc.collect()
print(alive() is not None)
freeze()  # unfreezes first: the next freeze collects it
print(alive() is None)
"""


def test_freeze_freezes_survivors_and_collects_them_once_they_are_garbage():
    applied, frozen, skipped, collected = _run(SETTLE).split()
    assert (applied, frozen) == ("True", "True")
    assert skipped == "True"  # frozen objects are left alone by gc.collect()
    assert collected == "True"  # freeze() unfreezes, collects, freezes again


def test_freeze_can_be_turned_off():
    # compared with the count before: an interpreter's site hooks may have frozen objects already
    program = "import gc\nfrom tritonlite.heap import freeze\nbefore = gc.get_freeze_count()\n"
    program += "print(freeze(), gc.get_freeze_count() == before)"
    assert _run(program, TRITONLITE_GC_TUNING="0") == "False True"


def test_engine_freezes_after_explicit_loads_reloads_and_unloads(tmp_path, monkeypatch):
    shutil.copytree(EXAMPLES / "identity", tmp_path / "identity", ignore=shutil.ignore_patterns("__pycache__"))
    frozen: list[str] = []
    monkeypatch.setattr(heap, "freeze", lambda: frozen.append("freeze") or True)

    async def scenario(freeze_heap: bool) -> list[str]:
        frozen.clear()
        engine = Engine(EngineOptions(repositories=[tmp_path], model_control_mode="explicit", freeze_heap=freeze_heap))
        await engine.start()
        try:
            assert frozen == []  # the server freezes once its endpoints are up, not the engine
            await engine.load_model("identity")
            assert engine.models.is_ready("identity") and len(frozen) == int(freeze_heap)
            await engine.load_model("identity")  # a reload: the replaced version drains in the background
            assert len(frozen) == 2 * int(freeze_heap)
            await engine.models.wait_retired()
            for _ in range(3):
                await asyncio.sleep(0)
            assert len(frozen) == 3 * int(freeze_heap)  # frozen again once the old version is gone
            await engine.unload_model("identity")
            assert len(frozen) == 4 * int(freeze_heap)
            try:
                await engine.load_model("missing")
            except Exception:
                pass
            return list(frozen)  # a failed load freezes too: it may leave garbage behind
        finally:
            await engine.stop()

    assert asyncio.run(scenario(True)) == ["freeze"] * 5
    assert asyncio.run(scenario(False)) == []  # engines made without the option leave the heap alone
