"""What a serialized DALI pipeline says about itself, read without importing DALI.

``Pipeline.serialize`` writes DALI's ``dali_proto.PipelineDef`` protobuf. DALI's Python API
cannot list a deserialized pipeline's external sources, so the schema's fields this module
needs are declared here (field numbers from DALI's ``dali/pipeline/proto/dali.proto``) and the
file is read with the protobuf runtime tritonlite already depends on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

# DALIDataType -> config data type (nvidia.dali.types.DALIDataType; -1 is NO_TYPE)
DALI_TO_CONFIG: dict[int, str] = {
    0: "TYPE_UINT8",
    1: "TYPE_UINT16",
    2: "TYPE_UINT32",
    3: "TYPE_UINT64",
    4: "TYPE_INT8",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    8: "TYPE_FP16",
    9: "TYPE_FP32",
    10: "TYPE_FP64",
    11: "TYPE_BOOL",
}
NO_TYPE = -1
# DALI's device_id for a pipeline without a GPU
CPU_ONLY_DEVICE_ID = -99999
EXTERNAL_SOURCE = "ExternalSource"


def _schema() -> dict[str, Any]:
    """Message classes for Argument, InputOutput, OpDef and PipelineDef (all fields optional, so a
    pipeline from another DALI version parses as far as these fields go)."""
    label, types = descriptor_pb2.FieldDescriptorProto, descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="tritonlite_dali_pipeline.proto", package="tritonlite_dali")
    file.syntax = "proto2"

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        entry = file.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            field = entry.field.add(name=field_name, number=number, type=kind)
            field.label = label.LABEL_REPEATED if repeated else label.LABEL_OPTIONAL
            if type_name:
                field.type_name = f".tritonlite_dali.{type_name}"

    string, i64, i32, boolean = types.TYPE_STRING, types.TYPE_INT64, types.TYPE_INT32, types.TYPE_BOOL
    flt, nested = types.TYPE_FLOAT, types.TYPE_MESSAGE
    message(
        "Argument",
        [
            ("name", 1, string, 0, ""),
            ("type", 2, string, 0, ""),
            ("floats", 3, flt, 1, ""),
            ("ints", 4, i64, 1, ""),
            ("strings", 5, string, 1, ""),
            ("bools", 6, boolean, 1, ""),
            ("extra_args", 7, nested, 1, "Argument"),
            ("is_vector", 8, boolean, 0, ""),
        ],
    )
    message(
        "InputOutput",
        [
            ("name", 1, string, 0, ""),
            ("device", 2, string, 0, ""),
            ("is_argument_input", 3, boolean, 0, ""),
            ("arg_name", 4, string, 0, ""),
            ("dtype", 5, i32, 0, ""),
            ("ndim", 6, i32, 0, ""),
        ],
    )
    message(
        "OpDef",
        [
            ("name", 1, string, 0, ""),
            ("input", 2, nested, 1, "InputOutput"),
            ("output", 3, nested, 1, "InputOutput"),
            ("args", 4, nested, 1, "Argument"),
            ("inst_name", 5, string, 0, ""),
            ("logical_id", 6, i32, 0, ""),
        ],
    )
    message(
        "PipelineDef",
        [
            ("num_threads", 1, i64, 0, ""),
            ("batch_size", 2, i32, 0, ""),
            ("op", 5, nested, 1, "OpDef"),
            ("external_inputs", 6, string, 1, ""),
            ("pipe_outputs", 7, nested, 1, "InputOutput"),
            ("device_id", 8, i32, 0, ""),
        ],
    )
    # the defaults dali.proto declares, where they differ from protobuf's
    for entry in file.message_type:
        for field in entry.field:
            if (entry.name, field.name) in (("InputOutput", "dtype"), ("InputOutput", "ndim")):
                field.default_value = "-1"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tritonlite_dali.{name}"))
        for name in ("Argument", "InputOutput", "OpDef", "PipelineDef")
    }


_MESSAGES = _schema()
PipelineDef = _MESSAGES["PipelineDef"]


@dataclass(frozen=True)
class PipelineTensor:
    """An input (external source) or output of the pipeline."""

    name: str
    device: str  # cpu or gpu
    config_type: str | None  # None: the pipeline does not declare it
    ndim: int | None  # per sample; None: not declared

    @property
    def dims(self) -> list[int] | None:
        return None if self.ndim is None else [-1] * self.ndim


@dataclass(frozen=True)
class PipelineOperator:
    """One operator: its DALI name (``decoders__Image``), instance name and device (cpu, gpu, mixed)."""

    name: str
    instance: str
    device: str
    display: str = ""  # how the pipeline's code called it: nvidia.dali.fn.decoders.image

    @property
    def needs_gpu(self) -> bool:
        return self.device in ("gpu", "mixed")


@dataclass(frozen=True)
class PipelineInfo:
    max_batch_size: int
    num_threads: int
    device_id: int
    inputs: list[PipelineTensor]  # in the lexicographic order DALI's C API lists them
    outputs: list[PipelineTensor]  # in the pipeline's order
    operators: list[PipelineOperator]


def parse(serialized: bytes) -> Any:
    """The PipelineDef message; ValueError when the bytes are not one."""
    pipeline = PipelineDef()
    try:
        pipeline.ParseFromString(serialized)
    except DecodeError as exc:
        raise ValueError(f"not a serialized DALI pipeline ({exc})") from None
    if len(pipeline.op) == 0 and len(pipeline.pipe_outputs) == 0:
        raise ValueError("not a serialized DALI pipeline (no operators and no outputs)")
    return pipeline


def _argument(op: Any, name: str) -> Any | None:
    for arg in op.args:
        if arg.name == name:
            return arg
    return None


def _int_argument(op: Any, name: str) -> int | None:
    arg = _argument(op, name)
    return int(arg.ints[0]) if arg is not None and len(arg.ints) else None


def _string_argument(op: Any, name: str) -> str | None:
    arg = _argument(op, name)
    return str(arg.strings[0]) if arg is not None and len(arg.strings) else None


def _config_type(dtype: int | None) -> str | None:
    return None if dtype is None or dtype == NO_TYPE else DALI_TO_CONFIG.get(dtype, "TYPE_INVALID")


def describe(serialized: bytes) -> PipelineInfo:
    """Inputs, outputs, operators and settings of a serialized pipeline."""
    pipeline = parse(serialized)
    inputs: dict[str, PipelineTensor] = {}
    operators = []
    for op in pipeline.op:
        device = _string_argument(op, "device") or "cpu"
        module, display = _string_argument(op, "_module"), _string_argument(op, "_display_name")
        shown = f"{module}.{display}" if module and display else ""
        operators.append(PipelineOperator(op.name, op.inst_name, device, shown))
        if op.name != EXTERNAL_SOURCE:
            continue
        name = _string_argument(op, "name") or op.inst_name or (op.output[0].name if op.output else "")
        ndim = _int_argument(op, "ndim")
        inputs[name] = PipelineTensor(
            name, "gpu" if device == "gpu" else "cpu", _config_type(_int_argument(op, "dtype")), ndim
        )
    for name in pipeline.external_inputs:  # pipelines from DALI before ExternalSource was an operator
        inputs.setdefault(name, PipelineTensor(name, "cpu", None, None))
    outputs = [
        PipelineTensor(
            out.name,
            out.device or "cpu",
            _config_type(out.dtype),
            None if out.ndim < 0 else int(out.ndim),
        )
        for out in pipeline.pipe_outputs
    ]
    return PipelineInfo(
        max_batch_size=int(pipeline.batch_size),
        num_threads=int(pipeline.num_threads),
        device_id=int(pipeline.device_id),
        inputs=[inputs[name] for name in sorted(inputs)],
        outputs=outputs,
        operators=operators,
    )
