"""Response cache through a real server: hits skip the model, statistics and metrics as Triton."""

from __future__ import annotations

import shutil

import numpy as np
import requests
import tritonclient.http as httpclient
from conftest import EXAMPLES
from serverutil import RunningServer


def test_cache_hits_skip_execution_and_are_counted(tmp_path):
    shutil.copytree(EXAMPLES / "add_sub", tmp_path / "add_sub")
    with (tmp_path / "add_sub" / "config.pbtxt").open("a") as handle:
        handle.write("\nresponse_cache { enable: true }\n")
    server = RunningServer([tmp_path], "--cache-config=local,size=1048576")
    try:
        client = httpclient.InferenceServerClient(server.http)

        def infer(value: float):
            inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
            inputs[0].set_data_from_numpy(np.full(4, value, np.float32))
            inputs[1].set_data_from_numpy(np.ones(4, np.float32))
            return client.infer("add_sub", inputs).as_numpy("OUTPUT0")

        for value in (1.0, 1.0, 1.0, 2.0):
            np.testing.assert_array_equal(infer(value), np.full(4, value + 1, np.float32))
        stats = client.get_inference_statistics("add_sub")["model_stats"][0]
        metrics = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    finally:
        server.stop()
    # Triton 2.51 for the same workload: 4 successes, 2 executions, 2 hits, 2 misses
    assert stats["inference_stats"]["success"]["count"] == 4
    assert stats["execution_count"] == 2 and stats["inference_count"] == 2
    assert stats["inference_stats"]["cache_hit"]["count"] == 2
    assert stats["inference_stats"]["cache_miss"]["count"] == 2
    assert 'nv_cache_num_hits_per_model{model="add_sub",version="1"} 2' in metrics
    assert 'nv_cache_num_misses_per_model{model="add_sub",version="1"} 2' in metrics
    assert "nv_cache_num_entries 2" in metrics and "# TYPE nv_cache_util gauge" in metrics
