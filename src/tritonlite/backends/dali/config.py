"""A DALI model's config against its pipeline: auto-complete and the checks at load, as Triton's
DALI backend (``config_tools``) does them.

Inputs are the pipeline's external sources, matched by name; outputs are the pipeline's outputs,
matched by position. Auto-complete fills what the pipeline declares (an external source's
``dtype``/``ndim``, a pipeline's ``output_dtype``/``output_ndim``), marks new inputs
``allow_ragged_batch``, names new outputs ``DALI_OUTPUT_<i>`` and takes ``max_batch_size`` from
the pipeline when the config does not set it. A ``TYPE_STRING`` input feeds each element's bytes
as one sample (an encoded image per element).
"""

from __future__ import annotations

import re
from pathlib import Path

from tritonlite.backends.dali.pipeline_def import PipelineInfo, PipelineTensor
from tritonlite.core.errors import invalid_arg
from tritonlite.core.reshape import shape_text
from tritonlite.protocol import model_config_pb2 as mc

OUTPUT_PREFIX = "DALI_OUTPUT_"
STRING = "TYPE_STRING"
_MAX_BATCH = re.compile(r"^\s*max_batch_size\s*:\s*(-?\d+)", re.MULTILINE)


def explicit_max_batch_size(model_path: Path) -> int | None:
    """The max_batch_size config.pbtxt writes out (0 there means: no batching), or None."""
    try:
        found = _MAX_BATCH.search((model_path / "config.pbtxt").read_text(errors="replace"))
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _type_name(tensor: mc.ModelInput | mc.ModelOutput) -> str:
    return mc.DataType.Name(tensor.data_type)


def _match_dims(name: str, config_dims: list[int], pipeline_dims: list[int]) -> list[int]:
    if len(config_dims) != len(pipeline_dims):
        raise invalid_arg(
            f'Mismatch in number of dimensions for "{name}"\nNumber of dimensions defined in config: '
            f"{len(config_dims)}\nNumber of dimensions defined in pipeline: {len(pipeline_dims)}"
        )
    merged = []
    for config_dim, pipeline_dim in zip(config_dims, pipeline_dims, strict=True):
        if config_dim != pipeline_dim and -1 not in (config_dim, pipeline_dim):
            raise invalid_arg(
                f"Mismatch in dims for {name}\nDims defined in config: {shape_text(config_dims)}\n"
                f"Dims defined in pipeline: {shape_text(pipeline_dims)}"
            )
        merged.append(max(config_dim, pipeline_dim))
    return merged


def _check_type(name: str, config_type: str, pipeline: PipelineTensor, is_input: bool) -> None:
    if pipeline.config_type is None or config_type == pipeline.config_type:
        return
    if is_input and config_type == STRING and pipeline.config_type == "TYPE_UINT8":
        return  # encoded bytes per element, fed as UINT8 samples
    raise invalid_arg(
        f'Mismatch of data_type config for "{name}".\nData type defined in config: {config_type}\n'
        f"Data type defined in pipeline: {pipeline.config_type}"
    )


def _fill(tensor: mc.ModelInput | mc.ModelOutput, pipeline: PipelineTensor, is_input: bool) -> None:
    config_type = _type_name(tensor)
    if config_type != "TYPE_INVALID":
        _check_type(tensor.name, config_type, pipeline, is_input)
    elif pipeline.config_type is not None:
        tensor.data_type = mc.DataType.Value(pipeline.config_type)
    if pipeline.dims is None or _type_name(tensor) == STRING:
        return
    if len(tensor.dims):
        merged = _match_dims(tensor.name, list(tensor.dims), pipeline.dims)
        del tensor.dims[:]
        tensor.dims.extend(merged)
    else:
        tensor.dims.extend(pipeline.dims)


def _unknown_inputs(config: mc.ModelConfig, info: PipelineInfo) -> None:
    names = {tensor.name for tensor in info.inputs}
    for tensor in config.input:
        if tensor.name not in names:
            raise invalid_arg(
                f"Configuration file contains config for {tensor.name} but such input is not present in the pipeline."
            )


def _output_count(config: mc.ModelConfig, info: PipelineInfo, exact: bool) -> None:
    count = len(config.output)
    if count > len(info.outputs) or (exact and count != len(info.outputs)):
        raise invalid_arg(
            "The number of outputs specified in the DALI pipeline and the configuration file do not match."
            f"\nModel config outputs: {count}\nPipeline outputs: {len(info.outputs)}"
        )


def complete_from_pipeline(config: mc.ModelConfig, info: PipelineInfo, explicit_batch: int | None) -> None:
    """Triton's DALI auto-complete, in place."""
    _unknown_inputs(config, info)
    by_name = {tensor.name: tensor for tensor in config.input}
    for pipeline_input in info.inputs:
        tensor = by_name.get(pipeline_input.name)
        if tensor is None:
            tensor = config.input.add(name=pipeline_input.name, allow_ragged_batch=True)
        _fill(tensor, pipeline_input, is_input=True)
    _output_count(config, info, exact=False)
    for index, pipeline_output in enumerate(info.outputs):
        if index < len(config.output):
            tensor = config.output[index]
        else:
            tensor = config.output.add(name=f"{OUTPUT_PREFIX}{index}")
        _fill(tensor, pipeline_output, is_input=False)
    if explicit_batch is None and config.max_batch_size == 0:
        config.max_batch_size = max(info.max_batch_size, 0)


def validate_against_pipeline(config: mc.ModelConfig, info: PipelineInfo) -> None:
    """Triton's DALI checks at load: every external source configured with a data type and dims
    that fit the pipeline, and as many outputs as the pipeline has."""
    _unknown_inputs(config, info)
    by_name = {tensor.name: tensor for tensor in config.input}
    for pipeline_input in info.inputs:
        tensor = by_name.get(pipeline_input.name)
        if tensor is None:
            raise invalid_arg(f'Missing config for "{pipeline_input.name}" input.')
        _validate(tensor, pipeline_input, is_input=True)
    _output_count(config, info, exact=True)
    for tensor, pipeline_output in zip(config.output, info.outputs, strict=True):
        _validate(tensor, pipeline_output, is_input=False)


def _validate(tensor: mc.ModelInput | mc.ModelOutput, pipeline: PipelineTensor, is_input: bool) -> None:
    config_type = _type_name(tensor)
    if config_type == "TYPE_INVALID":
        raise invalid_arg(f'Missing data_type config for "{tensor.name}"')
    _check_type(tensor.name, config_type, pipeline, is_input)
    if not len(tensor.dims):
        raise invalid_arg(f'Missing dims config for "{tensor.name}"')
    if pipeline.dims is not None and config_type != STRING:
        _match_dims(tensor.name, list(tensor.dims), pipeline.dims)
