"""Tests for tritonlite.protocol: freshness of the generated code, wire
compatibility with Triton (as shipped in tritonclient), and config.pbtxt
round trips. No server is needed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, json_format, text_format

REPO_ROOT = Path(__file__).resolve().parents[2]

# Fallback for running straight from a checkout without the package installed
# (no-op once tritonlite is importable, e.g. after `pip install -e .`).
if importlib.util.find_spec("tritonlite") is None:
    sys.path.insert(0, str(REPO_ROOT / "src"))

from tritonlite.protocol import (  # noqa: E402
    DESCRIPTOR_POOL,
    grpc_service_pb2,
    model_config_pb2,
)

_FieldProto = descriptor_pb2.FieldDescriptorProto


# ---------------------------------------------------------------------------
# Generated code is up to date


def _load_generator():
    path = REPO_ROOT / "scripts" / "generate_protocol.py"
    spec = importlib.util.spec_from_file_location("tritonlite_generate_protocol", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_not_stale():
    pytest.importorskip("grpc_tools")
    generator = _load_generator()
    stale = generator.check()
    committed, installed = generator._committed_tools_version(), generator._grpcio_tools_version()
    assert not stale, (
        f"generated protocol code is stale: {stale}; run `python scripts/generate_protocol.py` "
        f"(committed files were generated with grpcio-tools {committed}, installed: {installed})"
    )


def test_generated_imports_are_package_absolute():
    text = (REPO_ROOT / "src/tritonlite/protocol/grpc_service_pb2.py").read_text()
    assert "from tritonlite.protocol import model_config_pb2" in text
    assert "\nimport model_config_pb2" not in text
    grpc_text = (REPO_ROOT / "src/tritonlite/protocol/grpc_service_pb2_grpc.py").read_text()
    assert "from tritonlite.protocol import grpc_service_pb2" in grpc_text


# ---------------------------------------------------------------------------
# Wire compatibility with tritonclient's descriptors


# The tritonclient release whose descriptors proto/*.proto mirrors exactly.
# Against this release or a newer one the schemas must be identical; an older
# tritonclient only has to be a subset (Triton only ever adds to its protos).
MIRRORED_TRITONCLIENT = (2, 73)


class _Triton:
    def __init__(self, model_config, service, version):
        self.model_config = model_config
        self.service = service
        self.version = version
        self.strict = version >= MIRRORED_TRITONCLIENT


@pytest.fixture(scope="module")
def triton():
    """tritonclient's generated modules, and whether to compare strictly."""
    pytest.importorskip("tritonclient.grpc")
    from importlib import metadata

    from tritonclient.grpc import model_config_pb2 as tc_model_config
    from tritonclient.grpc import service_pb2 as tc_service

    version = tuple(int(part) for part in metadata.version("tritonclient").split(".")[:2])
    return _Triton(tc_model_config, tc_service, version)


def _in_package(full_name: str) -> bool:
    return full_name.startswith("inference.")


def _reachable(file_descriptors):
    """All `inference.*` message and enum descriptors reachable from the
    given files (top-level types, nested types, field types, rpc types)."""
    messages, enums = {}, {}
    stack = []
    for fd in file_descriptors:
        stack.extend(fd.message_types_by_name.values())
        for enum in fd.enum_types_by_name.values():
            enums[enum.full_name] = enum
        for service in fd.services_by_name.values():
            for method in service.methods:
                stack.extend([method.input_type, method.output_type])
    while stack:
        desc = stack.pop()
        if desc.full_name in messages or not _in_package(desc.full_name):
            continue
        messages[desc.full_name] = desc
        stack.extend(desc.nested_types)
        for enum in desc.enum_types:
            enums[enum.full_name] = enum
        for field in desc.fields:
            if field.message_type is not None:
                stack.append(field.message_type)
            if field.enum_type is not None and _in_package(field.enum_type.full_name):
                enums[field.enum_type.full_name] = field.enum_type
    return messages, enums


