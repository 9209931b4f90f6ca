"""Triton's DALI backend: ``1/model.dali``, a serialized DALI pipeline, run as a model.

Each request's batch items become the samples of the pipeline's external sources (a batch of
requests is one pipeline run: up to ``max_batch_size`` samples, of any shapes when the input
allows ragged batches); the pipeline's outputs go back to each request, its samples stacked.
DALI is imported only when a DALI model loads (``pip install tritonlite[dali]``). KIND_CPU
instances build the pipeline with ``device_id=None``; a pipeline with GPU or mixed operators then
fails to load, naming the operator. A failed run leaves a DALI pipeline unusable: it is rebuilt,
and the requests of a failed batch are retried one by one, so one bad image fails only its request.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritonlite.backends.base import BackendInstance, InstanceSpec
from tritonlite.backends.dali.config import (
    complete_from_pipeline,
    explicit_max_batch_size,
    validate_against_pipeline,
)
from tritonlite.backends.dali.pipeline_def import PipelineInfo, describe
from tritonlite.backends.framework import backend_missing, int_parameter
from tritonlite.core.datatypes import CONFIG_TO_DATATYPE, numpy_dtype
from tritonlite.core.errors import TritonError, internal, invalid_arg, unavailable
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.protocol import model_config_pb2 as mc

log = logging.getLogger(__name__)

DEFAULT_FILENAME = "model.dali"
# DALI's own error texts run to many lines (the pipeline's traceback); a response keeps the head
_MAX_ERROR_CHARS = 2000


def import_dali() -> Any:
    try:
        from nvidia.dali.pipeline import Pipeline
    except ImportError as exc:
        raise backend_missing("nvidia-dali", "dali", "dali", exc) from None
    return Pipeline


def model_file(version_path: Path, config: mc.ModelConfig) -> Path:
    return version_path / (config.default_model_filename or DEFAULT_FILENAME)


def read_pipeline(path: Path, model_name: str) -> tuple[bytes, PipelineInfo]:
    if not path.is_file():
        raise unavailable(f"unable to find '{path}' for model '{model_name}'")
    serialized = path.read_bytes()
    try:
        return serialized, describe(serialized)
    except ValueError as exc:
        raise invalid_arg(f"failed to load DALI pipeline '{path}' of model '{model_name}': {exc}") from None


def complete_dali_config(
    config: mc.ModelConfig, model_path: Path, version_path: Path | None, settings: dict[str, dict[str, str]]
) -> mc.ModelConfig:
    """Auto-complete from the pipeline (no DALI import: the pipeline file describes itself)."""
    if version_path is None:
        return config
    path = model_file(version_path, config)
    if not path.is_file():
        return config  # reported when the version loads
    _, info = read_pipeline(path, config.name or model_path.name)
    completed = mc.ModelConfig()
    completed.CopyFrom(config)
    complete_from_pipeline(completed, info, explicit_max_batch_size(model_path))
    return completed


def dali_error(exc: BaseException) -> TritonError:
    # DALI's last line says the pipeline is no longer valid: not for the client, the instance rebuilds it
    text = str(exc).replace("Current pipeline object is no longer valid.", "").strip()
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + " ..."
    return internal(f"DALI error: {text}")


@dataclass(frozen=True)
class _Input:
    name: str
    is_bytes: bool
    dtype: np.dtype | None  # what the external source is fed (None for bytes: UINT8 samples)


@dataclass(frozen=True)
class _Output:
    name: str
    datatype: str
    dtype: np.dtype


class DaliInstance(BackendInstance):
    """One DALI pipeline, on the CPU (``device_id=None``) or the instance's GPU."""

    def __init__(self, spec: InstanceSpec) -> None:
        config = spec.config
        self.model_name = spec.model_name
        self.version = str(spec.version)
        self.batched = config.max_batch_size > 0
        self.serialized, info = read_pipeline(model_file(spec.version_path, config), spec.model_name)
        validate_against_pipeline(config, info)
        self.device_id: int | None = spec.device_id if spec.kind == "GPU" else None
        if self.device_id is None:
            for op in info.operators:
                if op.needs_gpu:
                    shown = op.display or op.name
                    raise invalid_arg(
                        f"model '{spec.model_name}': DALI operator '{shown}' (instance '{op.instance}') runs on "
                        f"device '{op.device}', which needs a GPU, but instance '{spec.instance_name}' runs on "
                        "the CPU (KIND_CPU, no device); serialize the pipeline with device='cpu' operators or "
                        "give the model a KIND_GPU instance group on a machine with a GPU"
                    )
        self.inputs = [
            _Input(t.name, t.data_type == mc.TYPE_STRING, None if t.data_type == mc.TYPE_STRING else _dtype(t))
            for t in config.input
        ]
        self.outputs = [_Output(t.name, _datatype(t), _dtype(t)) for t in config.output]
        self.max_samples = max(config.max_batch_size, 1)
        self.num_threads = int_parameter(config, "num_threads", max(info.num_threads, 1), spec.model_name)
        if self.num_threads < 1:
            raise invalid_arg(f"parameter 'num_threads' of model '{spec.model_name}' must be at least 1")
        self.Pipeline = import_dali()
        self.pipeline = self._build()
        self.may_run_inline = False  # a pipeline run takes milliseconds: keep it off the event loop

    def _build(self) -> Any:
        """A fresh pipeline; synchronous and unprefetched: one run per execute, nothing held between."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline = self.Pipeline.deserialize(
                    serialized_pipeline=self.serialized,
                    max_batch_size=self.max_samples,
                    num_threads=self.num_threads,
                    device_id=self.device_id,
                    exec_async=False,
                    exec_pipelined=False,
                    prefetch_queue_depth=1,
                )
                pipeline.build()
        except TritonError:
            raise
        except Exception as exc:
            raise invalid_arg(f"failed to build the DALI pipeline of model '{self.model_name}': {exc}") from None
        return pipeline

    # -- requests -> samples -> requests --------------------------------------------------------

    def _samples(self, request: InferRequest) -> tuple[dict[str, list[np.ndarray]], int]:
        """Each input's samples for one request, and how many there are."""
        tensors = {tensor.name: tensor for tensor in request.inputs}
        samples: dict[str, list[np.ndarray]] = {}
        count = -1
        for spec in self.inputs:
            tensor = tensors.get(spec.name)
            if tensor is None:
                raise invalid_arg(f"expected input '{spec.name}' for model '{self.model_name}'")
            data = tensor.data
            items = [data[i] for i in range(data.shape[0])] if self.batched else [data]
            if spec.is_bytes:
                items = [_encoded(item, spec.name) for item in items]
            else:
                items = [np.ascontiguousarray(item) for item in items]
            if count not in (-1, len(items)):
                raise invalid_arg(
                    f"inputs of model '{self.model_name}' have different batch sizes ({count} and {len(items)})"
                )
            count = len(items)
            samples[spec.name] = items
        return samples, max(count, 0)

    def _run(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        fed: dict[str, list[np.ndarray]] = {spec.name: [] for spec in self.inputs}
        counts = []
        for request in requests:
            samples, count = self._samples(request)
            for name, items in samples.items():
                fed[name].extend(items)
            counts.append(count)
        if sum(counts) > self.max_samples:
            raise invalid_arg(
                f"batch of {sum(counts)} samples exceeds max_batch_size {self.max_samples} of model '{self.model_name}'"
            )
        for name, items in fed.items():
            self.pipeline.feed_input(name, items)
        produced = self.pipeline.run()
        per_output = [_to_samples(result) for result in produced]
        responses: list[InferResponse | TritonError] = []
        start = 0
        for request, count in zip(requests, counts, strict=True):
            try:
                responses.append(self._response(request, per_output, start, count))
            except TritonError as exc:
                responses.append(exc)
            start += count
        return responses

    def _response(
        self, request: InferRequest, per_output: list[list[np.ndarray]], start: int, count: int
    ) -> InferResponse:
        wanted = {out.name for out in request.outputs} if request.outputs else None
        tensors = []
        for spec, samples in zip(self.outputs, per_output, strict=True):
            if wanted is not None and spec.name not in wanted:
                continue
            mine = samples[start : start + count]
            shapes = {sample.shape for sample in mine}
            if len(shapes) > 1:
                raise invalid_arg(
                    f"output '{spec.name}' of model '{self.model_name}' has samples of different shapes in one "
                    f"request ({', '.join(str(list(s)) for s in sorted(shapes))}); send them in separate requests"
                )
            if mine and mine[0].dtype != spec.dtype:
                raise internal(
                    f"output '{spec.name}' of model '{self.model_name}': the pipeline produces {mine[0].dtype}, "
                    f"the configuration declares {spec.datatype}"
                )
            array = np.stack(mine) if self.batched else mine[0]
            tensors.append(InferTensor(spec.name, spec.datatype, list(array.shape), array))
        return InferResponse(request.model_name, self.version, request.id, tensors)

    def execute(self, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
        started = time.perf_counter_ns()
        try:
            results = self._run(requests)
        except TritonError as exc:
            results = self._one_by_one(requests, exc)
        except Exception as exc:  # DALI's own error: the pipeline is no longer usable
            self.pipeline = self._build()
            results = self._one_by_one(requests, dali_error(exc))
        self.timings = (0, time.perf_counter_ns() - started, 0)
        return results

    def _one_by_one(self, requests: list[InferRequest], error: TritonError) -> list[InferResponse | TritonError]:
        """After a failed batch: each request alone, so only the ones at fault fail."""
        if len(requests) == 1:
            return [error]
        results: list[InferResponse | TritonError] = []
        for request in requests:
            try:
                results.extend(self._run([request]))
            except TritonError as exc:
                results.append(exc)
            except Exception as exc:
                self.pipeline = self._build()
                results.append(dali_error(exc))
        return results

    def finalize(self) -> None:
        self.pipeline = None


def _datatype(tensor: mc.ModelInput | mc.ModelOutput) -> str:
    return CONFIG_TO_DATATYPE[mc.DataType.Name(tensor.data_type)]


def _dtype(tensor: mc.ModelInput | mc.ModelOutput) -> np.dtype:
    return numpy_dtype(_datatype(tensor))


def _encoded(item: Any, name: str) -> np.ndarray:
    """One BYTES batch item (one element) as the UINT8 sample DALI decodes."""
    flat = np.asarray(item, dtype=object).reshape(-1)
    if flat.size != 1:
        raise invalid_arg(f"input '{name}' holds {flat.size} elements per batch item; a DALI sample is one element")
    value = flat[0]
    if isinstance(value, str):
        value = value.encode("utf-8")
    return np.frombuffer(bytes(value), dtype=np.uint8)


def _to_samples(result: Any) -> list[np.ndarray]:
    """A DALI TensorList (CPU or GPU) as one numpy array per sample."""
    if hasattr(result, "as_cpu"):
        result = result.as_cpu()
    return [np.array(result[i]) for i in range(len(result))]
