"""Model warmup (``model_warmup`` in config.pbtxt), with Triton's rules and error texts.

What Triton 2.51 does, and this module repeats (checked against the reference server):

* a sample with ``batch_size`` 0 (the default) is skipped; ``count`` 0 (the default) means once;
* a sample of batch size N is N requests sent to the backend together in one execute call, each
  request holding one batch row: shape ``[1] + dims`` when max_batch_size > 0, ``dims`` when not;
* ``zero_data`` is zeros; ``random_data`` is random bytes viewed as the datatype (so floats may be
  NaN or huge); for TYPE_STRING both are ``element count`` empty strings (Triton feeds 4 zero bytes
  per element); ``input_data_file`` is read from ``<model folder>/warmup/<file>``: raw bytes of the
  tensor (a longer file is cut), for TYPE_STRING the whole file as 4-byte-length-prefixed elements;
* an input the model does not declare is passed to the model anyway (Triton's "override" input);
* the data is made once per instance and the same requests run ``count`` times;
* each instance is warmed up, after it is initialized and before the model is READY; warmup
  executions count in the model's statistics.

Errors: problems building a sample are raised by ``warmup_requests`` with Triton's kind and text;
a failing execution makes ``run_warmup`` raise INVALID_ARG ``failed to run warmup sample '<name>':
<error>; <error>; `` (one ``<error>; `` per failed request). The manager puts ``status_text()`` of
either in the version's UNAVAILABLE reason, e.g. ``Invalid argument: failed to run warmup sample ...``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tritonlite.core.datatypes import CONFIG_TO_DATATYPE, ELEMENT_SIZE, bytes_array, element_count, numpy_dtype
from tritonlite.core.errors import TritonError, internal, invalid_arg
from tritonlite.core.types import InferRequest, InferResponse, InferTensor
from tritonlite.core.validation import tensor_spec, validate_request
from tritonlite.protocol import model_config_pb2 as mc

log = logging.getLogger(__name__)

WARMUP_FOLDER = "warmup"

# Triton's LogRequest() prefix for a request without an id
_PREFIX = "[request id: <id_unknown>] "


class WarmupSample(NamedTuple):
    """One ``model_warmup`` entry, ready to run: ``batch_size`` requests executed together ``count`` times.

    ``error`` is set when the data passes Triton's request checks but the backend would refuse
    each request (it is reported for every request when the sample runs, as Triton does).
    """

    name: str
    count: int
    requests: list[InferRequest]
    error: str | None = None


def warmup_requests(config: mc.ModelConfig, model_path: Path | str, version: int | str = "") -> list[WarmupSample]:
    """The warmup samples of a model, each with its ``batch_size`` requests; raises Triton's errors."""
    model_path = Path(model_path)
    model_name = config.name
    batching = config.max_batch_size > 0
    inputs = {t.name: tensor_spec(t) for t in config.input}
    outputs = {t.name: tensor_spec(t) for t in config.output}
    required = sum(1 for spec in inputs.values() if not spec.optional)
    position = {name: index for index, name in enumerate(inputs)}
    rng = np.random.default_rng()
    samples: list[WarmupSample] = []
    for setting in config.model_warmup:
        if setting.batch_size == 0:
            log.debug("Skipping batch 0 warmup sample '%s'", setting.name)
            continue
        # a protobuf map has no order: take the model's inputs in config order, then the others by name
        names = sorted(setting.inputs, key=lambda n: (n not in position, position.get(n, 0), n))
        for name in names:
            if any(d < 0 for d in setting.inputs[name].dims):
                raise invalid_arg(
                    f"warmup setting expects all variable-size dimensions are specified for input '{name}'"
                )
        tensors: list[InferTensor] = []
        overrides: list[InferTensor] = []
        files: dict[str, bytes] = {}  # BYTES inputs read from files, split once the request checks pass
        for name in names:
            meta = setting.inputs[name]
            datatype = CONFIG_TO_DATATYPE.get(mc.DataType.Name(meta.data_type), "INVALID")
            dims = list(meta.dims)
            shape = [1, *dims] if batching else dims
            data, content = _input_data(name, meta, datatype, dims, model_path, rng)
            if content is not None:
                files[name] = content
            if data.size == element_count(shape):
                data = data.reshape(shape)
            (tensors if name in inputs else overrides).append(InferTensor(name, datatype, shape, data))
        probe = InferRequest(model_name, str(version), inputs=tensors)
        validate_request(probe, model_name, inputs, outputs, required, config.max_batch_size)
        error = None
        for tensor in tensors:
            if tensor.name in files:
                tensor.data, bad = _parse_bytes(files[tensor.name], tensor, model_name)
                error = error or bad
        all_tensors = overrides + tensors  # Triton lists override inputs first
        requests = [InferRequest(model_name, str(version), inputs=list(all_tensors)) for _ in range(setting.batch_size)]
        samples.append(WarmupSample(setting.name, setting.count or 1, requests, error))
    return samples


