"""Decode amplification (issue 10 item 2): no message decodes into much more than its size.

Before, a message of nested empty lists stayed inside every per-container ``Limits``
field and decoded into 73x its wire size (34 MB -> +2.3 GB). Now lists and dicts count
against an object budget tied to the body's size; these tests build the densest values
msgpack allows, refused or not, and measure what decoding them allocates.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamrl import codec
from beamrl.codec.core import object_budget
from beamrl.errors import CodecError

SIZE = 240_000  # bytes per attack message: a few MB of memory at most per case
ACCEPTED_RATIO = 24  # a message that decodes allocates at most this many bytes per body byte
REFUSED_RATIO = 40  # nor does a refused one before its refusal (it counts as it goes)

# one item of each densest shape, as msgpack bytes: what costs most memory per wire byte
DENSE_ITEMS = {
    "empty list": b"\x90",
    "empty dict": b"\x80",
    "one-entry dict": b"\x81\x00\x00",
    "list of an empty list": b"\x91\x90",
    "uncached int": b"\xec",  # -20: ints outside -5..256 are new objects
    "two-char str": b"\xa2ab",
    "float": b"\xcb" + bytes(8),
    "one-tuple": msgpack.packb(msgpack.ExtType(4, b"\x91\xc0")),
    "0-d array": codec.packb(np.int8(1).reshape(())),
}


def attack(item: bytes, count: int, padding: int = 0) -> bytes:
    """A list of ``count`` copies of ``item``, then one bytes value of ``padding`` bytes."""
    head = msgpack.packb([]) if count + (padding > 0) == 0 else b"\xdd" + (count + (padding > 0)).to_bytes(4, "big")
    pad = msgpack.packb(bytes(padding)) if padding else b""
    return head + item * count + pad


def peak_while_decoding(body: bytes) -> tuple[int, Any]:
    """(peak bytes allocated while decoding ``body``, the value or the CodecError)."""
    tracemalloc.start()
    try:
        try:
            result: Any = codec.unpackb(body)
        except CodecError as exc:
            result = exc
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape", ["empty list", "empty dict", "list of an empty list", "uncached int"])
def test_a_dense_message_is_refused_naming_the_bound(shape: str) -> None:
    body = attack(DENSE_ITEMS[shape], SIZE // len(DENSE_ITEMS[shape]))
    with pytest.raises(CodecError, match=r"decodes into more than \d+ objects.*numpy arrays"):
        codec.unpackb(body)


def test_the_nested_list_bomb_of_the_issue_is_refused() -> None:
    inner = b"\x9f" + b"\x90" * 15  # 15 empty lists, 16 bytes
    body = b"\xdd" + (SIZE // 16).to_bytes(4, "big") + inner * (SIZE // 16)
    with pytest.raises(CodecError, match="objects"):
        codec.unpackb(body)


@pytest.mark.parametrize("shape", sorted(DENSE_ITEMS))
@pytest.mark.parametrize("spread", [1, 2.5, 4])
def test_memory_per_wire_byte_is_bounded_accepted_or_refused(shape: str, spread: float) -> None:
    """The shape at full density and thinned out by padding, around the budget's edge."""
    item = DENSE_ITEMS[shape]
    count = int(SIZE / spread) // len(item)
    body = attack(item, count, padding=SIZE - count * len(item))
    peak, result = peak_while_decoding(body)
    bound = REFUSED_RATIO if isinstance(result, CodecError) else ACCEPTED_RATIO
    assert peak <= bound * len(body), (shape, spread, peak / len(body), result)


def test_small_messages_and_bulk_data_still_decode() -> None:
    exps = [[3, 1, 0.0, 4, False, False, {}] for _ in range(2000)]  # 2000 tabular steps
    assert codec.unpackb(codec.packb(exps)) == exps
    floats = [0.5] * 100_000
    assert codec.unpackb(codec.packb(floats)) == floats
    array = np.arange(1 << 20, dtype=np.float32)
    assert np.array_equal(codec.decode(codec.encode(array)), array)
    assert np.array_equal(codec.unpackb(codec.packb(array)), array)


def test_the_budget_follows_the_limits() -> None:
    small = codec.Limits(object_allowance=16, bytes_per_object=1, max_objects=100)
    assert object_budget(10, small) == 26
    assert object_budget(10_000, small) == 100
    body = codec.packb([1] * 98)
    with pytest.raises(CodecError, match="more than 100 objects"):
        codec.unpackb(codec.packb([1] * 200), small)
    assert codec.unpackb(body, small) == [1] * 98
    tiny = codec.Limits(max_objects=10)  # below the allowance: small bodies are counted too
    with pytest.raises(CodecError, match="more than 10 objects"):
        codec.unpackb(codec.packb([[]] * 8), tiny)
    assert codec.unpackb(codec.packb([[]] * 4), tiny) == [[]] * 4
    with pytest.raises(ValueError, match="bytes_per_object must be a positive int"):
        codec.Limits(bytes_per_object=0)


def count_values(value: Any) -> int:
    """Values in ``value``: itself plus, recursively, every item, key and value."""
    if type(value) in (list, tuple):
        return 1 + sum(map(count_values, value))
    if type(value) is dict:
        return 1 + sum(count_values(k) + count_values(v) for k, v in value.items())
    return 1


leaves = st.one_of(st.none(), st.integers(-40, 300), st.text(max_size=3), st.just([]), st.just({}))
trees = st.recursive(
    leaves, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.integers(0, 9), kids, max_size=2), max_leaves=6
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(trees, st.integers(1, 6000), st.integers(0, 40_000))
def test_whatever_is_accepted_stays_within_its_object_budget(unit: Any, copies: int, padding: int) -> None:
    body = codec.packb([[unit] * copies, bytes(padding)])
    try:
        value: Any = codec.unpackb(body)
    except CodecError as exc:
        value = exc
    if isinstance(value, CodecError):
        assert "objects" in str(value)
    else:
        assert count_values(value) <= object_budget(len(body), codec.DEFAULT_LIMITS)
