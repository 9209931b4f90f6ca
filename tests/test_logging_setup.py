"""Log lines as Triton writes them: quoted and escaped messages, whole table boxes, load progress."""

from __future__ import annotations

import logging
import re
import time

import requests
from serverutil import RunningServer

from tritonlite.logging_setup import TritonFormatter, table

# Triton 2.51's line for a python model whose initialize raised ValueError('a "b" \\ c\td é')
TRITON_LINE = (
    "E1206 07:21:00.886782 21687 model_lifecycle.cc:642] \"failed to load 'broken' version 1: Internal: "
    'ValueError: a \\"b\\" \\\\ c\\td é\\n\\nAt:\\n  /tmp/logrepo/broken/1/model.py(3): initialize\\n"'
)


def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("tritonlite", level, "/x/loader.py", 156, message, None, None)


def test_a_message_is_quoted_and_escaped_as_triton():
    message = "failed to load 'broken' version 1: Internal: ValueError: a \"b\" \\ c\td é\n\nAt:\n" + (
        "  /tmp/logrepo/broken/1/model.py(3): initialize\n"
    )
    line = TritonFormatter().format(record(message))
    assert line.split("] ", 1)[1] == TRITON_LINE.split("] ", 1)[1]
    assert "\n" not in line
    assert re.fullmatch(r"E\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ loader\.py:156\] \".*\"", line)


def test_a_table_is_written_as_a_block():
    text = "\n" + table(["Model"], [["m"]]) + "\n"
    assert TritonFormatter().format(record(text, logging.INFO)).endswith("] " + text)


def test_a_cell_with_several_lines_keeps_the_box_whole():
    lines = table(
        ["Model", "Status"], [["broken", "UNAVAILABLE: boom\nline two\n\nAt:\n  m.py(3): f\n"], ["ok", "READY"]]
    )
    rows = lines.split("\n")
    assert len({len(row) for row in rows}) == 1
    assert all(row[0] in "+|" and row[-1] in "+|" for row in rows)
    assert rows[3:9] == [
        "| broken | UNAVAILABLE: boom |",
        "|        | line two          |",
        "|        |                   |",
        "|        | At:               |",
        "|        |   m.py(3): f      |",
        "| ok     | READY             |",
    ]


SLOW_MODEL = """
import time


class TritonPythonModel:
    def initialize(self, args):
        time.sleep(6)

    def execute(self, requests):
        return []
"""

CONFIG = """name: "{name}"
backend: "python"
input [{{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }}]
output [{{ name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] }}]
"""


def test_a_slow_load_reports_progress_and_tracebacks_skip_importlib(tmp_path):
    for name, code in (("slow", SLOW_MODEL), ("missing_import", "import no_such_module_here\n")):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "config.pbtxt").write_text(CONFIG.format(name=name))
        (tmp_path / name / "1" / "model.py").write_text(code)
    server = RunningServer([tmp_path], "--exit-on-error=false", wait_ready=False)
    try:
        deadline = time.monotonic() + 4
        while '"loading: slow:1"' not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert '"loading: slow:1"' in server.log()  # said when the load starts, not when it ends
        assert '"TRITONBACKEND_ModelInstanceInitialize: slow_0 (CPU device 0)"' in server.log()
        server.wait_listening()
        log = server.log()
        assert '"loading: slow:1, 5 s so far"' in log
        assert "\"successfully loaded 'slow'\"" in log and "\"failed to load 'missing_import'\"" in log
        assert "No module named 'no_such_module_here'" in log and "<frozen" not in log
        index = requests.post(f"http://{server.http}/v2/repository/index", timeout=5).json()
        reason = next(row["reason"] for row in index if row["name"] == "missing_import")
        assert "<frozen" not in reason and "model.py(1): <module>" in reason
    finally:
        server.stop()
