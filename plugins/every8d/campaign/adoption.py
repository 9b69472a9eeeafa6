"""Adopt batches the gateway issued but the ledger never learned, from the gateway's status pushes.

A request whose answer was lost (a killed runner, a timeout, a cut answer)
may have been executed: resolving it through the 24 h filter then records its
recipients ``sent_unconfirmed`` and the chunk ``awaiting_batch``, because the
batch id was in the answer nobody read.  The gateway still pushes that batch's
statuses (``BatchID``, ``RM``, ``MR``), so the batch is matched back to its chunk:

* **by MR**: every personalized (``SendParamSMS``) recipient carries
  ``Mr`` = its ledger ``record_id``; a batch whose pushed MRs are all awaiting
  recipients of one chunk belongs to that chunk;
* **by number** (grouped ``sendSMS``: no MR): the batch's pushed numbers must
  all be awaiting recipients of exactly one chunk whose request was written
  before the first push (and less than a day before).  Two candidate chunks
  (the same number awaiting in both) means no match: the batch is left alone.

An adopted batch is recorded like an answer (:meth:`SendLedger.record`, inside
the campaign's lease), registered for the status sync like any batch, and
listed in ``every8d_send_adopted_batches``.  See docs/exactly-once.md.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from every8d.campaign.ledger import SendLedger
from every8d.campaign.outcomes import BatchSent, ChunkOutcome, RowUpdate

log = logging.getLogger(__name__)

#: Pushes received this long before a chunk's first write cannot be its batch's (clock skew margin).
CLOCK_SKEW = timedelta(minutes=5)
#: A batch's first push comes within this long of its request (statuses are pushed as they happen).
PUSH_WINDOW = timedelta(hours=25)


@dataclass(frozen=True)
class Adoption:
    """One batch matched to one chunk."""

    campaign_id: str
    batch_id: str
    chunk: int
    kind: str
    row_numbers: tuple[int, ...]
    matched_by: str  # mr | mobile
    first_push_at: datetime
    scheduled_for: datetime | None


@dataclass
class AdoptionResult:
    adopted: list[Adoption]
    ambiguous: list[str]  # batch ids whose pushes matched more than one chunk, or rows taken already


def _pushes_by_batch(pushes: pa.Table) -> dict[str, dict[str, Any]]:
    batches: dict[str, dict[str, Any]] = {}
    for batch_id, mobile, mr, first_at in zip(
        *(pushes.column(c).to_pylist() for c in ("batch_id", "mobile", "mr", "first_at")), strict=True
    ):
        entry = batches.setdefault(batch_id, {"mobiles": set(), "mrs": set(), "first_at": first_at})
        if mobile:
            entry["mobiles"].add(mobile)
        if mr:
            entry["mrs"].add(mr)
        entry["first_at"] = min(entry["first_at"], first_at)
    return batches


def match_batches(
    pushes: pa.Table,
    awaiting: pa.Table,
    adopted: set[str] | frozenset[str] = frozenset(),
) -> AdoptionResult:
    """Match pushed batches (:func:`every8d.tracking.pushes.pushed_unregistered_batches`) to awaiting rows.

    Pure: no I/O.  ``awaiting`` holds the awaiting rows of every campaign
    (:meth:`SendLedger.awaiting_rows`), so a number awaiting in two chunks of
    any campaigns matches neither.  A batch is adopted only when its match is
    unambiguous; a ledger row is given to one batch at most (the earliest pushed).
    :param adopted: batches adopted already: their pushes for recipients recorded by then are ignored.
    """
    rows = awaiting.to_pylist()
    by_mr = {(r["record_id"]): r for r in rows}
    chunks: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        chunk = chunks.setdefault(
            (r["campaign_id"], r["chunk"]),
            {
                "mobiles": {},
                "first": r["in_flight_at"],
                "last": r["written_at"],
                "kind": r["kind"],
                "scheduled_for": r["scheduled_for"],
            },
        )
        chunk["mobiles"][r["mobile"]] = r["row_number"]
    taken: set[tuple[str, int]] = set()
    result = AdoptionResult([], [])
    awaiting_mobiles = {r["mobile"] for r in rows}
    for batch_id, pushed in sorted(
        _pushes_by_batch(pushes).items(), key=lambda kv: (kv[1]["first_at"], kv[0])
    ):
        if batch_id in adopted:  # the rest of a batch adopted earlier: only what still awaits counts
            pushed = {
                **pushed,
                "mrs": pushed["mrs"] & by_mr.keys(),
                "mobiles": pushed["mobiles"] & awaiting_mobiles,
            }
            if not pushed["mrs"] and not pushed["mobiles"]:
                continue
        if pushed["mrs"]:
            found = [by_mr.get(mr) for mr in pushed["mrs"]]
            matched = [m for m in found if m is not None]
            if len(matched) < len(found):
                continue  # an MR not of an awaiting recipient: another sender's batch, or adopted already
            owners = {(m["campaign_id"], m["chunk"]) for m in matched}
            numbers = sorted(m["row_number"] for m in matched)
            how = "mr"
        else:
            owners = {
                key
                for key, info in chunks.items()
                if pushed["mobiles"] <= info["mobiles"].keys()
                and info["first"] is not None
                and info["first"] - CLOCK_SKEW <= pushed["first_at"]
                and pushed["first_at"] <= (info["last"] or info["first"]) + PUSH_WINDOW
            }
            if not owners:
                continue
            numbers = sorted(chunks[key]["mobiles"][m] for key in owners for m in pushed["mobiles"])
            how = "mobile"
        if len(owners) != 1 or not numbers:
            result.ambiguous.append(batch_id)
            continue
        key = owners.pop()
        claimed = {(key[0], n) for n in numbers}
        if taken & claimed:
            result.ambiguous.append(batch_id)
            continue
        taken |= claimed
        info = chunks[key]
        result.adopted.append(
            Adoption(
                key[0],
                batch_id,
                key[1],
                info["kind"],
                tuple(numbers),
                how,
                pushed["first_at"],
                info["scheduled_for"],
            )
        )
    return result


def outcome_of(adoption: Adoption, *, remaining: int, points: Decimal) -> ChunkOutcome:
    """The ledger outcome of an adoption: the same shape as a send answer carrying the batch id.

    :param remaining: the chunk's awaiting recipients left after this (0: the chunk is ``sent``).
    :param points: the adopted recipients' estimated points (the answer with the real cost was lost).
    """
    batch = BatchSent(
        adoption.batch_id,
        adoption.kind,
        adoption.first_push_at,
        adoption.scheduled_for,
        len(adoption.row_numbers),
        points,
    )
    return ChunkOutcome(
        adoption.chunk,
        "sent" if remaining == 0 else "awaiting_batch",
        [RowUpdate("sent", adoption.row_numbers, adoption.batch_id)],
        [batch],
        sent=len(adoption.row_numbers),
        cost=points,
    )


def adopt_for_campaign(
    ledger: SendLedger,
    *,
    fenced: Callable[[], AbstractContextManager[Any]],
    register: Callable[[list[ChunkOutcome]], Any],
    owner: str,
    now: datetime | None = None,
) -> AdoptionResult:
    """Match and record the pushed batches of one campaign's awaiting chunks, holding its lease.

    :param fenced: the lease's fenced transaction (every read and write happens inside it).
    :param register: registers the outcomes' batches for the status sync (in the same transaction).
    """
    from every8d.tracking.pushes import pushed_unregistered_batches

    now = now or datetime.now(UTC)
    with fenced():
        awaiting = ledger.awaiting_rows(every_campaign=True)
        mine = [r for r in awaiting.to_pylist() if r["campaign_id"] == ledger.campaign_id]
        if not mine:
            return AdoptionResult([], [])
        first = min(r["in_flight_at"] for r in mine if r["in_flight_at"] is not None)
        adopted = ledger.adopted_batch_ids()
        pushes = pushed_unregistered_batches(ledger.wh, first - CLOCK_SKEW, adopted)
        found = match_batches(pushes, awaiting, set(adopted))
        result = AdoptionResult(
            [a for a in found.adopted if a.campaign_id == ledger.campaign_id], found.ambiguous
        )
        if not result.adopted:
            return result
        points = {r["row_number"]: Decimal(r["points"] or 0) for r in mine}
        left: dict[int, int] = {}
        for r in mine:
            left[r["chunk"]] = left.get(r["chunk"], 0) + 1
        for adoption in result.adopted:
            left[adoption.chunk] -= len(adoption.row_numbers)
        outcomes = [
            outcome_of(a, remaining=left[a.chunk], points=sum((points[r] for r in a.row_numbers), Decimal(0)))
            for a in result.adopted
        ]
        ledger.record(outcomes, now)
        register(outcomes)
        ledger.record_adopted(
            [
                {
                    "campaign_id": ledger.campaign_id,
                    "batch_id": a.batch_id,
                    "chunk": a.chunk,
                    "recipients": len(a.row_numbers),
                    "matched_by": a.matched_by,
                    "first_push_at": a.first_push_at,
                    "adopted_by": owner,
                    "adopted_at": now,
                }
                for a in result.adopted
            ]
        )
    for a in result.adopted:
        log.warning(
            "campaign %s: batch %s adopted from status pushes for chunk %d (%d recipient(s), by %s)",
            ledger.campaign_id,
            a.batch_id,
            a.chunk,
            len(a.row_numbers),
            a.matched_by,
        )
    return result


def adopt_pushed_batches(warehouse: Any, *, lease_seconds: float = 60.0) -> dict[str, int]:
    """Adopt pushed batches for every campaign awaiting one (the status DAG's push step runs this).

    Each campaign is handled under its own lease, taken without waiting: a
    campaign whose runner is live is skipped (that runner adopts at its end); an
    expired lease is free, as for any runner (a frozen runner that wakes stops at its next fenced write).
    :return: ``{"adopted": batches, "ambiguous": batches, "busy": campaigns skipped}``.
    """
    import threading

    from every8d.campaign.lease import Lease
    from every8d.campaign.ledger import campaigns_awaiting_batches
    from every8d.tracking.batches import register_batches

    figures = {"adopted": 0, "busy": 0}
    ambiguous: set[str] = set()
    for campaign_id in campaigns_awaiting_batches(warehouse):
        owner = f"adopt-{uuid.uuid4().hex}"
        lease = Lease(warehouse, campaign_id, owner, lease_seconds, threading.RLock())
        if not lease.try_acquire({}):
            figures["busy"] += 1
            continue
        try:
            ledger = SendLedger(warehouse, campaign_id)

            def register(outcomes: list[ChunkOutcome], campaign_id: str = campaign_id) -> None:
                register_batches(
                    warehouse, [registration(b, campaign_id) for o in outcomes for b in o.batches]
                )

            result = adopt_for_campaign(ledger, fenced=lease.fenced, register=register, owner=owner)
        finally:
            lease.release()
        figures["adopted"] += len(result.adopted)
        ambiguous.update(result.ambiguous)
    return {**figures, "ambiguous": len(ambiguous)}


def registration(batch: BatchSent, campaign_id: str, validity_minutes: int | None = None) -> dict[str, Any]:
    """The ``register_batches`` row of a campaign's batch."""
    return {
        "batch_id": batch.batch_id,
        "campaign_id": campaign_id,
        "kind": batch.kind,
        "sent_at": batch.sent_at,
        "scheduled_at": batch.scheduled_at,
        "recipients": batch.recipients,
        "points": batch.points,
        "validity_minutes": validity_minutes,
    }
