"""Long decoder fuzz runs (``pytest -m slow tests/test_codec_fuzz.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamrl import codec
from tests.security import test_codec_amplification as amplification
from tests.test_codec import decode_ext, decodes_or_codec_error, mutate_and_decode, round_trips, values

pytestmark = pytest.mark.slow
LONG = settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))


@LONG
@given(values)
def test_round_trip_long(value: Any) -> None:
    round_trips(value)


@LONG
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_long(data: bytes) -> None:
    decodes_or_codec_error([data])
    decodes_or_codec_error([data[:7], data[7:]])


@LONG
@given(values, st.data())
def test_mutated_encodings_of_arbitrary_values_long(value: Any, data: st.DataObject) -> None:
    body = bytearray(codec.packb(value))
    for _ in range(data.draw(st.integers(1, 3))):
        if not body:
            break
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    decodes_or_codec_error([bytes(body)])


@LONG
@given(st.data())
def test_mutated_frames_long(data: st.DataObject) -> None:
    mutate_and_decode(data)


@LONG
@given(st.integers(-128, 127), st.binary(max_size=300))
def test_ext_payloads_long(code: int, payload: bytes) -> None:
    decode_ext(code, payload)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(amplification.trees, st.integers(1, 60_000), st.integers(0, 400_000))
def test_accepted_values_stay_within_their_object_budget_long(unit: Any, copies: int, padding: int) -> None:
    amplification.test_whatever_is_accepted_stays_within_its_object_budget.hypothesis.inner_test(  # type: ignore[attr-defined]
        unit, copies, padding
    )
