"""config.pbtxt: parse into ModelConfig, fill Triton's defaults, validate, render as JSON."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import text_format

from tritonlite.backends.registry import backend_of, by_name, known_platform
from tritonlite.core.errors import invalid_arg
from tritonlite.protocol import model_config_pb2 as mc

ModelConfig = mc.ModelConfig

CONFIG_FILENAME = "config.pbtxt"


def read_config(model_path: Path, strict: bool, root: Path | None = None, config_name: str = "") -> ModelConfig:
    """Read a model's config.pbtxt (or an empty config where none exists and strict is off).

    ``root``: the repository folder the model folder and its config must resolve into (symlinks
    that lead out of it are refused); None allows any target (--allow-symlinks-outside-repository).
    ``config_name``: as Triton's --model-config-name, ``configs/<name>.pbtxt`` where the model has one.
    """
    config = ModelConfig()
    path = config_path(model_path, config_name)
    if root is not None:
        confine(model_path, root)
    if not path.exists():
        if strict:
            raise invalid_arg(f"failed to load model configuration: {path} does not exist")
        return config
    if root is not None:
        confine(path, root)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise invalid_arg(f"failed to parse model configuration {path}: {_describe_parse_error(exc, text)}") from None
    return config


def config_path(model_path: Path, config_name: str = "") -> Path:
    """The file a model's config is read from: ``configs/<config_name>.pbtxt`` where it exists, else config.pbtxt."""
    if config_name:
        custom = model_path / "configs" / f"{config_name}.pbtxt"
        if custom.is_file():
            return custom
    return model_path / CONFIG_FILENAME


def confine(path: Path, root: Path) -> None:
    """Refuse ``path`` when it resolves (through symlinks) outside the repository folder ``root``."""
    base = root.resolve()
    target = path.resolve()
    if target != base and base not in target.parents:
        raise invalid_arg(
            f"failed to load model configuration: {path} resolves outside the model repository {root} "
            "(--allow-symlinks-outside-repository allows it)"
        )


_QUOTED = re.compile(r"([\"'])(.*?)\1")
_TAIL = re.compile(r"(: |, got | named )(.+?)(\.?)$")
_HIDDEN = "\u2026"  # what stands for text of the file in an error


def _describe_parse_error(exc: text_format.ParseError, text: str) -> str:
    """Position and reason of a parse error, without the file's text: protobuf quotes the line and
    the token at fault, which would put whatever file a config leads to into the model index."""
    line, column = exc.GetLine(), exc.GetColumn()
    message = str(exc)
    # ParseError's text starts with "line:column : "; say it in words
    prefix = f"{line}:{column} : "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    lines = text.splitlines()
    for echoed in lines[max(line - 2, 0) : line + 1] if line else ():  # "'<the line>': reason"
        if message.startswith(f"'{echoed}': "):
            message = message[len(echoed) + 4 :]
            break

    def hide(match: re.Match) -> str:
        quote, inner = match.group(1), match.group(2)
        return f"{quote}{_HIDDEN}{quote}" if inner and inner in text else match.group(0)

    message = _QUOTED.sub(hide, message)
    tail = _TAIL.search(message)
    if tail is not None and tail.group(2) != _HIDDEN and (tail.group(2) in text or not tail.group(2).isprintable()):
        message = message[: tail.start(2)] + _HIDDEN + tail.group(3)
    if not message.isprintable() or len(message) > 200:
        message = "syntax error"
    return f"line {line}, column {column}: {message}" if line else message


