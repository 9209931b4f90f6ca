"""Serialized DALI pipelines for the DALI tests: the example repository's preprocessing pipeline
(checked in, readable without DALI) and variants of it edited through the PipelineDef schema."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT

from tritonlite.backends.dali.pipeline_def import parse

EXAMPLE = ROOT / "examples" / "dali_resnet_repository"
PREPROCESS = EXAMPLE / "resnet50_dali" / "1" / "model.dali"


def preprocess_bytes() -> bytes:
    return PREPROCESS.read_bytes()


def with_device(serialized: bytes, operator: str, device: str) -> bytes:
    """The pipeline as if ``operator`` had been serialized on ``device`` (a GPU pipeline, without a GPU)."""
    definition = parse(serialized)
    for op in definition.op:
        if op.name == operator:
            for arg in op.args:
                if arg.name == "device":
                    del arg.strings[:]
                    arg.strings.append(device)
            for out in op.output:
                out.device = "gpu"
    return definition.SerializeToString()


def with_declared_output(serialized: bytes, dtype: int, ndim: int) -> bytes:
    """The pipeline as if defined with ``output_dtype``/``output_ndim``."""
    definition = parse(serialized)
    for out in definition.pipe_outputs:
        out.dtype = dtype
        out.ndim = ndim
    return definition.SerializeToString()


def write_model(root: Path, name: str, config: str, serialized: bytes) -> Path:
    folder = root / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "1" / "model.dali").write_bytes(serialized)
    if config:
        (folder / "config.pbtxt").write_text(config)
    return folder
