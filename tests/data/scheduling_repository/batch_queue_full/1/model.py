"""Scheduling probe: reports what each execute() call saw.

Identical copy in every model of tests/data/scheduling_repository/ (behaviour is chosen by
the config parameters). Inputs: INPUT0 FP32 [-1] (values are ignored), optional
SLEEP_MS INT32 [1]. Outputs, per request (one row per batch element):
  BATCH INT32 [4] = [requests in this execute(), summed batch size of this execute(),
                     execute() index of this instance (1-based), position of the request
                     in this execute() (1-based)]
  ORDER INT32 [1] = global counter of requests this instance has executed (1-based,
                    warmup requests included)
Config parameters (all optional):
  SLEEP_MS          sleep this long in every execute() (default 0)
  SLEEP_FROM_INPUT  "true": additionally sleep max(SLEEP_MS input) of the batch
  RAISE             "true": execute() raises Exception("execute raised on purpose")
  ERROR_RESPONSE    "true": execute() answers every request with
                    TritonError("execute returned an error on purpose")
Every execute() appends one JSON line to $TRITONLITE_SCHED_LOG_DIR/<model>.jsonl
(default: the system temp dir) with the request ids, shapes and wall-clock times.
"""
import json
import os
import tempfile
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()}
        self.sleep_ms = float(params.get("SLEEP_MS", "0") or 0)
        self.sleep_from_input = params.get("SLEEP_FROM_INPUT", "").lower() == "true"
        self.raise_in_execute = params.get("RAISE", "").lower() == "true"
        self.error_response = params.get("ERROR_RESPONSE", "").lower() == "true"
        self.model_name = args["model_name"]
        self.instance = args["model_instance_name"]
        self.executes = 0
        self.requests_seen = 0
        log_dir = os.environ.get("TRITONLITE_SCHED_LOG_DIR", tempfile.gettempdir())
        self.log_path = os.path.join(log_dir, self.model_name + ".jsonl")
        self._log({"event": "initialize", "instance": self.instance, "pid": os.getpid(),
                   "t": time.time()})

    def _log(self, rec):
        with open(self.log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def execute(self, requests):
        t0 = time.time()
        self.executes += 1
        infos = []
        sleep_ms = self.sleep_ms
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0")
            s = pb_utils.get_input_tensor_by_name(r, "SLEEP_MS")
            arr = x.as_numpy() if x is not None else None
            info = {"id": r.request_id(),
                    "shape": list(arr.shape) if arr is not None else None,
                    "first_values": arr.reshape(-1)[:8].tolist() if arr is not None else None,
                    "sleep_input": s.as_numpy().reshape(-1).tolist() if s is not None else None}
            try:
                info["timeout_us"] = int(r.timeout())
            except Exception:  # noqa: BLE001 - older stubs
                pass
            if self.sleep_from_input and s is not None:
                sleep_ms = max(sleep_ms, float(np.max(s.as_numpy())))
            infos.append(info)
        total = sum((i["shape"][0] if i["shape"] else 0) for i in infos)
        if sleep_ms > 0:
            time.sleep(sleep_ms / 1000.0)
        rec = {"event": "execute", "instance": self.instance, "exec_index": self.executes,
               "n_requests": len(requests), "total_batch": total, "requests": infos,
               "t_start": t0, "t_end": time.time(), "sleep_ms": sleep_ms}
        self._log(rec)
        if self.raise_in_execute:
            raise Exception("execute raised on purpose")
        if self.error_response:
            return [pb_utils.InferenceResponse(
                output_tensors=[], error=pb_utils.TritonError("execute returned an error on purpose"))
                for _ in requests]
        responses = []
        for pos, info in enumerate(infos, start=1):
            b = info["shape"][0] if info["shape"] else 1
            self.requests_seen += 1
            batch = np.tile(np.asarray([[len(requests), total, self.executes, pos]], np.int32), (b, 1))
            order = np.full((b, 1), self.requests_seen, np.int32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("BATCH", batch),
                                                         pb_utils.Tensor("ORDER", order)]))
        return responses
