"""What Triton's ONNX Runtime backend reads from a model config, as plain data (no onnxruntime import).

- session settings: ``optimization { graph { level } }`` and the ``parameters`` Triton's backend
  honours (intra/inter op threads, execution mode, memory arena and pattern);
- execution providers by instance kind: CPU for KIND_CPU; CUDA on the instance's GPU for
  KIND_GPU, with the TensorRT provider first when ``gpu_execution_accelerator`` names
  "tensorrt"; OpenVINO when ``cpu_execution_accelerator`` names "openvino";
- ONNX type names <-> config data types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tritonlite.backends.framework import bool_parameter, int_parameter, parse_bool, string_parameter
from tritonlite.core.errors import invalid_arg, unavailable

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
OPENVINO_PROVIDER = "OpenVINOExecutionProvider"

# ONNX Runtime's type strings (NodeArg.type) -> config data type
ONNX_TO_CONFIG = {
    "tensor(bool)": "TYPE_BOOL",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(string)": "TYPE_STRING",
}


def onnx_type_name(type_string: str) -> str:
    """``tensor(float)`` -> ``float`` (how Triton names an ONNX type in its messages)."""
    if type_string.startswith("tensor(") and type_string.endswith(")"):
        return type_string[len("tensor(") : -1]
    return type_string


def onnx_dims(shape: Any) -> tuple[int, ...]:
    """An ONNX Runtime shape (ints, symbolic names, None) with every unknown dimension as -1."""
    if shape is None:
        return ()
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


# optimization.graph.level -> ONNX Runtime's GraphOptimizationLevel member (Triton's mapping)
GRAPH_LEVELS = {-1: "ORT_ENABLE_BASIC", 1: "ORT_ENABLE_EXTENDED", 2: "ORT_DISABLE_ALL"}
DEFAULT_GRAPH_LEVEL = "ORT_ENABLE_ALL"


# session config entries a model's parameters may set, with tritonlite's default (None: ONNX Runtime's).
# ONNX Runtime's intra-op threads spin after each run by default; in a server they would take CPU
# from the event loop that is reading the next batch's requests, so spinning is off unless asked.
SESSION_ENTRY_DEFAULTS: dict[str, str | None] = {
    "session.use_device_allocator_for_initializers": None,
    "session.intra_op.allow_spinning": "0",
    "session.inter_op.allow_spinning": "0",
}


@dataclass
class SessionSettings:
    graph_level: str = DEFAULT_GRAPH_LEVEL
    execution_mode: str = "ORT_SEQUENTIAL"
    intra_op_threads: int = 0  # 0: ONNX Runtime's default
    inter_op_threads: int = 0
    enable_mem_arena: bool | None = None
    enable_mem_pattern: bool | None = None
    config_entries: dict[str, str] = field(default_factory=dict)
    run_config_entries: dict[str, str] = field(default_factory=dict)


def session_settings(config: Any, model_name: str) -> SessionSettings:
    settings = SessionSettings()
    if config.HasField("optimization") and config.optimization.HasField("graph"):
        settings.graph_level = GRAPH_LEVELS.get(config.optimization.graph.level, DEFAULT_GRAPH_LEVEL)
    mode = int_parameter(config, "execution_mode", 0, model_name)
    if mode not in (0, 1):
        raise invalid_arg(
            f"Invalid configuration value provided. Expected values for  execution_mode are 0 or 1 but got {mode} ."
        )
    settings.execution_mode = "ORT_SEQUENTIAL" if mode == 0 else "ORT_PARALLEL"
    settings.intra_op_threads = max(int_parameter(config, "intra_op_thread_count", 0, model_name), 0)
    settings.inter_op_threads = max(int_parameter(config, "inter_op_thread_count", 0, model_name), 0)
    if string_parameter(config, "enable_mem_arena") is not None:
        settings.enable_mem_arena = bool_parameter(config, "enable_mem_arena", True, model_name)
    if string_parameter(config, "enable_mem_pattern") is not None:
        settings.enable_mem_pattern = bool_parameter(config, "enable_mem_pattern", True, model_name)
    for key, default in SESSION_ENTRY_DEFAULTS.items():
        value = string_parameter(config, key)
        if value is not None or default is not None:
            settings.config_entries[key] = value if value is not None else default
    key = "memory.enable_memory_arena_shrinkage"
    value = string_parameter(config, key)
    if value is not None:
        settings.run_config_entries[key] = value
    return settings


# TensorRT accelerator parameters Triton accepts -> the TensorRT provider's option names
_TRT_BOOL_KEYS = (
    "int8_use_native_calibration_table",
    "trt_dla_enable",
    "trt_engine_cache_enable",
    "trt_dump_subgraphs",
    "trt_force_sequential_engine_build",
    "trt_context_memory_sharing_enable",
    "trt_layer_norm_fp32_fallback",
    "trt_timing_cache_enable",
    "trt_force_timing_cache",
    "trt_detailed_build_log",
    "trt_build_heuristics_enable",
    "trt_sparsity_enable",
    "trt_cuda_graph_enable",
)
_TRT_INT_KEYS = (
    "max_workspace_size_bytes",
    "trt_max_partition_iterations",
    "trt_min_subgraph_size",
    "trt_dla_core",
    "trt_builder_optimization_level",
    "trt_auxiliary_streams",
)
_TRT_STRING_KEYS = (
    "int8_calibration_table_name",
    "trt_engine_cache_path",
    "trt_engine_cache_prefix",
    "trt_timing_cache_path",
    "trt_tactic_sources",
    "trt_extra_plugin_lib_paths",
    "trt_profile_min_shapes",
    "trt_profile_max_shapes",
    "trt_profile_opt_shapes",
)


def tensorrt_options(parameters: Any, device_id: int, model_name: str) -> dict[str, str]:
    options = {"device_id": str(device_id)}
    for key, value in parameters.items():
        option = key if key.startswith("trt_") else f"trt_{key}"
        if key == "precision_mode":
            flags = {"FP16": "trt_fp16_enable", "BF16": "trt_bf16_enable", "INT8": "trt_int8_enable"}
            if value in flags:
                options[flags[value]] = "True"
            elif value != "FP32":
                raise invalid_arg(f"unsupported precision mode '{value}' is requested")
        elif key == "max_workspace_size_bytes":
            _check_int(value, key, model_name)
            options["trt_max_workspace_size"] = value
        elif key in _TRT_INT_KEYS:
            _check_int(value, key, model_name)
            options[option] = value
        elif key in _TRT_BOOL_KEYS:
            options[option] = "True" if parse_bool(value, key, model_name) else "False"
        elif key in _TRT_STRING_KEYS:
            options[option] = value
        else:
            raise invalid_arg(f"unknown parameter '{key}' is provided for TensorRT Execution Accelerator")
    return options


def _check_int(value: str, key: str, model_name: str) -> None:
    try:
        int(value)
    except ValueError:
        raise invalid_arg(
            f"failed to convert '{value}' to integer for parameter '{key}' of model '{model_name}'"
        ) from None


def cuda_options(config: Any, device_id: int, model_name: str) -> dict[str, str]:
    """The CUDA provider's options from the model's ``parameters`` (Triton's names and defaults)."""
    options = {"device_id": str(device_id)}
    search = string_parameter(config, "cudnn_conv_algo_search")
    if search is not None:
        algos = {"0": "EXHAUSTIVE", "1": "HEURISTIC", "2": "DEFAULT"}
        if search not in algos:
            raise invalid_arg(f"unsupported cudnn_conv_algo_search value '{search}' is requested")
        options["cudnn_conv_algo_search"] = algos[search]
    limit = string_parameter(config, "gpu_mem_limit")
    if limit is not None:
        _check_int(limit, "gpu_mem_limit", model_name)
        options["gpu_mem_limit"] = limit
    strategy = string_parameter(config, "arena_extend_strategy")
    if strategy is not None:
        strategies = {"0": "kNextPowerOfTwo", "1": "kSameAsRequested"}
        if strategy not in strategies:
            raise invalid_arg(f"unsupported arena_extend_strategy value '{strategy}' is requested")
        options["arena_extend_strategy"] = strategies[strategy]
    copy = string_parameter(config, "do_copy_in_default_stream")
    options["do_copy_in_default_stream"] = "1" if copy is None else copy
    return options


def provider_plan(config: Any, kind: str, device_id: int, model_name: str) -> list[tuple[str, dict[str, str]]]:
    """The execution providers (in priority order) and their options for one instance."""
    plan: list[tuple[str, dict[str, str]]] = []
    accelerators = config.optimization.execution_accelerators
    if kind == "GPU":
        cuda = cuda_options(config, device_id, model_name)
        for accelerator in accelerators.gpu_execution_accelerator:
            if accelerator.name == "tensorrt":
                plan.append((TENSORRT_PROVIDER, tensorrt_options(accelerator.parameters, device_id, model_name)))
            elif accelerator.name == "cuda":
                for key, value in accelerator.parameters.items():
                    cuda[key] = value
            else:
                raise invalid_arg(f"unknown Execution Accelerator '{accelerator.name}' is requested")
        plan.append((CUDA_PROVIDER, cuda))
    for accelerator in accelerators.cpu_execution_accelerator:
        if accelerator.name == "openvino":
            plan.append((OPENVINO_PROVIDER, {"device_type": "CPU"}))
        else:
            raise invalid_arg(f"unknown Execution Accelerator '{accelerator.name}' is requested")
    plan.append((CPU_PROVIDER, {}))
    return plan


def check_providers(
    plan: list[tuple[str, dict[str, str]]], available: list[str], model_name: str, instance: str, kind: str, device: int
) -> None:
    """UNAVAILABLE when this onnxruntime build lacks a provider the instance needs."""
    for provider, _ in plan:
        if provider not in available:
            raise unavailable(missing_provider_message(provider, available, model_name, instance, kind, device))


def missing_provider_message(
    provider: str, available: list[str], model_name: str, instance: str, kind: str, device: int
) -> str:
    where = f"KIND_{kind} device {device}" if kind == "GPU" else f"KIND_{kind}"
    hint = ""
    if provider in (CUDA_PROVIDER, TENSORRT_PROVIDER):
        hint = (
            "; GPU instances need onnxruntime-gpu (pip install tritonlite[gpu], in place of onnxruntime) "
            "and a working CUDA installation"
        )
    return (
        f"unable to load model '{model_name}': instance '{instance}' ({where}) needs ONNX Runtime's "
        f"{provider}, which is not available (available providers: {', '.join(available) or 'none'}){hint}"
    )
