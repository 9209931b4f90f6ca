"""Triton's PyTorch naming conventions: which config input feeds which ``forward`` argument.

TorchScript files do not name their inputs and outputs well, so Triton maps them by name:

1. inputs named like ``forward``'s arguments go to those arguments;
2. otherwise names of the form ``<anything>__<index>`` (INPUT__0, OUTPUT__1) give the position;
3. otherwise the order of the config is the order of the arguments (or of the returned values).

A ``forward`` that takes a single ``Dict[str, Tensor]`` gets the inputs as that dict, by name.
Plain functions, no torch import: unit-tested on their own.
"""

from __future__ import annotations

import re

from tritonlite.core.errors import invalid_arg

FORWARD_ARGUMENT = "FORWARD_ARGUMENT"
NAMED_INDEX = "NAMED_INDEX"
STRICT_CONFIG_ORDERING = "STRICT_CONFIG_ORDERING"
DICT_INPUT = "DICT_INPUT"

_INDEXED = re.compile(r"^.+__(\d+)$")


def named_index(name: str) -> int | None:
    """The index in ``<name>__<index>`` (None when the name does not have that form)."""
    found = _INDEXED.match(name)
    return int(found.group(1)) if found else None


def input_positions(
    model_name: str, config_names: list[str], forward_args: list[str] | None, dict_input: bool = False
) -> tuple[str, dict[str, int]]:
    """(convention, config input name -> position of the ``forward`` argument).

    ``forward_args`` are forward's argument names without ``self`` (None when unknown).
    For a dict input every name maps to 0 (the one dict argument).
    """
    if dict_input:
        return DICT_INPUT, dict.fromkeys(config_names, 0)
    if forward_args is not None and len(config_names) != len(forward_args):
        raise invalid_arg(
            f"unable to load model '{model_name}', configuration expects {len(config_names)} inputs, "
            f"model provides {len(forward_args)}"
        )
    if forward_args is not None and config_names and all(name in forward_args for name in config_names):
        return FORWARD_ARGUMENT, {name: forward_args.index(name) for name in config_names}
    convention, positions = _indexed_or_ordered(config_names)
    count = len(config_names)
    for name, position in positions.items():
        if position >= count:
            raise invalid_arg(
                f"unable to load model '{model_name}', input '{name}' has index {position} but the model "
                f"configuration has only {count} inputs"
            )
    if len(set(positions.values())) != len(positions):
        raise invalid_arg(f"unable to load model '{model_name}', two inputs have the same index")
    return convention, positions


def output_positions(model_name: str, config_names: list[str]) -> tuple[str, dict[str, int]]:
    """(convention, config output name -> index in the values ``forward`` returns)."""
    convention, positions = _indexed_or_ordered(config_names)
    if len(set(positions.values())) != len(positions):
        raise invalid_arg(f"unable to load model '{model_name}', two outputs have the same index")
    return convention, positions


def _indexed_or_ordered(names: list[str]) -> tuple[str, dict[str, int]]:
    indices = [named_index(name) for name in names]
    if names and all(index is not None for index in indices):
        return NAMED_INDEX, {name: index for name, index in zip(names, indices, strict=True) if index is not None}
    return STRICT_CONFIG_ORDERING, {name: position for position, name in enumerate(names)}
