"""When to poll a batch again and when to stop: pure functions of times and counts.

Most statuses settle within minutes, a few take hours, and the gateway keeps
trying for the batch's validity window (``RETRYTIME``).  So a batch is polled
often while young and rarely when old, and closed when every message is final
or when its validity window plus a grace period has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

#: (age below which, poll every): young batches are polled often.
POLL_STEPS: tuple[tuple[timedelta, timedelta], ...] = (
    (timedelta(hours=1), timedelta(minutes=5)),
    (timedelta(days=1), timedelta(hours=1)),
)
#: Poll interval once a batch is older than the last step.
LATE_POLL_INTERVAL = timedelta(days=1)
#: Extra wait after the validity window before still-pending messages count as expired.
DEFAULT_EXPIRY_GRACE = timedelta(hours=1)

CloseReason = Literal["all_final", "expired"]
CLOSE_REASONS: tuple[str, ...] = get_args(CloseReason)


def poll_interval(age: timedelta) -> timedelta:
    """How long to wait before the next poll of a batch that went out ``age`` ago."""
    for below, every in POLL_STEPS:
        if age < below:
            return every
    return LATE_POLL_INTERVAL


@dataclass(frozen=True)
class BatchClock:
    """The times that decide a batch's polling: when it goes out and when it must be settled.

    :param send_at: when the gateway sends it (schedule time, else the send call's time).
    :param validity_minutes: the batch's ``RETRYTIME``.
    :param grace: wait after the validity window before declaring leftovers expired.
    """

    send_at: datetime
    validity_minutes: int
    grace: timedelta = DEFAULT_EXPIRY_GRACE

    @property
    def deadline(self) -> datetime:
        """After this, messages without a final status are expired."""
        return self.send_at + timedelta(minutes=self.validity_minutes) + self.grace

    def next_poll_at(self, now: datetime) -> datetime:
        """The next poll: the send time for a batch not sent yet, else by age, never past the deadline."""
        if now < self.send_at:
            return self.send_at
        following = now + poll_interval(now - self.send_at)
        return min(following, self.deadline) if now < self.deadline else following


def close_reason(
    *,
    gateway_total: int,
    messages: int,
    final: int,
    now: datetime,
    deadline: datetime,
    listed: int | None = None,
) -> CloseReason | None:
    """Why the batch can stop being polled, or None to keep polling.

    A batch closes only on a complete listing: one that listed fewer rows than
    its count line (a cut page) must never close it, not even as ``expired``,
    or the rows it missed would never be polled again.

    :param gateway_total: messages the gateway says the batch has (its count line).
    :param listed: rows this poll's listing held; None (no listing) never closes.
    :param messages: message rows we hold for the batch.
    :param final: of those, rows with a final status.
    """
    if listed is None or listed != gateway_total or messages < gateway_total:
        return None
    if messages > 0 and final >= messages:
        return "all_final"
    if now >= deadline:
        return "expired"
    return None
