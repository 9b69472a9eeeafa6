"""The columnar point estimator gives pricing.sms_points's answer for every text."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from every8d import pricing
from every8d.campaign.points import as_points, sms_points_array, utf16_lengths


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=1200), st.booleans()), min_size=1, max_size=20))
def test_matches_pricing_for_arbitrary_text(rows):
    texts = [t for t, _ in rows]
    international = [i for _, i in rows]
    got = sms_points_array(pa.array(texts), pa.array(international)).to_pylist()
    assert got == [int(pricing.sms_points(t, international=i)) for t, i in rows]


@given(st.text(max_size=400))
def test_utf16_length_matches_pricing(text):
    assert utf16_lengths(pa.array([text])).to_pylist() == [pricing.sms_length(text)]


def test_tier_boundaries_and_empty_text():
    texts = ["x" * 70, "x" * 71, "x" * 333, "x" * 334, "😀" * 35, "😀" * 36, "", None]
    assert sms_points_array(pa.array(texts)).to_pylist() == [1, 2, 5, 6, 1, 2, None, None]


def test_points_fit_the_ledger_type():
    assert as_points(pa.array([1, 15])).type == pa.decimal128(12, 2)
