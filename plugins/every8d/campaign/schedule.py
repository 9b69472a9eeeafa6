"""When each message goes out: per-row send times, the campaign's time, and quiet hours.

All times are UTC ``timestamp[us, tz=UTC]`` columns; null means "send at
once".  Naive times in the audience are read in an explicit zone (Asia/Taipei
by default), never the machine's.  Quiet hours are checked in their own zone
with Arrow kernels, so a million rows cost a few vector operations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from every8d.arrow_types import UTC_TIME

UTC_TS = UTC_TIME  # the name the campaign modules use
DEFAULT_ZONE = "Asia/Taipei"
QuietPolicy = Literal["reschedule", "reject"]
_DAY_US = 86_400_000_000
_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")


def _parse_one(text: str, zone: ZoneInfo) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    if text.isdigit() and len(text) == 14:  # the gateway's own yyyyMMddHHmmss
        moment = datetime.strptime(text, "%Y%m%d%H%M%S")
    else:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def parse_send_times(
    values: pa.Array | pa.ChunkedArray, zone: str = DEFAULT_ZONE
) -> tuple[pa.Array, pa.Array]:
    """``(send_at, error)`` from an audience column of times; null and empty mean "no own time".

    Timestamps with a zone are converted; naive ones, and text without an
    offset, are read in ``zone``.  Text is parsed once per distinct value
    (ISO 8601 or ``yyyyMMddHHmmss``); an unreadable value gets a per-row error.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n = len(values)
    no_error = pa.nulls(n, pa.string())
    if pa.types.is_timestamp(values.type):
        if values.type.tz is None:
            values = pc.assume_timezone(values, zone, ambiguous="earliest", nonexistent="latest")
        return pc.cast(pc.cast(values, pa.timestamp(values.type.unit, tz="UTC")), UTC_TS), no_error
    if pa.types.is_date(values.type):
        return pa.nulls(n, UTC_TS), pc.if_else(pc.is_valid(values), "a date without a time of day", no_error)
    if pa.types.is_null(values.type):
        return pa.nulls(n, UTC_TS), no_error
    text = pc.cast(values, pa.string())
    distinct = pc.unique(pc.drop_null(text))
    tz = ZoneInfo(zone)
    parsed: list[datetime | None] = []
    errors: list[str | None] = []
    for value in distinct.to_pylist():
        try:
            parsed.append(_parse_one(value, tz))
            errors.append(None)
        except ValueError:
            parsed.append(None)
            errors.append("send time is not ISO 8601 (e.g. 2026-05-01 09:30) or yyyyMMddHHmmss")
    index = pc.index_in(text, value_set=distinct)
    return pc.take(pa.array(parsed, UTC_TS), index), pc.take(pa.array(errors, pa.string()), index)


def effective_send_times(
    row_at: pa.Array | None, campaign_at: datetime | None, now: datetime, n: int
) -> pa.Array:
    """Each row's own time, else the campaign's; times not in the future become null (at once)."""
    result = pa.nulls(n, UTC_TS) if row_at is None else row_at
    if campaign_at is not None:
        result = pc.fill_null(result, pa.scalar(campaign_at.astimezone(UTC), UTC_TS))
    future = pc.greater(result, pa.scalar(now.astimezone(UTC), UTC_TS))
    return pc.if_else(pc.fill_null(future, False), result, pa.scalar(None, UTC_TS))


@dataclass(frozen=True)
class QuietHours:
    """A daily window with no sends, e.g. 21:00–08:00 Asia/Taipei (may cross midnight).

    :param policy: ``reschedule`` moves a send to the window's end; ``reject``
        refuses the row (reason ``quiet_hours``).
    """

    start: time
    end: time
    zone: str = DEFAULT_ZONE
    policy: QuietPolicy = "reschedule"

    @classmethod
    def parse(cls, spec: str, zone: str = DEFAULT_ZONE, policy: str = "reschedule") -> QuietHours:
        """``"21:00-08:00"`` → :class:`QuietHours`."""
        match = _QUIET.match(spec or "")
        if not match:
            raise ValueError(f"quiet_hours must look like '21:00-08:00', not {spec!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"quiet_hours {spec!r} is not a pair of times of day")
        if policy not in ("reschedule", "reject"):
            raise ValueError(f"quiet_hours_policy must be 'reschedule' or 'reject', not {policy!r}")
        ZoneInfo(zone)  # unknown zones fail here, before anything is read
        if (h1, m1) == (h2, m2):
            raise ValueError("quiet_hours start and end are the same time")
        return cls(time(h1, m1), time(h2, m2), zone, policy)  # type: ignore[arg-type]

    @property
    def _start_us(self) -> int:
        return (self.start.hour * 3600 + self.start.minute * 60) * 1_000_000

    @property
    def _end_us(self) -> int:
        return (self.end.hour * 3600 + self.end.minute * 60) * 1_000_000

    def check(self, send_at: pa.Array, now: datetime) -> tuple[pa.Array, pa.Array]:
        """``(in_window, next_allowed)`` per row; null ``send_at`` is checked as ``now``.

        ``next_allowed`` is the window's next end (UTC), where ``in_window`` is true.
        """
        moments = pc.fill_null(send_at, pa.scalar(now.astimezone(UTC), UTC_TS))
        local = pc.local_timestamp(pc.cast(moments, pa.timestamp("us", tz=self.zone)))
        day = pc.floor_temporal(local, unit="day")
        tod = pc.subtract(pc.cast(local, pa.int64()), pc.cast(day, pa.int64()))
        start, end = self._start_us, self._end_us
        if start < end:
            inside = pc.and_(pc.greater_equal(tod, start), pc.less(tod, end))
            next_local_us = pc.add(pc.cast(day, pa.int64()), end)
        else:
            late = pc.greater_equal(tod, start)
            inside = pc.or_(late, pc.less(tod, end))
            next_local_us = pc.add(pc.cast(day, pa.int64()), pc.if_else(late, _DAY_US + end, end))
        next_local = pc.cast(next_local_us, pa.timestamp("us"))
        next_utc = pc.cast(
            pc.assume_timezone(next_local, self.zone, ambiguous="earliest", nonexistent="latest"), UTC_TS
        )
        return inside, next_utc

    def next_allowed(self, now: datetime) -> datetime | None:
        """None when ``now`` is outside the window, else the window's end as an aware UTC datetime."""
        inside, next_utc = self.check(pa.nulls(1, UTC_TS), now)
        return next_utc[0].as_py() if inside[0].as_py() else None