def _input_data(
    name: str, meta: Any, datatype: str, dims: list[int], model_path: Path, rng: np.random.Generator
) -> tuple[np.ndarray, bytes | None]:
    """An input's elements (flat), and for a BYTES input read from a file the file's bytes."""
    count = element_count(dims)
    kind = meta.WhichOneof("input_data_type")
    if kind not in ("zero_data", "random_data", "input_data_file"):
        raise invalid_arg(f"{_PREFIX}warmup setting expects input '{name}' to have input_data_type set")
    if datatype == "INVALID":  # no numpy type: Triton sends 4 bytes per element, the request checks refuse it
        return np.zeros(count * 4, np.uint8), None
    content = None
    if kind == "input_data_file":
        path = model_path / WARMUP_FOLDER / meta.input_data_file
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise internal(f"failed to open text file for read {path}: {exc.strerror}") from None
    if datatype == "BYTES":  # zero and random data are 4 zero bytes per element: empty strings
        return bytes_array([b""] * count, [count]), content
    dtype = numpy_dtype(datatype)
    size = count * ELEMENT_SIZE[datatype]
    if kind == "zero_data":
        return np.zeros(count, dtype), None
    if kind == "random_data":
        raw = rng.integers(0, 256, size, dtype=np.uint8)
        return (raw.astype(np.bool_) if datatype == "BOOL" else raw.view(dtype)), None
    if size > len(content):
        raise invalid_arg(
            f"{_PREFIX}warmup setting expects {size} bytes, but the data provided from "
            f"{meta.input_data_file}only has {len(content)} bytes"
        )
    return np.frombuffer(content[:size], dtype).copy(), None


def _parse_bytes(content: bytes, tensor: InferTensor, model_name: str) -> tuple[np.ndarray, str | None]:
    """Split a file of length-prefixed elements, with Triton's checks (the core's, then the backend's)."""
    expected = element_count(tensor.shape)
    where = f"for inference input '{tensor.name}' for model '{model_name}'"
    items: list[bytes] = []
    error = None
    offset = 0
    found = 0
    while offset < len(content):
        left = len(content) - offset
        if left < 4:
            raise invalid_arg(
                f"{_PREFIX}incomplete string length indicator {where}, expecting 4 bytes but only {left} bytes "
                "available. Please make sure the string length indicator is in one buffer."
            )
        (length,) = struct.unpack_from("<I", content, offset)
        offset += 4
        found += 1
        if found > expected:
            raise invalid_arg(f"{_PREFIX}unexpected number of string elements {found} {where}, expecting {expected}")
        if length > len(content) - offset:
            # Triton's request checks let this through; the python backend then refuses the request
            error = (
                f"incomplete string data for inference input '{tensor.name}', expecting string of length "
                f"{length} but only {len(content) - offset} bytes available"
            )
            break
        items.append(content[offset : offset + length])
        offset += length
    if found != expected:
        raise invalid_arg(f"{_PREFIX}expected {expected} string elements {where}, got {found}")
    items += [b""] * (expected - len(items))
    return bytes_array(items, tensor.shape), error


# --- running ---------------------------------------------------------------------------------------


