"""The response cache: keys, LRU eviction by bytes, copies."""

from __future__ import annotations

import numpy as np
import pytest

from tritonlite.core.response_cache import ResponseCache, parse_cache_config, request_key
from tritonlite.core.types import InferRequest, InferResponse, InferTensor, RequestedOutput


def req(values, rid: str = "", outputs=None) -> InferRequest:
    data = np.array(values, np.float32)
    request = InferRequest("m", "", rid, [InferTensor("X", "FP32", list(data.shape), data)])
    if outputs:
        request.outputs = [RequestedOutput(name, None, count) for name, count in outputs]
    return request


def resp(values) -> InferResponse:
    data = np.array(values, np.float32)
    return InferResponse("m", "1", "", [InferTensor("Y", "FP32", list(data.shape), data)])


def test_keys_depend_on_data_shape_model_and_outputs_not_on_the_id():
    base = request_key("m", "1", req([1, 2]))
    assert base == request_key("m", "1", req([1, 2], rid="other"))
    assert base != request_key("m", "1", req([1, 3]))
    assert base != request_key("m", "2", req([1, 2]))
    assert base != request_key("n", "1", req([1, 2]))
    assert base != request_key("m", "1", req([[1, 2]]))
    assert base != request_key("m", "1", req([1, 2], outputs=[("Y", 1)]))


def test_hits_return_the_stored_outputs_with_the_new_id_and_copies_are_kept():
    cache = ResponseCache(1 << 20)
    source = resp([5, 6])
    cache.insert(b"k", source)
    source.outputs[0].data[0] = 99  # the model reusing its buffer does not change the cache
    hit = cache.lookup(b"k", req([1], rid="r2"))
    assert hit.id == "r2" and hit.outputs[0].data.tolist() == [5, 6]
    assert cache.lookup(b"zz", req([1])) is None
    assert (cache.lookups, cache.hits, cache.misses, cache.entries) == (2, 1, 1, 1)


def test_least_recently_used_goes_first_when_bytes_run_out():
    one = resp(np.zeros(100))  # 400 bytes + overhead
    cache = ResponseCache(1100)
    cache.insert(b"a", one)
    cache.insert(b"b", one)
    cache.lookup(b"a", req([0]))  # a is now the most recent
    cache.insert(b"c", one)
    assert cache.lookup(b"b", req([0])) is None and cache.lookup(b"a", req([0])) is not None
    assert cache.evictions == 1 and 0 < cache.utilization() <= 1
    cache.insert(b"huge", resp(np.zeros(1000)))  # larger than the whole cache: not stored
    assert cache.lookup(b"huge", req([0])) is None


def test_cache_config_flag():
    assert parse_cache_config(["local,size=1048576"]) == 1048576
    assert parse_cache_config([]) is None
    with pytest.raises(ValueError, match="redis"):
        parse_cache_config(["redis,host=x"])
