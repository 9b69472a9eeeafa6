"""Settle chunks left ``in_flight``: the request left, and nobody knows whether the gateway took it.

Never resend blindly.  The policy (docs/exactly-once.md):

* ``resend_filtered`` (default, SMS only, within 23 h of the first attempt):
  resend through ``sendSMS4FilterMessage``, one call per distinct (text, send
  time).  The gateway refuses a number that got the same text in the last
  24 h, so whoever the lost request reached is filtered (recorded
  ``sent_unconfirmed``) and everyone else is sent now (``sent``).  Repeating
  the resolution is as safe as doing it once.
  The filtered recipients' chunk is ``awaiting_batch`` until the batch that
  did reach them is adopted from its status pushes (:mod:`.adoption`).
* otherwise (MMS, which has no filter endpoint; too late for the 24 h window;
  a *scheduled* request whose send time has not passed by the settle time, so
  the gateway may not have handed the original on and the filter cannot see
  it; or policy ``needs_review``): park the recipients as ``needs_review`` and
  let a person decide; the task fails with the count.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa

from every8d.campaign.ledger import ChunkInfo
from every8d.campaign.outcomes import BatchSent, ChunkOutcome, RowUpdate
from every8d.campaign.sender import SendSettings, safe_error
from every8d.client import Every8dClient
from every8d.errors import GatewayError
from every8d.phones import observed_mobile

InDoubtPolicy = Literal["resend_filtered", "needs_review"]
#: The gateway's filter looks back 24 h; keep an hour of margin for clocks and slow runs.
FILTER_SAFE_WINDOW = timedelta(hours=23)
FILTER_EVERYTHING = -98


@dataclass(frozen=True)
class _Group:
    text: str
    send_at: datetime | None
    row_numbers: list[int]
    mobiles: list[str]


def _groups(rows: pa.Table) -> list[_Group]:
    """Recipients sharing a text and send time: one filtered request each."""
    groups: dict[tuple[str, Any], _Group] = {}
    for row_number, mobile, text, send_at in zip(
        rows.column("row_number").to_pylist(),
        rows.column("mobile").to_pylist(),
        rows.column("text").to_pylist(),
        rows.column("send_at").to_pylist(),
        strict=True,
    ):
        group = groups.setdefault((text, send_at), _Group(text, send_at, [], []))
        group.row_numbers.append(row_number)
        group.mobiles.append(mobile)
    return list(groups.values())


def park_reason(
    chunk: ChunkInfo, policy: InDoubtPolicy, now: datetime, settle: timedelta = timedelta(0)
) -> str | None:
    """Why this chunk cannot be resolved by a filtered resend (None: it can).

    :param now: the warehouse's clock.
    :param settle: how long after its send time a scheduled original is surely handed on.
    """
    if policy == "needs_review":
        return "outcome unknown; policy needs_review: check the gateway's records before resending"
    if chunk.kind == "mms":
        return "MMS outcome unknown and the gateway has no MMS duplicate filter: check before resending"
    if chunk.in_flight_at is not None and now - chunk.in_flight_at > FILTER_SAFE_WINDOW:
        return "outcome unknown for more than 23 h: the 24 h duplicate filter can no longer protect a resend"
    if chunk.scheduled_for is not None and chunk.scheduled_for + settle > now:
        return (
            "scheduled send with outcome unknown: the original is not handed on before its send time, so "
            "the 24 h duplicate filter cannot see it; check the account's bookings before resending"
        )
    return None


def park(chunk: ChunkInfo, why: str) -> ChunkOutcome:
    return ChunkOutcome(chunk.chunk, "needs_review", [RowUpdate("needs_review", None, error=why)], error=why)


def _schedule(group: _Group, now: datetime, defer_to: datetime | None) -> datetime | None:
    return group.send_at if group.send_at is not None and group.send_at > now else defer_to


def _resend_group(
    client: Every8dClient, group: _Group, settings: SendSettings, now: datetime, defer_to: datetime | None
) -> tuple[list[RowUpdate], BatchSent | None, int, str | None]:
    """``(updates, batch, calls, error)`` for one group; no updates when its outcome is still unknown."""
    schedule = _schedule(group, now, defer_to)
    try:
        result = client.send_sms_filtered(
            group.text,
            group.mobiles,
            subject=settings.subject,
            schedule_at=schedule,
            validity_minutes=settings.validity_minutes,
        )
    except GatewayError as error:
        if error.code == FILTER_EVERYTHING:
            return (
                [
                    RowUpdate(
                        "sent_unconfirmed", group.row_numbers, error="filtered: same text sent within 24 h"
                    )
                ],
                None,
                1,
                None,
            )
        return [], None, 1, safe_error(error)
    except Exception as error:  # no answer, unreachable, refused: the original may still have gone
        return [], None, 1, safe_error(error)
    filtered = {observed_mobile(str(n)) or str(n) for n in result.filtered}
    confirmed = [r for r, m in zip(group.row_numbers, group.mobiles, strict=True) if m in filtered]
    fresh = [r for r, m in zip(group.row_numbers, group.mobiles, strict=True) if m not in filtered]
    updates = []
    if confirmed:
        updates.append(RowUpdate("sent_unconfirmed", confirmed, error="filtered: same text sent within 24 h"))
    if fresh:
        updates.append(RowUpdate("sent", fresh, result.batch_id))
    batch = BatchSent(
        result.batch_id,
        "sms",
        datetime.now(UTC),
        schedule,
        len(fresh),
        Decimal(result.cost),
        result.unsent,
    )
    return updates, batch, 1, None


def resolve_chunk(
    client: Every8dClient,
    chunk: ChunkInfo,
    rows: pa.Table,
    settings: SendSettings,
    *,
    policy: InDoubtPolicy = "resend_filtered",
    now: datetime | None = None,
    defer_to: datetime | None = None,
    executor: Executor | None = None,
    settle: timedelta = timedelta(0),
    before_resend: Callable[[datetime | None], Any] | None = None,
) -> ChunkOutcome:
    """Settle one in-doubt chunk (``rows``: its recipients still ``in_flight``).

    :param now: the warehouse's clock.
    :param before_resend: called with the latest send time of the resends right
        before they leave (the runner's fenced stamp; it raises when the lease is gone).
    """
    now = now or datetime.now(UTC)
    if rows.num_rows == 0:
        return ChunkOutcome(chunk.chunk, "sent")
    why = park_reason(chunk, policy, now, settle)
    if why is not None:
        return park(chunk, why)
    groups = _groups(rows)
    if before_resend is not None:
        times = [_schedule(g, now, defer_to) for g in groups]
        known = [t for t in times if t is not None]
        before_resend(max(known) if known else None)
    if executor is None:
        results = [_resend_group(client, g, settings, now, defer_to) for g in groups]
    else:
        results = list(executor.map(lambda g: _resend_group(client, g, settings, now, defer_to), groups))
    outcome = ChunkOutcome(chunk.chunk, "sent")
    errors = []
    for updates, batch, calls, error in results:
        outcome.rows.extend(updates)
        outcome.calls += calls
        if batch is not None:
            outcome.batches.append(batch)
            outcome.sent += batch.recipients - batch.unsent
            outcome.unsent += batch.unsent
            outcome.cost += batch.points
        if error is not None:
            errors.append(error)
    outcome.filtered = sum(len(u.row_numbers or ()) for u in outcome.rows if u.state == "sent_unconfirmed")
    if outcome.unsent:
        outcome.unsent_resolved = False
        outcome.stop = "no_credit"
    if (
        outcome.filtered
    ):  # they have the text from a batch whose id was in the lost answer: adopted from pushes
        outcome.state = "awaiting_batch"
    if errors:
        outcome.state = "in_flight"
        outcome.stop = "outcome_unknown"
        outcome.error = f"{len(errors)} of {len(groups)} filtered resend(s) failed; first: {errors[0]}"
    return outcome