def complete_config(config: ModelConfig, model_name: str, default_kind: str = "KIND_CPU") -> None:
    """Fill the fields Triton fills when it loads a model (in place)."""
    if not config.name:
        config.name = model_name
    if not config.HasField("version_policy"):
        config.version_policy.latest.num_versions = 1
    backend = backend_of(config)
    known = by_name(backend)
    if not config.default_model_filename and known is not None:
        config.default_model_filename = known.model_filename
    if config.HasField("dynamic_batching") and not config.dynamic_batching.preferred_batch_size:
        if config.max_batch_size > 0:
            config.dynamic_batching.preferred_batch_size.append(config.max_batch_size)
    if config.HasField("sequence_batching"):
        batching = config.sequence_batching
        if batching.max_sequence_idle_microseconds == 0:
            batching.max_sequence_idle_microseconds = 1_000_000  # Triton's default: 1 s
        if batching.HasField("oldest") and not batching.oldest.preferred_batch_size and config.max_batch_size > 0:
            batching.oldest.preferred_batch_size.append(config.max_batch_size)
    if not config.HasField("optimization") and not config.HasField("ensemble_scheduling"):
        config.optimization.input_pinned_memory.enable = True
        config.optimization.output_pinned_memory.enable = True
    if backend == "" and config.platform != "ensemble":
        return
    if config.platform != "ensemble" and len(config.instance_group) == 0:
        config.instance_group.add(name=config.name)  # Triton names the default group after the model
    kind_value = mc.ModelInstanceGroup.Kind.Value(default_kind)
    for index, group in enumerate(config.instance_group):
        if not group.name:
            group.name = f"{config.name}_{index}"
        if group.count < 1:
            group.count = 1
        if group.kind == mc.ModelInstanceGroup.KIND_AUTO:
            group.kind = mc.ModelInstanceGroup.KIND_GPU if group.gpus else kind_value


def validate_config(config: ModelConfig, model_name: str) -> None:
    """Reject configs Triton rejects, with messages in Triton's words."""
    if config.name != model_name:
        raise invalid_arg(f"unexpected 'name' value '{config.name}' in model configuration, expected '{model_name}'")
    if not config.backend and not config.platform:
        raise invalid_arg(
            f"unexpected platform type '' for {model_name}: model configuration must specify 'platform' or 'backend'"
        )
    if config.platform and not known_platform(config.platform):
        raise invalid_arg(f"unexpected platform type '{config.platform}' for {model_name}")
    if config.max_batch_size < 0:
        raise invalid_arg(f"'max_batch_size' must be non-negative value for {model_name}")
    if config.max_batch_size == 0 and config.HasField("dynamic_batching"):
        raise invalid_arg(
            f"dynamic batching is enabled for model '{model_name}' but max_batch_size is 0; "
            "dynamic batching requires max_batch_size > 0"
        )
    for kind, tensors in (("input", config.input), ("output", config.output)):
        seen: set[str] = set()
        for tensor in tensors:
            if not tensor.name:
                raise invalid_arg(f"model {kind} must specify 'name' for {model_name}")
            if tensor.name in seen:
                raise invalid_arg(f"{kind} '{tensor.name}' specified multiple times for {model_name}")
            seen.add(tensor.name)
            if tensor.data_type == mc.TYPE_INVALID:
                raise invalid_arg(f"model {kind} '{tensor.name}' must specify 'data_type' for {model_name}")
            _validate_dims(tensor.dims, f"model {kind} '{tensor.name}'", model_name)
            if tensor.HasField("reshape"):
                _validate_reshape(tensor, kind, model_name)


def _validate_dims(dims, what: str, model_name: str) -> None:
    for dim in dims:
        if dim < 1 and dim != -1:
            raise invalid_arg(
                f"{what} dims must be integer >= 1, or -1 to indicate a variable-size dimension "
                f"for {model_name}, got {list(dims)}"
            )


def _validate_reshape(tensor, kind: str, model_name: str) -> None:
    _validate_dims(tensor.reshape.shape, f"model {kind} '{tensor.name}' reshape", model_name)
    if -1 in tensor.dims or -1 in tensor.reshape.shape:
        return
    dims_count = 1
    for dim in tensor.dims:
        dims_count *= dim
    reshape_count = 1
    for dim in tensor.reshape.shape:
        reshape_count *= dim
    if dims_count != reshape_count:
        raise invalid_arg(f"model {kind} '{tensor.name}' has different size for dims and reshape for {model_name}")