def _is_map(field) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _message_signature(desc) -> dict:
    # Read labels/types from the DescriptorProto form: it is stable across
    # protobuf runtimes (FieldDescriptor.label is gone in newer upb builds).
    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)
    oneof_names = [o.name for o in proto.oneof_decl]
    fields = {}
    for fp in proto.field:
        field = desc.fields_by_number[fp.number]
        fields[fp.number] = {
            "name": fp.name,
            "type": _FieldProto.Type.Name(fp.type),
            "label": _FieldProto.Label.Name(fp.label),
            "type_name": fp.type_name,  # fully qualified, e.g. ".inference.DataType"
            "oneof": oneof_names[fp.oneof_index] if fp.HasField("oneof_index") else None,
            "map": _is_map(field),
            "proto3_optional": fp.proto3_optional,
            "json_name": field.json_name,
            "options": fp.options.SerializeToString(),
        }
    return {
        "fields": fields,
        "oneofs": set(oneof_names),
        "nested_types": {n.name for n in desc.nested_types},
        "enum_types": {e.name for e in desc.enum_types},
        "options": desc.GetOptions().SerializeToString(),
    }


def _enum_signature(desc) -> dict:
    return {
        "values": {v.number: v.name for v in desc.values},
        "options": desc.GetOptions().SerializeToString(),
    }


