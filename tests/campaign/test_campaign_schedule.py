"""Send times in an explicit zone, and quiet hours checked in theirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from every8d.campaign.schedule import UTC_TS, QuietHours, effective_send_times, parse_send_times

TAIPEI = timezone(timedelta(hours=8))


def test_text_times_are_read_in_taipei_unless_they_say_otherwise():
    values = pa.array(["2026-05-01 09:30", "2026-05-01T09:30:00+00:00", "20260501093000", "", None, "soon"])
    at, error = parse_send_times(values)
    assert at.to_pylist()[:3] == [
        datetime(2026, 5, 1, 1, 30, tzinfo=UTC),
        datetime(2026, 5, 1, 9, 30, tzinfo=UTC),
        datetime(2026, 5, 1, 1, 30, tzinfo=UTC),
    ]
    assert at.to_pylist()[3:] == [None, None, None]
    assert error.to_pylist()[:5] == [None] * 5
    assert "ISO 8601" in error[5].as_py()


def test_naive_timestamps_use_the_given_zone():
    values = pa.array([datetime(2026, 5, 1, 9, 0)], pa.timestamp("us"))
    at, _ = parse_send_times(values, "Asia/Taipei")
    assert at.to_pylist() == [datetime(2026, 5, 1, 1, 0, tzinfo=UTC)]


def test_past_times_mean_at_once_and_the_campaign_time_fills_gaps():
    now = datetime(2026, 5, 1, tzinfo=UTC)
    rows = pa.array([now - timedelta(hours=1), None, now + timedelta(hours=2)], UTC_TS)
    campaign = now + timedelta(hours=5)
    assert effective_send_times(rows, campaign, now, 3).to_pylist() == [
        None,
        campaign,
        now + timedelta(hours=2),
    ]
    assert effective_send_times(None, None, now, 2).to_pylist() == [None, None]


@pytest.mark.parametrize(
    ("local", "inside", "next_local"),
    [
        pytest.param(datetime(2026, 5, 1, 22, 0), True, datetime(2026, 5, 2, 8, 0), id="evening"),
        pytest.param(datetime(2026, 5, 2, 3, 0), True, datetime(2026, 5, 2, 8, 0), id="night"),
        pytest.param(datetime(2026, 5, 2, 8, 0), False, None, id="end-is-allowed"),
        pytest.param(datetime(2026, 5, 1, 20, 59), False, None, id="before-start"),
        pytest.param(datetime(2026, 5, 1, 21, 0), True, datetime(2026, 5, 2, 8, 0), id="start-is-quiet"),
    ],
)
def test_quiet_hours_across_midnight(local, inside, next_local):
    quiet = QuietHours.parse("21:00-08:00")
    at = pa.array([local.replace(tzinfo=TAIPEI)], UTC_TS)
    got_inside, got_next = quiet.check(at, datetime(2000, 1, 1, tzinfo=UTC))
    assert got_inside.to_pylist() == [inside]
    if inside:
        assert got_next[0].as_py() == next_local.replace(tzinfo=TAIPEI)


def test_null_send_time_is_checked_as_now():
    quiet = QuietHours.parse("21:00-08:00")
    now = datetime(2026, 5, 1, 23, 0, tzinfo=TAIPEI)
    assert quiet.next_allowed(now) == datetime(2026, 5, 2, 8, 0, tzinfo=TAIPEI)
    assert quiet.next_allowed(datetime(2026, 5, 1, 12, 0, tzinfo=TAIPEI)) is None


@pytest.mark.parametrize("spec", ["21-08", "25:00-08:00", "08:00-08:00", ""])
def test_bad_quiet_hours_are_refused(spec):
    with pytest.raises(ValueError):
        QuietHours.parse(spec)


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
    st.integers(0, 23),
    st.integers(0, 23),
)
def test_rescheduled_times_are_never_quiet(moment, start, end):
    if start == end:
        return
    quiet = QuietHours.parse(f"{start:02d}:00-{end:02d}:00")
    at = pa.array([moment.replace(tzinfo=UTC)], UTC_TS)
    inside, next_allowed = quiet.check(at, datetime(2000, 1, 1, tzinfo=UTC))
    if inside[0].as_py():
        later = next_allowed[0].as_py()
        assert later > moment.replace(tzinfo=UTC)
        assert not quiet.check(pa.array([later], UTC_TS), later)[0][0].as_py()
