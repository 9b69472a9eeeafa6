"""Phone normalization: the columnar fast path agrees with phonenumbers, every row gets a verdict."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from every8d.phones import PhoneNormalizer, normalize_for_send

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@pytest.mark.parametrize(
    ("raw", "mobile", "reason"),
    [
        pytest.param("0912345678", "+886912345678", None, id="local"),
        pytest.param("+886912345678", "+886912345678", None, id="e164"),
        pytest.param(" 0912-345-678 ", "+886912345678", None, id="dashes-and-spaces"),
        pytest.param("886912345678", "+886912345678", None, id="country-code-without-plus"),
        pytest.param("+886 0912 345 678", "+886912345678", None, id="trunk-zero-after-country-code"),
        pytest.param("0223456789", None, "not_mobile", id="taipei-landline"),
        pytest.param("09123", None, "invalid_number", id="too-short"),
        pytest.param("call me", None, "invalid_number", id="not-a-number"),
        pytest.param("", None, "missing_number", id="empty"),
        pytest.param(None, None, "missing_number", id="null"),
        pytest.param("+14155552671", "+14155552671", "international_not_allowed", id="international"),
    ],
)
def test_verdicts(raw, mobile, reason):
    check = PhoneNormalizer().check(pa.array([raw], pa.string()))
    assert check.mobile.to_pylist() == [mobile]
    assert check.reason.to_pylist() == [reason]
    assert (check.detail[0].as_py() is None) == (reason is None)


def test_international_numbers_pass_when_enabled():
    check = PhoneNormalizer(allow_international=True).check(pa.array(["+14155552671", "0912345678"]))
    assert check.reason.to_pylist() == [None, None]
    assert check.international.to_pylist() == [True, False]


def test_integer_columns_are_read_as_national_numbers():
    check = PhoneNormalizer().check(pa.array([912345678, 223456789]))
    assert check.mobile.to_pylist() == ["+886912345678", None]


def test_phonenumbers_runs_once_per_distinct_value():
    normalizer = PhoneNormalizer()
    raw = pa.array(["0912-345-678"] * 1000 + ["bad"] * 1000 + ["0912345679"] * 1000)
    check = normalizer.check(raw)
    assert normalizer.slow_calls == 2  # canonical 09xxxxxxxx never reaches phonenumbers
    assert check.reason.value_counts().to_pylist() == [
        {"values": None, "counts": 2000},
        {"values": "invalid_number", "counts": 1000},
    ]
    normalizer.check(raw)
    assert normalizer.slow_calls == 2  # and the cache carries across batches


def test_details_never_repeat_the_number():
    check = PhoneNormalizer().check(pa.array(["0223456789", "0912", "+14155552671"]))
    for detail in check.detail.to_pylist():
        assert not re.search(r"\d{4,}", detail)


canonical = st.builds(
    lambda prefix, digits: prefix + digits,
    st.sampled_from(["0", "+886"]),
    st.text(alphabet="0123456789", min_size=8, max_size=10).map(lambda d: "9" + d),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(canonical, min_size=1, max_size=20))
def test_fast_path_agrees_with_phonenumbers(values):
    check = PhoneNormalizer().check(pa.array(values))
    for value, mobile, reason in zip(values, check.mobile.to_pylist(), check.reason.to_pylist(), strict=True):
        expected, expected_reason, _ = normalize_for_send(value)
        assert (mobile, reason) == (expected, expected_reason), value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=20), canonical), min_size=1, max_size=30))
def test_every_row_gets_a_number_or_a_reason(values):
    check = PhoneNormalizer().check(pa.array(values, pa.string()))
    assert len(check.mobile) == len(values)
    for mobile, reason in zip(check.mobile.to_pylist(), check.reason.to_pylist(), strict=True):
        assert (mobile is None) <= (reason is not None)  # no number without a reason
        if mobile is not None:
            assert E164.match(mobile)