def _diff(what: str, ours, theirs, strict: bool) -> list[str]:
    """Differences between two signatures (dicts nest; sets compare as sets).

    Non-strict mode tolerates things present only on our side."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        problems = []
        for key in sorted(set(ours) | set(theirs), key=str):
            if key not in theirs:
                if strict:
                    problems.append(f"{what}[{key}]: only in tritonlite: {ours[key]}")
            elif key not in ours:
                problems.append(f"{what}[{key}]: missing, triton has {theirs[key]}")
            else:
                problems += _diff(f"{what}[{key}]", ours[key], theirs[key], strict)
        return problems
    if isinstance(theirs, set) and isinstance(ours, set):
        missing, extra = sorted(theirs - ours), sorted(ours - theirs)
        problems = [f"{what}: missing {missing}"] if missing else []
        if extra and strict:
            problems.append(f"{what}: only in tritonlite {extra}")
        return problems
    return [] if ours == theirs else [f"{what}: tritonlite={ours!r} triton={theirs!r}"]


def test_files_match_tritons(triton):
    problems = []
    for ours, theirs in (
        (model_config_pb2.DESCRIPTOR, triton.model_config.DESCRIPTOR),
        (grpc_service_pb2.DESCRIPTOR, triton.service.DESCRIPTOR),
    ):
        assert ours.name == theirs.name
        assert ours.package == theirs.package == "inference"
        for attr in ("message_types_by_name", "enum_types_by_name", "services_by_name"):
            problems += _diff(
                f"{ours.name} {attr}",
                set(getattr(ours, attr)),
                set(getattr(theirs, attr)),
                triton.strict,
            )
    assert not problems, "\n".join(problems)


def test_messages_and_enums_are_wire_compatible(triton):
    files = [triton.model_config.DESCRIPTOR, triton.service.DESCRIPTOR]
    their_messages, their_enums = _reachable(files)
    our_messages, our_enums = _reachable([model_config_pb2.DESCRIPTOR, grpc_service_pb2.DESCRIPTOR])
    # Sanity check that the walk actually found Triton's schema.
    assert "inference.ModelConfig" in their_messages
    assert "inference.ModelInferRequest.InferInputTensor.ParametersEntry" in their_messages
    assert "inference.ModelSequenceBatching.Control.Kind" in their_enums
    assert len(their_messages) > 80

    problems = _diff("messages", set(our_messages), set(their_messages), triton.strict)
    problems += _diff("enums", set(our_enums), set(their_enums), triton.strict)
    for name, theirs in sorted(their_messages.items()):
        try:
            ours = DESCRIPTOR_POOL.FindMessageTypeByName(name)
        except KeyError:
            continue  # already reported above
        problems += _diff(name, _message_signature(ours), _message_signature(theirs), triton.strict)
    for name, theirs in sorted(their_enums.items()):
        try:
            ours = DESCRIPTOR_POOL.FindEnumTypeByName(name)
        except KeyError:
            continue
        problems += _diff(name, _enum_signature(ours), _enum_signature(theirs), triton.strict)

    assert not problems, f"tritonclient {triton.version}:\n" + "\n".join(problems)


def _service_signature(service) -> dict:
    return {
        m.name: (
            m.input_type.full_name,
            m.output_type.full_name,
            m.client_streaming,
            m.server_streaming,
        )
        for m in service.methods
    }


def test_service_is_wire_compatible(triton):
    theirs = triton.service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    ours = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    problems = _diff("GRPCInferenceService", _service_signature(ours), _service_signature(theirs), triton.strict)
    assert not problems, "\n".join(problems)
    assert _service_signature(ours)["ModelStreamInfer"] == (
        "inference.ModelInferRequest",
        "inference.ModelStreamInferResponse",
        True,
        True,
    )


class _RecordingChannel:
    """Stands in for grpc.Channel; records the methods a stub registers."""

    def __init__(self):
        self.registered = {}

    def _register(self, kind):
        def register(path, request_serializer=None, response_deserializer=None, **_):
            self.registered[path] = (kind, request_serializer, response_deserializer)
            return object()

        return register

    def __getattr__(self, kind):
        if kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            return self._register(kind)
        raise AttributeError(kind)


def test_grpc_stub_uses_tritons_method_paths(triton):
    pytest.importorskip("grpc")
    from tritonlite.protocol import grpc_service_pb2_grpc

    tc_service = triton.service
    channel = _RecordingChannel()
    grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)

    expected = {}
    for method in tc_service.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        kind = (
            ("stream" if method.client_streaming else "unary")
            + "_"
            + ("stream" if method.server_streaming else "unary")
        )
        expected[f"/inference.GRPCInferenceService/{method.name}"] = kind
        assert hasattr(grpc_service_pb2_grpc.GRPCInferenceServiceServicer, method.name)
    assert {path: reg[0] for path, reg in channel.registered.items()} == expected

    # The stub (de)serializes our classes; check one against tritonclient.
    _, serialize, deserialize = channel.registered["/inference.GRPCInferenceService/ModelInfer"]
    request = tc_service.ModelInferRequest(model_name="m", id="7")
    request.parameters["sequence_id"].uint64_param = 42
    ours = grpc_service_pb2.ModelInferRequest.FromString(request.SerializeToString())
    assert serialize(ours) == request.SerializeToString(deterministic=True)
    response = grpc_service_pb2.ModelInferResponse(model_name="m", raw_output_contents=[b"\x01"])
    assert deserialize(response.SerializeToString()) == response


def test_infer_request_round_trip(triton):
    tc_service = triton.service
    request = grpc_service_pb2.ModelInferRequest(model_name="add_sub", model_version="1", id="req-1")
    request.parameters["sequence_id"].uint64_param = 2**63 + 1
    request.parameters["sequence_start"].bool_param = True
    request.parameters["priority"].int64_param = -3
    request.parameters["note"].string_param = "hi"
    request.parameters["scale"].double_param = 0.5
    tensor = request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    tensor.parameters["shared_memory_region"].string_param = "region0"
    tensor.contents.fp32_contents.extend([1.0, 2.0, 3.0, 4.0])
    requested = request.outputs.add(name="OUTPUT0")
    requested.parameters["binary_data"].bool_param = True
    request.raw_input_contents.append(b"\x00\x00\x80\x3f")

    theirs = tc_service.ModelInferRequest.FromString(request.SerializeToString())
    assert text_format.MessageToString(theirs) == text_format.MessageToString(request)
    assert theirs.parameters["sequence_id"].uint64_param == 2**63 + 1
    assert theirs.inputs[0].parameters["shared_memory_region"].string_param == "region0"
    back = grpc_service_pb2.ModelInferRequest.FromString(theirs.SerializeToString())
    assert back == request


# ---------------------------------------------------------------------------
# config.pbtxt round trips

DYNAMIC_BATCHING_CONFIG = r"""
name: "resnet50"
platform: "onnxruntime_onnx"
max_batch_size: 32
version_policy: { specific: { versions: [ 1, 3 ] } }
input [
  {
    name: "input"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape: { shape: [ 1, 3, 224, 224 ] }
  },
  {
    name: "scale"
    data_type: TYPE_FP16
    dims: [ -1 ]
    allow_ragged_batch: true
    optional: true
  }
]
output [
  {
    name: "probs"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    label_filename: "labels.txt"
  }
]
batch_input [
  {
    kind: BATCH_ACCUMULATED_ELEMENT_COUNT
    target_name: "INDEX"
    data_type: TYPE_FP32
    source_input: "scale"
  }
]
batch_output [
  {
    target_name: "probs"
    kind: BATCH_SCATTER_WITH_INPUT_SHAPE
    source_input: "scale"
  }
]
dynamic_batching {
  preferred_batch_size: [ 8, 16 ]
  max_queue_delay_microseconds: 100
  preserve_ordering: true
  priority_levels: 2
  default_priority_level: 1
  default_queue_policy {
    timeout_action: DELAY
    default_timeout_microseconds: 5000
    allow_timeout_override: true
    max_queue_size: 64
  }
  priority_queue_policy {
    key: 2
    value: { timeout_action: REJECT max_queue_size: 8 }
  }
}
instance_group [
  {
    name: "gpu_group"
    kind: KIND_GPU
    count: 2
    gpus: [ 0, 1 ]
    profile: [ "0" ]
    rate_limiter {
      resources [ { name: "R1" count: 4 }, { name: "R2" global: true count: 2 } ]
      priority: 2
    }
  },
  { kind: KIND_CPU count: 1 }
]
optimization {
  graph { level: 1 }
  priority: PRIORITY_MAX
  cuda {
    graphs: true
    busy_wait_events: true
    graph_spec [
      {
        batch_size: 8
        input { key: "input" value { dim: [ 3, 224, 224 ] } }
        graph_lower_bound {
          batch_size: 1
          input { key: "input" value { dim: [ 3, 224, 224 ] } }
        }
      }
    ]
    output_copy_stream: true
  }
  execution_accelerators {
    gpu_execution_accelerator : [
      {
        name : "tensorrt"
        parameters { key: "precision_mode" value: "FP16" }
        parameters { key: "max_workspace_size_bytes" value: "1073741824" }
      }
    ]
    cpu_execution_accelerator : [ { name : "openvino" } ]
  }
  input_pinned_memory { enable: false }
  output_pinned_memory { enable: true }
  gather_kernel_buffer_threshold: 16
  eager_batching: true
}
default_model_filename: "model.onnx"
cc_model_filenames { key: "8.0" value: "model_sm80.onnx" }
metric_tags { key: "team" value: "vision" }
parameters { key: "intra_op_thread_count" value: { string_value: "4" } }
parameters [
  { key: "enable_mem_arena" value { string_value: "1" } }
]
model_warmup [
  {
    name: "zero_warmup"
    batch_size: 4
    count: 2
    inputs {
      key: "input"
      value: { data_type: TYPE_FP32 dims: [ 3, 224, 224 ] zero_data: true }
    }
  },
  {
    name: "random_warmup"
    batch_size: 1
    inputs {
      key: "input"
      value: { data_type: TYPE_FP32 dims: [ 3, 224, 224 ] random_data: true }
    }
    inputs {
      key: "scale"
      value: { data_type: TYPE_FP16 dims: [ 1 ] input_data_file: "scale.bin" }
    }
  }
]
model_operations { op_library_filename: [ "libcustomops.so" ] }
model_repository_agents {
  agents [
    { name: "checksum" parameters { key: "MD5:1/model.onnx" value: "d41d8cd98f00b204" } }
  ]
}
response_cache { enable: true }
"""

SEQUENCE_BATCHING_CONFIG = r"""
# A stateful model driven by the sequence batcher.
name: "stateful_accumulator"
backend: "python"
max_batch_size: 4
version_policy: { latest: { num_versions: 2 } }
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  oldest {
    max_candidate_sequences: 4
    preferred_batch_size: [ 2, 4 ]
    max_queue_delay_microseconds: 100
    preserve_ordering: true
  }
  control_input [
    {
      name: "START"
      control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ]
    },
    {
      name: "READY"
      control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ]
    },
    {
      name: "END"
      control [ { kind: CONTROL_SEQUENCE_END bool_false_true: [ false, true ] } ]
    },
    {
      name: "CORRID"
      control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ]
    }
  ]
  state [
    {
      input_name: "INPUT_STATE"
      output_name: "OUTPUT_STATE"
      data_type: TYPE_INT32
      dims: [ -1 ]
      initial_state: {
        name: "initial"
        data_type: TYPE_INT32
        dims: [ 1 ]
        zero_data: true
      }
      use_same_buffer_for_input_output: true
      use_growable_memory: true
    },
    {
      input_name: "INPUT_CACHE"
      output_name: "OUTPUT_CACHE"
      data_type: TYPE_FP32
      dims: [ 16 ]
      initial_state: { name: "from_file" data_type: TYPE_FP32 dims: [ 16 ] data_file: "cache.bin" }
    }
  ]
  iterative_sequence: false
}
instance_group [
  {
    kind: KIND_GPU
    count: 1
    gpus: [ 0 ]
    secondary_devices [ { kind: KIND_NVDLA device_id: 0 } ]
    passive: false
    host_policy: "policy0"
  }
]
model_transaction_policy { decoupled: true }
parameters: {
  key: "EXECUTION_ENV_PATH"
  value: { string_value: "$$TRITON_MODEL_DIRECTORY/env.tar.gz" }
}
"""

ENSEMBLE_CONFIG = r"""
name: "text_pipeline"
platform: "ensemble"
max_batch_size: 8
version_policy: { all { } }
input [ { name: "RAW" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "SCORES" data_type: TYPE_FP32 dims: [ -1 ] } ]
ensemble_scheduling {
  step [
    {
      model_name: "tokenizer"
      model_version: -1
      input_map { key: "TEXT" value: "RAW" }
      output_map { key: "TOKENS" value: "tokens" }
    },
    {
      model_name: "classifier"
      model_version: 2
      model_namespace: "nlp"
      input_map [ { key: "INPUT_IDS" value: "tokens" } ]
      output_map { key: "LOGITS" value: "SCORES" }
    }
  ]
}
"""

# Fields added in later Triton releases (not in e.g. tritonclient 2.41).
NEWER_FIELDS_CONFIG = r"""
name: "trt_llm_like"
backend: "python"
runtime: "model.py"
max_batch_size: 0
input [
  { name: "in" data_type: TYPE_FP16 dims: [ -1, 8 ] is_non_linear_format_io: true }
]
output [
  { name: "out" data_type: TYPE_FP16 dims: [ -1, 8 ] is_non_linear_format_io: true }
]
ensemble_scheduling {
  max_inflight_requests: 16
  step [ { model_name: "a" model_version: -1 input_map { key: "x" value: "in" } } ]
}
model_metrics {
  metric_control [
    {
      metric_identifier { family: "nv_inference_first_response_histogram_ms" }
      histogram_options { buckets: [ 1, 2.5, 10, 100 ] }
    }
  ]
}
"""

CONFIGS = {
    "dynamic_batching": DYNAMIC_BATCHING_CONFIG,
    "sequence_batching": SEQUENCE_BATCHING_CONFIG,
    "ensemble_scheduling": ENSEMBLE_CONFIG,
    "newer_fields": NEWER_FIELDS_CONFIG,
}
for _path in sorted((REPO_ROOT / "examples").glob("**/config.pbtxt")):
    CONFIGS[str(_path.relative_to(REPO_ROOT))] = _path.read_text()


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_config_pbtxt_round_trip(triton, config_name):
    tc_model_config = triton.model_config
    if config_name == "newer_fields" and "model_metrics" not in tc_model_config.ModelConfig.DESCRIPTOR.fields_by_name:
        pytest.skip(f"tritonclient {triton.version} predates these ModelConfig fields")
    config_text = CONFIGS[config_name]
    ours = text_format.Parse(config_text, model_config_pb2.ModelConfig())

    # Our bytes parse into Triton's ModelConfig with identical content...
    theirs = tc_model_config.ModelConfig.FromString(ours.SerializeToString())
    assert text_format.MessageToString(theirs) == text_format.MessageToString(ours)
    assert json_format.MessageToDict(theirs) == json_format.MessageToDict(ours)
    # ...the same text parsed by Triton's schema serializes to the same bytes...
    reference = text_format.Parse(config_text, tc_model_config.ModelConfig())
    assert reference.SerializeToString(deterministic=True) == ours.SerializeToString(deterministic=True)
    # ...and Triton's bytes come back unchanged.
    assert model_config_pb2.ModelConfig.FromString(theirs.SerializeToString()) == ours
    assert ours.WhichOneof("scheduling_choice") == theirs.WhichOneof("scheduling_choice")


def test_parsed_config_details():
    dyn = text_format.Parse(DYNAMIC_BATCHING_CONFIG, model_config_pb2.ModelConfig())
    assert dyn.WhichOneof("scheduling_choice") == "dynamic_batching"
    assert list(dyn.version_policy.specific.versions) == [1, 3]
    assert dyn.dynamic_batching.priority_queue_policy[2].max_queue_size == 8
    assert dyn.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert getattr(dyn.instance_group[0].rate_limiter.resources[1], "global")
    assert dyn.parameters["intra_op_thread_count"].string_value == "4"
    assert dyn.parameters["enable_mem_arena"].string_value == "1"
    assert dyn.model_warmup[1].inputs["scale"].WhichOneof("input_data_type") == "input_data_file"
    assert dyn.input[0].data_type == model_config_pb2.TYPE_FP32

    seq = text_format.Parse(SEQUENCE_BATCHING_CONFIG, model_config_pb2.ModelConfig())
    batching = seq.sequence_batching
    assert seq.WhichOneof("scheduling_choice") == "sequence_batching"
    assert batching.WhichOneof("strategy_choice") == "oldest"
    assert [c.name for c in batching.control_input] == ["START", "READY", "END", "CORRID"]
    assert list(batching.control_input[2].control[0].bool_false_true) == [False, True]
    assert batching.state[0].initial_state[0].WhichOneof("state_data") == "zero_data"
    assert batching.state[1].initial_state[0].data_file == "cache.bin"
    assert seq.model_transaction_policy.decoupled

    ens = text_format.Parse(ENSEMBLE_CONFIG, model_config_pb2.ModelConfig())
    assert ens.WhichOneof("scheduling_choice") == "ensemble_scheduling"
    assert ens.ensemble_scheduling.step[0].model_version == -1
    assert dict(ens.ensemble_scheduling.step[1].input_map) == {"INPUT_IDS": "tokens"}
    assert ens.version_policy.WhichOneof("policy_choice") == "all"

    new = text_format.Parse(NEWER_FIELDS_CONFIG, model_config_pb2.ModelConfig())
    assert new.runtime == "model.py"
    assert new.input[0].is_non_linear_format_io
    assert new.ensemble_scheduling.max_inflight_requests == 16
    control = new.model_metrics.metric_control[0]
    assert control.WhichOneof("metric_options") == "histogram_options"
    assert list(control.histogram_options.buckets) == [1.0, 2.5, 10.0, 100.0]


def test_unknown_config_field_is_rejected():
    with pytest.raises(text_format.ParseError):
        text_format.Parse('name: "m" not_a_field: 1', model_config_pb2.ModelConfig())
