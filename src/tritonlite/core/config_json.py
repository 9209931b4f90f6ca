"""A model's config as Triton shows it in JSON (the configuration endpoint, a python model's
``args["model_config"]``)."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor, json_format

from tritonlite.protocol.model_config_pb2 import ModelConfig


def config_to_json(config: ModelConfig) -> dict[str, Any]:
    """The config as Triton shows it over HTTP: proto field names, every scalar, int64 as numbers."""
    data = json_format.MessageToDict(
        config, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _int64_as_numbers(config.DESCRIPTOR, data)
    return data


_INT64_TYPES = (
    descriptor.FieldDescriptor.TYPE_INT64,
    descriptor.FieldDescriptor.TYPE_UINT64,
    descriptor.FieldDescriptor.TYPE_SINT64,
    descriptor.FieldDescriptor.TYPE_FIXED64,
    descriptor.FieldDescriptor.TYPE_SFIXED64,
)


def _int64_as_numbers(message_descriptor, data: dict[str, Any]) -> None:
    for field in message_descriptor.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        if field.type in _INT64_TYPES:
            data[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            sub = field.message_type
            if sub.GetOptions().map_entry:
                value_field = sub.fields_by_name["value"]
                for key, item in value.items():
                    if value_field.type in _INT64_TYPES:
                        value[key] = int(item)
                    elif value_field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                        _int64_as_numbers(value_field.message_type, item)
            elif isinstance(value, list):
                for item in value:
                    _int64_as_numbers(sub, item)
            else:
                _int64_as_numbers(sub, value)
