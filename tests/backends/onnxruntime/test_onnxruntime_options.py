"""What the ONNX Runtime backend reads from a config: session settings, execution providers."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from tritonlite.backends.onnxruntime.options import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    OPENVINO_PROVIDER,
    TENSORRT_PROVIDER,
    check_providers,
    onnx_dims,
    provider_plan,
    session_settings,
)
from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.protocol import model_config_pb2 as mc


def parse(text: str = "") -> mc.ModelConfig:
    config = mc.ModelConfig()
    text_format.Parse(text, config)
    return config


def param(key: str, value: str) -> str:
    return f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'


@pytest.mark.parametrize(
    ("graph", "level"),
    [
        ("", "ORT_ENABLE_ALL"),
        ("optimization { graph { level: 0 } }", "ORT_ENABLE_ALL"),
        ("optimization { graph { level: -1 } }", "ORT_ENABLE_BASIC"),
        ("optimization { graph { level: 1 } }", "ORT_ENABLE_EXTENDED"),
        ("optimization { graph { level: 2 } }", "ORT_DISABLE_ALL"),
    ],
)
def test_graph_level(graph, level):
    assert session_settings(parse(graph), "m").graph_level == level


def test_thread_counts_and_memory_parameters():
    config = parse(
        param("intra_op_thread_count", "3")
        + param("inter_op_thread_count", "2")
        + param("execution_mode", "1")
        + param("enable_mem_pattern", "false")
        + param("session.use_device_allocator_for_initializers", "1")
        + param("memory.enable_memory_arena_shrinkage", "cpu:0")
    )
    settings = session_settings(config, "m")
    assert (settings.intra_op_threads, settings.inter_op_threads) == (3, 2)
    assert settings.execution_mode == "ORT_PARALLEL"
    assert settings.enable_mem_pattern is False and settings.enable_mem_arena is None
    assert settings.config_entries == {
        "session.use_device_allocator_for_initializers": "1",
        "session.intra_op.allow_spinning": "0",
        "session.inter_op.allow_spinning": "0",
    }
    assert settings.run_config_entries == {"memory.enable_memory_arena_shrinkage": "cpu:0"}


def test_thread_spinning_is_off_unless_the_model_asks():
    assert session_settings(parse(), "m").config_entries == {
        "session.intra_op.allow_spinning": "0",
        "session.inter_op.allow_spinning": "0",
    }
    asked = session_settings(parse(param("session.intra_op.allow_spinning", "1")), "m")
    assert asked.config_entries["session.intra_op.allow_spinning"] == "1"


def test_bad_thread_count_is_invalid():
    with pytest.raises(TritonError) as caught:
        session_settings(parse(param("intra_op_thread_count", "four")), "m")
    assert caught.value.kind == ErrorKind.INVALID_ARG
    assert "intra_op_thread_count" in caught.value.message


def test_providers_by_instance_kind():
    assert provider_plan(parse(), "CPU", 0, "m") == [(CPU_PROVIDER, {})]
    plan = provider_plan(parse(), "GPU", 2, "m")
    assert [name for name, _ in plan] == [CUDA_PROVIDER, CPU_PROVIDER]
    assert plan[0][1]["device_id"] == "2"


def test_tensorrt_accelerator_comes_first_with_its_options():
    config = parse(
        'optimization { execution_accelerators { gpu_execution_accelerator [{ name: "tensorrt" '
        'parameters { key: "precision_mode" value: "FP16" } '
        'parameters { key: "max_workspace_size_bytes" value: "1073741824" } '
        'parameters { key: "trt_engine_cache_enable" value: "true" } }] } }'
    )
    plan = provider_plan(config, "GPU", 1, "m")
    assert [name for name, _ in plan] == [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER]
    assert plan[0][1] == {
        "device_id": "1",
        "trt_fp16_enable": "True",
        "trt_max_workspace_size": "1073741824",
        "trt_engine_cache_enable": "True",
    }
    # a CPU instance ignores GPU accelerators (as Triton)
    assert provider_plan(config, "CPU", 0, "m") == [(CPU_PROVIDER, {})]


def test_openvino_and_unknown_accelerators():
    config = parse('optimization { execution_accelerators { cpu_execution_accelerator [{ name: "openvino" }] } }')
    assert [name for name, _ in provider_plan(config, "CPU", 0, "m")] == [OPENVINO_PROVIDER, CPU_PROVIDER]
    config = parse('optimization { execution_accelerators { gpu_execution_accelerator [{ name: "magic" }] } }')
    with pytest.raises(TritonError) as caught:
        provider_plan(config, "GPU", 0, "m")
    assert caught.value.message == "unknown Execution Accelerator 'magic' is requested"


def test_unknown_precision_mode():
    config = parse(
        'optimization { execution_accelerators { gpu_execution_accelerator [{ name: "tensorrt" '
        'parameters { key: "precision_mode" value: "FP8" } }] } }'
    )
    with pytest.raises(TritonError) as caught:
        provider_plan(config, "GPU", 0, "m")
    assert caught.value.message == "unsupported precision mode 'FP8' is requested"


def test_missing_provider_is_unavailable_and_lists_what_there_is():
    plan = provider_plan(parse(), "GPU", 0, "m")
    with pytest.raises(TritonError) as caught:
        check_providers(plan, ["AzureExecutionProvider", CPU_PROVIDER], "m", "m_0", "GPU", 0)
    assert caught.value.kind == ErrorKind.UNAVAILABLE
    assert "available providers: AzureExecutionProvider, CPUExecutionProvider" in caught.value.message
    check_providers(plan, [CUDA_PROVIDER, CPU_PROVIDER], "m", "m_0", "GPU", 0)  # no error


def test_onnx_dims():
    assert onnx_dims(["batch", 3, None, -1]) == (-1, 3, -1, -1)
    assert onnx_dims(None) == ()
