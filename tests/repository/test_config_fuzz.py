"""Fuzz of config.pbtxt reading, completion and validation: a mangled config is a TritonError, never
another exception."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonlite.core.errors import TritonError
from tritonlite.repository.config import complete_config, read_config, validate_config

VALID = """
name: "m"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape: { shape: [ 4, -1 ] } } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ 4 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 100 }
version_policy: { specific: { versions: [ 1, 3 ] } }
parameters: { key: "EXECUTION_ENV_PATH" value: { string_value: "$$TRITON_MODEL_DIRECTORY/env.tar.gz" } }
"""


def loads_or_refuses(folder: Path, blob: bytes) -> None:
    (folder / "config.pbtxt").write_bytes(blob)
    try:
        config = read_config(folder, False, folder.parent)
        complete_config(config, "m")
        validate_config(config, "m")
    except TritonError:
        pass


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, len(VALID)), st.integers(0, 30), st.text(max_size=12), st.binary(max_size=16))
def test_mangled_configs(tmp_path_factory, position, cut, inserted, prefix):
    folder = tmp_path_factory.mktemp("fuzz") / "m"
    folder.mkdir()
    text = VALID[:position] + inserted + VALID[position + cut :]
    loads_or_refuses(folder, text.encode("utf-8", "surrogatepass"))
    loads_or_refuses(folder, prefix + text.encode("utf-8", "surrogatepass")[:position])
