"""Reading a serialized DALI pipeline without DALI: external sources, outputs, operators, settings."""

from __future__ import annotations

import pytest
from dali_pipelines import preprocess_bytes, with_declared_output, with_device

from tritonlite.backends.dali.pipeline_def import CPU_ONLY_DEVICE_ID, DALI_TO_CONFIG, describe, parse


def test_the_example_pipeline_describes_itself():
    info = describe(preprocess_bytes())
    assert (info.max_batch_size, info.num_threads, info.device_id) == (32, 2, CPU_ONLY_DEVICE_ID)
    assert [(t.name, t.device, t.config_type, t.dims) for t in info.inputs] == [
        ("DALI_INPUT_0", "cpu", "TYPE_UINT8", [-1])
    ]
    assert len(info.outputs) == 1
    assert (info.outputs[0].config_type, info.outputs[0].dims) == (None, None)  # not declared
    assert [op.name for op in info.operators] == [
        "ExternalSource",
        "decoders__Image",
        "Resize",
        "Transpose",
        "_ArithmeticGenericOp",
    ]
    assert info.operators[1].display == "nvidia.dali.fn.decoders.image"
    assert not any(op.needs_gpu for op in info.operators)


def test_declared_output_type_and_rank():
    info = describe(with_declared_output(preprocess_bytes(), dtype=9, ndim=3))
    assert (info.outputs[0].config_type, info.outputs[0].dims) == ("TYPE_FP32", [-1, -1, -1])


def test_gpu_and_mixed_operators_are_seen():
    info = describe(with_device(preprocess_bytes(), "decoders__Image", "mixed"))
    decoder = info.operators[1]
    assert decoder.needs_gpu and decoder.device == "mixed" and decoder.instance == "__Image_0"


@pytest.mark.parametrize("data", [b"", b"this is not a pipeline", b"\x0a\x05hello"])
def test_other_bytes_are_refused(data):
    with pytest.raises(ValueError, match="not a serialized DALI pipeline"):
        describe(data)


def test_a_round_trip_keeps_the_pipeline():
    assert describe(parse(preprocess_bytes()).SerializeToString()) == describe(preprocess_bytes())


def test_type_numbers_are_dalis():
    types = pytest.importorskip("nvidia.dali.types")
    for number, config_type in DALI_TO_CONFIG.items():
        name = config_type.removeprefix("TYPE_")
        dali_name = {"FP16": "FLOAT16", "FP32": "FLOAT", "FP64": "FLOAT64"}.get(name, name)
        assert int(getattr(types.DALIDataType, dali_name)) == number
