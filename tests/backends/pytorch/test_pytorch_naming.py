"""Triton's PyTorch naming conventions (no torch needed)."""

from __future__ import annotations

import pytest

from tritonlite.backends.pytorch.naming import (
    DICT_INPUT,
    FORWARD_ARGUMENT,
    NAMED_INDEX,
    STRICT_CONFIG_ORDERING,
    input_positions,
    named_index,
    output_positions,
)
from tritonlite.core.errors import ErrorKind, TritonError


def test_named_index():
    assert named_index("INPUT__0") == 0
    assert named_index("my_input__12") == 12
    assert named_index("INPUT0") is None
    assert named_index("__3") is None
    assert named_index("INPUT__x") is None


def test_forward_argument_names_win():
    assert input_positions("m", ["y", "x"], ["x", "y"]) == (FORWARD_ARGUMENT, {"y": 1, "x": 0})


def test_indexed_names_give_positions():
    convention, positions = input_positions("m", ["INPUT__1", "INPUT__0"], ["a", "b"])
    assert convention == NAMED_INDEX and positions == {"INPUT__1": 1, "INPUT__0": 0}


def test_otherwise_config_order():
    assert input_positions("m", ["b", "a__0"], ["x", "y"]) == (STRICT_CONFIG_ORDERING, {"b": 0, "a__0": 1})


def test_count_mismatch_is_refused():
    with pytest.raises(TritonError) as caught:
        input_positions("m", ["INPUT__0"], ["x", "y"])
    assert caught.value.kind == ErrorKind.INVALID_ARG
    assert caught.value.message == "unable to load model 'm', configuration expects 1 inputs, model provides 2"


def test_index_out_of_range_or_repeated():
    with pytest.raises(TritonError):
        input_positions("m", ["INPUT__0", "INPUT__2"], None)
    with pytest.raises(TritonError):
        input_positions("m", ["A__0", "B__0"], None)
    with pytest.raises(TritonError):
        output_positions("m", ["OUTPUT__1", "X__1"])


def test_dict_input_maps_every_name():
    assert input_positions("m", ["A", "B"], ["inputs"], dict_input=True) == (DICT_INPUT, {"A": 0, "B": 0})


def test_outputs():
    assert output_positions("m", ["OUTPUT__1", "OUTPUT__0"]) == (NAMED_INDEX, {"OUTPUT__1": 1, "OUTPUT__0": 0})
    assert output_positions("m", ["sum", "diff"]) == (STRICT_CONFIG_ORDERING, {"sum": 0, "diff": 1})
