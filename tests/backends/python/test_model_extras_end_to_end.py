"""Python backend additions of newer Triton releases, through a real server: custom metrics
(``pb_utils.MetricFamily``) on the metrics port, response parameters on HTTP and gRPC, and a
model's ``is_ready()`` in its readiness. Thread and process mode alike.

The expected exposition of ``metr`` is what Triton 2.51 served for the same model and requests
(values 0.2, 2.0 and 0.7 sent as FP32).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from serverutil import RunningServer

METRICS_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        prefix = args["model_name"]
        self.c = pb_utils.MetricFamily(name=prefix + "_requests_total", description="requests seen",
                                       kind=pb_utils.MetricFamily.COUNTER)
        self.g = pb_utils.MetricFamily(name=prefix + "_last_value", description="last value",
                                       kind=pb_utils.MetricFamily.GAUGE)
        self.h = pb_utils.MetricFamily(name=prefix + "_value_hist", description="values",
                                       kind=pb_utils.MetricFamily.HISTOGRAM)
        self.cm = self.c.Metric(labels={"model": "metr", "version": "1"})
        self.gm = self.g.Metric(labels={"model": "metr"})
        self.hm = self.h.Metric(labels={"model": "metr"}, buckets=[0.5, 1.0, 10.0])
        self.cm2 = self.c.Metric(labels={})
        try:
            self.cm.increment(-1)
        except pb_utils.TritonModelException as exc:
            self.refused = str(exc)

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            v = float(x.reshape(-1)[0])
            self.cm.increment(1)
            self.gm.set(v)
            self.hm.observe(v)
            parameters = {"count": int(self.cm.value()), "refused": self.refused, "even": int(self.cm.value()) % 2 == 0}
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)], parameters=parameters))
        return out
"""

NOT_READY_MODEL = """
import os
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def is_ready(self):
        return not os.path.exists(os.environ["TL_NOT_READY_FLAG"])

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.get_input_tensor_by_name(r, "INPUT0")]) for r in requests]
"""

CONFIG = (
    'backend: "python"\nmax_batch_size: 0\n'
    'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
    'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
)
PROCESS = 'parameters { key: "TRITONLITE_INSTANCE_MODE" value: { string_value: "process" } }\n'

# What Triton 2.51 served for the same model and requests (the family names there: custom_*)
EXPECTED = """\
# HELP {p}_requests_total requests seen
# TYPE {p}_requests_total counter
{p}_requests_total 0
{p}_requests_total{{model="metr",version="1"}} 3
# HELP {p}_last_value last value
# TYPE {p}_last_value gauge
{p}_last_value{{model="metr"}} 0.699999988079071
# HELP {p}_value_hist values
# TYPE {p}_value_hist histogram
{p}_value_hist_count{{model="metr"}} 3
{p}_value_hist_sum{{model="metr"}} 2.899999991059303
{p}_value_hist_bucket{{model="metr",le="0.5"}} 1
{p}_value_hist_bucket{{model="metr",le="1"}} 2
{p}_value_hist_bucket{{model="metr",le="10"}} 3
{p}_value_hist_bucket{{model="metr",le="+Inf"}} 3
"""
REFUSED = (
    "Failed to increment metric value: Failed to process the request for model '{p}_0', message: "
    "TRITONSERVER_METRIC_KIND_COUNTER can only be incremented monotonically by non-negative values."
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("extras")
    flag = root / "not_ready"
    models = {
        "metr": (METRICS_MODEL, CONFIG),
        "metrproc": (METRICS_MODEL, CONFIG + PROCESS),
        "readiness": (NOT_READY_MODEL, CONFIG),
    }
    for name, (code, config) in models.items():
        (root / "repo" / name / "1").mkdir(parents=True)
        (root / "repo" / name / "1" / "model.py").write_text(code)
        (root / "repo" / name / "config.pbtxt").write_text(config)
    os.environ["TL_NOT_READY_FLAG"] = str(flag)
    try:
        running = RunningServer([root / "repo"])
    finally:
        del os.environ["TL_NOT_READY_FLAG"]
    running.flag = flag
    yield running
    running.stop()


def custom_lines(server, prefix: str) -> str:
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    return "".join(line + "\n" for line in text.splitlines() if _name(line).startswith(prefix))


def _name(line: str) -> str:
    return line.split(" ")[2] if line.startswith("#") else line.split("{")[0].split(" ")[0]


def http_infer(server, model: str, value: float) -> dict:
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [value]}]}
    answer = requests.post(f"http://{server.http}/v2/models/{model}/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("model", ["metr", "metrproc"])
def test_custom_metrics_on_the_metrics_port(server, model):
    answers = [http_infer(server, model, value) for value in (0.2, 2.0, 0.7)]
    assert custom_lines(server, model + "_") == EXPECTED.format(p=model)
    assert [a["parameters"]["count"] for a in answers] == [1, 2, 3]
    assert answers[0]["parameters"]["refused"] == REFUSED.format(p=model)


@pytest.mark.parametrize("model", ["metr", "metrproc"])
def test_response_parameters_reach_http_and_grpc(server, model):
    http_answer = http_infer(server, model, 1.0)
    count = http_answer["parameters"]["count"]
    assert http_answer["parameters"]["even"] is (count % 2 == 0)
    client = grpcclient.InferenceServerClient(server.grpc)
    tensor = grpcclient.InferInput("INPUT0", [1], "FP32")
    tensor.set_data_from_numpy(np.ones([1], np.float32))
    response = client.infer(model, [tensor]).get_response()
    assert response.parameters["count"].int64_param == count + 1
    assert response.parameters["even"].bool_param is ((count + 1) % 2 == 0)
    assert response.parameters["refused"].string_param.startswith("Failed to increment metric value")


def test_model_is_ready_decides_its_readiness(server):
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    assert http.is_model_ready("readiness") and grpc.is_model_ready("readiness")
    Path(server.flag).touch()
    try:
        assert not http.is_model_ready("readiness") and not grpc.is_model_ready("readiness")
        assert requests.get(f"http://{server.http}/v2/models/readiness/ready", timeout=5).status_code == 400
    finally:
        Path(server.flag).unlink()
    assert http.is_model_ready("readiness")
    assert http.is_model_ready("metr")  # a model without is_ready() is ready


def test_metrics_of_an_unloaded_model_go(tmp_path):
    (tmp_path / "repo" / "gone" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "gone" / "1" / "model.py").write_text(METRICS_MODEL)
    (tmp_path / "repo" / "gone" / "config.pbtxt").write_text(CONFIG)
    server = RunningServer([tmp_path / "repo"], "--model-control-mode=explicit", "--load-model=gone")
    try:
        http_infer(server, "gone", 1.0)
        assert "gone_requests_total 0\n" in custom_lines(server, "gone_")
        assert requests.post(f"http://{server.http}/v2/repository/models/gone/unload", timeout=30).status_code == 200
        assert custom_lines(server, "gone_") == ""
    finally:
        server.stop()
    assert json.dumps(server.log()).count("Traceback") == 0