async def run_warmup(model: Any, runners: list[Any] | None = None) -> None:
    """Run a loaded version's warmup samples; raises the TritonError Triton would make the load fail with.

    ``model`` is a ``ModelVersion`` (config, model_path, name, version_str, scheduler, stats).
    With ``runners`` (the version's instance runners, each with ``name`` and
    ``async execute(requests)``), every instance is warmed up on its own, each sample's
    requests going to it in one execute call: exactly Triton's behaviour. Without, the samples
    go through ``model.scheduler.enqueue`` (each request on its own; a sample's requests are sent
    together, so a dynamic batcher may batch them), once, not once per instance.
    """
    config = model.config
    if config is None or not any(setting.batch_size for setting in config.model_warmup):
        return
    stats = model.stats
    if runners is None:
        samples = warmup_requests(config, model.model_path, model.version_str)
        instance = _first_instance_name(model)
        for sample in samples:
            await _run_sample(model, sample, instance, lambda requests: _through_scheduler(model, requests))
        return
    for runner in runners:
        samples = warmup_requests(config, model.model_path, model.version_str)  # fresh random data per instance
        for sample in samples:
            await _run_sample(
                model, sample, runner.name, lambda requests, runner=runner: runner.execute(requests), stats, runner
            )


async def _run_sample(
    model: Any,
    sample: WarmupSample,
    instance: str,
    execute: Callable[[list[InferRequest]], Awaitable[list[InferResponse | TritonError]]],
    stats: Any = None,
    runner: Any = None,
) -> None:
    """Run one sample ``count`` times; ``stats`` is given when ``execute`` does not count executions itself."""
    config = model.config
    batch_size = len(sample.requests)
    error = sample.error
    if batch_size > max(config.max_batch_size, 1):  # the python backend refuses the whole execution
        error = f"batch size {batch_size} for '{instance}', max allowed is {config.max_batch_size}"
    if error is not None:
        raise _sample_failed(sample.name, [error] * batch_size)
    for iteration in range(1, sample.count + 1):
        log.debug(
            "model '%s' instance %s is running warmup sample '%s' for iteration %d",
            model.name,
            instance,
            sample.name,
            iteration,
        )
        requests = [_copy(request) for request in sample.requests]
        start = time.monotonic_ns()
        for request in requests:
            request.arrival_ns = start
        results = await execute(requests)
        if stats is not None:
            _record(stats, results, runner, start)
        errors = [result.message for result in results if isinstance(result, TritonError)]
        if errors:
            log.debug("model '%s' instance %s failed to run warmup sample '%s'", model.name, instance, sample.name)
            raise _sample_failed(sample.name, errors)


def _sample_failed(name: str, errors: list[str]) -> TritonError:
    return invalid_arg(f"failed to run warmup sample '{name}': " + "".join(f"{error}; " for error in errors))


async def _through_scheduler(model: Any, requests: list[InferRequest]) -> list[InferResponse | TritonError]:
    stats = model.stats

    async def one(request: InferRequest) -> InferResponse | TritonError:
        start = time.monotonic_ns()
        try:
            result = await model.scheduler.enqueue(request)
        except TritonError as exc:
            result = exc
        if isinstance(result, TritonError):
            stats.record_failure(time.monotonic_ns() - start, "BACKEND")
        else:
            stats.record_success(time.monotonic_ns() - start)
        return result

    return list(await asyncio.gather(*(one(request) for request in requests)))


def _record(stats: Any, results: list[InferResponse | TritonError], runner: Any, start: int) -> None:
    """Count one warmup execution as Triton does: in the version's statistics (each request is one row)."""
    elapsed = time.monotonic_ns() - start
    for _ in results:
        stats.record_queue(0)
    timings = getattr(runner, "last_timings", None) or (0, elapsed, 0)
    stats.record_execution(len(results), len(results), *timings)
    for result in results:
        if isinstance(result, TritonError):
            stats.record_failure(elapsed, "BACKEND")
        else:
            stats.record_success(elapsed)


def _copy(request: InferRequest) -> InferRequest:
    """A fresh request over the same tensors (schedulers may set fields on the request they run)."""
    tensors = [InferTensor(t.name, t.datatype, list(t.shape), t.data) for t in request.inputs]
    return InferRequest(request.model_name, request.model_version, request.id, tensors)


def _first_instance_name(model: Any) -> str:
    """The name the loader gives the first instance of the first instance group."""
    groups = model.config.instance_group
    return f"{groups[0].name}_0" if groups else f"{model.name}_0"
