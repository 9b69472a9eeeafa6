"""The durable send ledger: one row per recipient, one per chunk, one per campaign, one per reject.

Every state change is committed before the step that depends on it: a chunk
is ``in_flight`` in the warehouse before its request leaves, and ``sent``
(with its batch id) only after the answer.  So after any crash the ledger
says exactly which chunks may have gone out and need resolving, and which
never left.  All SQL uses ``?`` placeholders and runs on DuckDB, Postgres and MySQL/MariaDB:
where they spell a thing differently the warehouse's dialect (``wh.sql``) spells it.
``row_number`` is quoted: MariaDB reserves the word.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from every8d.arrow_types import POINTS, UTC_TIME
from every8d.campaign.outcomes import ChunkOutcome
from every8d.campaign.plan import PlanStats
from every8d.campaign.points import as_points
from every8d.warehouse.base import Warehouse
from every8d.warehouse.dialects import quote
from every8d.warehouse.tables import TableSpec

IN_LIST_MAX = 900  # placeholders per IN (...) list


def _f(name: str, arrow_type: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, arrow_type, nullable=nullable)


LEDGER = TableSpec(
    "every8d_send_ledger",
    pa.schema(
        [
            _f("campaign_id", pa.string(), False),
            _f("row_number", pa.int64(), False),  # 1-based row of the audience
            _f("chunk", pa.int32(), False),
            _f("route", pa.string(), False),  # sms | param | mms
            _f("kind", pa.string(), False),  # sms | mms
            _f("template_id", pa.string()),
            _f("recipient_key", pa.string()),
            _f("mobile", pa.string(), False),  # E.164
            _f("name", pa.string()),
            _f("text", pa.string(), False),
            _f("send_at", UTC_TIME),  # null: at once
            _f("international", pa.bool_()),
            _f("record_id", pa.string(), False),  # Mr
            _f("points", POINTS),  # estimate
            _f("state", pa.string(), False),  # RecipientState
            _f("batch_id", pa.string()),
            _f("attempt", pa.int32(), False),  # requests that carried this recipient
            _f("error", pa.string()),
            _f("planned_at", UTC_TIME, False),
            _f("in_flight_at", UTC_TIME),
            _f("sent_at", UTC_TIME),
            _f("updated_at", UTC_TIME, False),
            _f("refunded_points", POINTS),
            _f("cancelled_at", UTC_TIME),
        ]
    ),
    ("campaign_id", "row_number"),
)

CHUNKS = TableSpec(
    "every8d_send_chunks",
    pa.schema(
        [
            _f("campaign_id", pa.string(), False),
            _f("chunk", pa.int32(), False),
            _f("route", pa.string(), False),
            _f("kind", pa.string(), False),
            _f("recipients", pa.int32(), False),
            _f("points", POINTS),  # estimate
            _f("send_at", UTC_TIME),  # shared send time of sms/mms chunks
            _f("state", pa.string(), False),  # ChunkState
            _f("attempt", pa.int32(), False),
            _f("batch_id", pa.string()),  # of the last accepted request
            _f("batches", pa.int32(), False),  # batches created for this chunk (resolution may add some)
            _f("sent", pa.int32(), False),
            _f("unsent", pa.int32(), False),
            _f("filtered", pa.int32(), False),
            _f("cost", POINTS),  # points charged
            _f("unsent_resolved", pa.bool_(), False),
            _f("error", pa.string()),
            _f("in_flight_at", UTC_TIME),
            _f(
                "claimed_by", pa.string()
            ),  # the run that claimed it (the lease holder; two runs never share a chunk)
            _f(
                "written_at", UTC_TIME
            ),  # warehouse time the last request was about to be written: settle counts from here
            _f("scheduled_for", UTC_TIME),  # latest send time that request carried (null: at once)
            _f("sent_at", UTC_TIME),
            _f("updated_at", UTC_TIME, False),
            _f("refunded_points", POINTS),
            _f("cancelled_at", UTC_TIME),
        ]
    ),
    ("campaign_id", "chunk"),
)

CAMPAIGNS = TableSpec(
    "every8d_campaigns",
    pa.schema(
        [
            _f("campaign_id", pa.string(), False),
            _f("kind", pa.string(), False),
            _f("state", pa.string(), False),  # planning | planned | done
            _f("fingerprint", pa.string(), False),
            _f("subject", pa.string()),
            _f("validity_minutes", pa.int32()),
            _f("image", pa.binary()),  # MMS: the image as planned, so a resumed run sends the same one
            _f("image_type", pa.string()),
            _f("audience_rows", pa.int64()),
            _f("recipients", pa.int64()),
            _f("rejected", pa.int64()),
            _f("points", POINTS),
            _f("chunks", pa.int32()),
            _f("dag_id", pa.string()),
            _f("task_id", pa.string()),
            _f("run_id", pa.string()),
            _f("planned_at", UTC_TIME),
            _f("updated_at", UTC_TIME, False),
            _f("finished_at", UTC_TIME),
            _f("lease_owner", pa.string()),  # the runner allowed to write (see every8d.campaign.lease)
            _f("lease_until", UTC_TIME),  # warehouse time the lease expires unless renewed
            _f("lease_epoch", pa.int32()),  # how many times the lease changed hands
        ]
    ),
    ("campaign_id",),
)

REJECTS = TableSpec(
    "every8d_send_rejects",
    pa.schema(
        [
            _f("campaign_id", pa.string(), False),
            _f("row_number", pa.int64(), False),
            _f("reason", pa.string(), False),  # RejectReason
            _f("detail", pa.string()),
            _f("recipient_key", pa.string()),
            _f("raw_mobile", pa.string()),
            _f("mobile", pa.string()),
            _f("rejected_at", UTC_TIME, False),
        ]
    ),
    ("campaign_id", "row_number"),
)

STALE_BATCHES = TableSpec(
    "every8d_send_stale_batches",
    pa.schema(
        [
            _f("campaign_id", pa.string(), False),
            _f("batch_id", pa.string(), False),
            _f("chunk", pa.int32(), False),
            _f("recorded_by", pa.string(), False),  # the runner that had lost its lease
            _f("recipients", pa.int32()),
            _f("sent", pa.int32()),
            _f("cost", POINTS),
            _f("duplicates", pa.int32()),  # recipients the new owner had sent as well when this was recorded
            _f("recorded_at", UTC_TIME, False),
        ]
    ),
    ("campaign_id", "batch_id"),
)

ADOPTED_BATCHES = TableSpec(
    "every8d_send_adopted_batches",
    pa.schema(
        [
            _f("campaign_id", pa.string(), False),
            _f("batch_id", pa.string(), False),
            _f("chunk", pa.int32(), False),
            _f("recipients", pa.int32(), False),  # ledger recipients the batch was matched to
            _f("matched_by", pa.string(), False),  # mr | mobile
            _f("first_push_at", UTC_TIME),  # earliest push of the batch we received
            _f("adopted_by", pa.string(), False),  # the lease holder that recorded it
            _f("adopted_at", UTC_TIME, False),
        ]
    ),
    ("campaign_id", "batch_id"),
)

SEND_TABLES = (LEDGER, CHUNKS, CAMPAIGNS, REJECTS, STALE_BATCHES, ADOPTED_BATCHES)

#: Ledger columns the sender reads for a chunk.
ROW_COLUMNS = (
    "row_number",
    "chunk",
    "route",
    "mobile",
    "name",
    "text",
    "send_at",
    "record_id",
    "points",
    "international",
    "state",
    "batch_id",
)


@dataclass(frozen=True)
class ChunkInfo:
    """One row of ``every8d_send_chunks`` (no numbers)."""

    chunk: int
    route: str
    kind: str
    recipients: int
    points: Decimal
    send_at: datetime | None
    state: str
    attempt: int
    batch_id: str | None
    unsent: int
    unsent_resolved: bool
    in_flight_at: datetime | None  # first request written
    updated_at: datetime | None  # last change
    claimed_by: str | None = None
    written_at: datetime | None = None  # last request written (warehouse clock); None: claimed, never written
    scheduled_for: datetime | None = None  # latest send time the last request carried


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _slices(values: Sequence[Any], size: int = IN_LIST_MAX) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _const(value: Any, arrow_type: pa.DataType, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, arrow_type), n)


class SendLedger:
    """The ledger of one campaign in one warehouse.

    :param warehouse: from :func:`every8d.warehouse.open_warehouse`; one thread uses it.
    """

    def __init__(self, warehouse: Warehouse, campaign_id: str) -> None:
        if not campaign_id or len(campaign_id) > 250:
            raise ValueError("campaign_id must be 1 to 250 characters")
        self.wh = warehouse
        self.campaign_id = campaign_id

    # -- tables and campaign row ----------------------------------------------------------

    def ensure_tables(self) -> None:
        with self.wh.transaction():
            for spec in SEND_TABLES:
                spec.ensure(self.wh)
            self.wh.ensure_index("every8d_send_ledger_chunk", LEDGER.name, ("campaign_id", "chunk"))

    def campaign(self) -> dict[str, Any] | None:
        """The campaign's row, or None when it was never planned."""
        table = self.wh.query_arrow(
            f"SELECT * FROM {CAMPAIGNS.name} WHERE campaign_id = ?", [self.campaign_id]
        )
        rows = table.to_pylist()
        return rows[0] if rows else None

    def start_plan(self, meta: dict[str, Any], now: datetime) -> None:
        """Forget what a crashed planning left (nothing was sent from it) and mark the campaign ``planning``.

        Call it holding the campaign's lease (:meth:`every8d.campaign.lease.Lease.fenced`): the planner
        that left those rows is then gone for good, and a second runner cannot wipe this plan.
        """
        with self.wh.transaction():
            for spec in (LEDGER, CHUNKS, REJECTS):
                self.wh.execute(f"DELETE FROM {spec.name} WHERE campaign_id = ?", [self.campaign_id])
            names = [k for k in meta if k in CAMPAIGNS.schema.names and k != "campaign_id"]
            changed = self.wh.execute(
                f"""UPDATE {CAMPAIGNS.name} SET {", ".join(f"{k} = ?" for k in names)}{"," if names else ""}
                        state = 'planning', updated_at = ? WHERE campaign_id = ?""",
                [*(meta[k] for k in names), now, self.campaign_id],
            )
            if changed != 1:  # no lease row (a ledger used without a runner): create the campaign row
                row: dict[str, Any] = dict.fromkeys(CAMPAIGNS.schema.names)
                row.update({k: meta[k] for k in names})
                row.update(campaign_id=self.campaign_id, state="planning", updated_at=now)
                self.wh.append(CAMPAIGNS.name, pa.Table.from_pylist([row], schema=CAMPAIGNS.schema))

    def write_plan(
        self,
        plan: Iterable[pa.RecordBatch],
        chunks: pa.Table,
        rejects: Iterable[pa.RecordBatch],
        *,
        kind: str,
        now: datetime,
    ) -> None:
        """Store every planned recipient as ``pending``, every chunk, every reject."""
        self.wh.append(LEDGER.name, (self._ledger_rows(b, kind, now) for b in plan))
        self.wh.append(CHUNKS.name, self._chunk_rows(chunks, kind, now))
        self.wh.append(REJECTS.name, (self._reject_rows(b, now) for b in rejects))

    def _ledger_rows(self, batch: pa.RecordBatch, kind: str, now: datetime) -> pa.RecordBatch:
        n = batch.num_rows
        columns = {
            "campaign_id": _const(self.campaign_id, pa.string(), n),
            "row_number": batch.column("row_number"),
            "chunk": batch.column("chunk"),
            "route": batch.column("route"),
            "kind": _const(kind, pa.string(), n),
            "template_id": batch.column("template_id"),
            "recipient_key": batch.column("recipient_key"),
            "mobile": batch.column("mobile"),
            "name": batch.column("name"),
            "text": batch.column("text"),
            "send_at": batch.column("send_at"),
            "international": batch.column("international"),
            "record_id": batch.column("record_id"),
            "points": as_points(batch.column("points")),
            "state": _const("pending", pa.string(), n),
            "batch_id": pa.nulls(n, pa.string()),
            "attempt": _const(0, pa.int32(), n),
            "error": pa.nulls(n, pa.string()),
            "planned_at": _const(now, UTC_TIME, n),
            "in_flight_at": pa.nulls(n, UTC_TIME),
            "sent_at": pa.nulls(n, UTC_TIME),
            "updated_at": _const(now, UTC_TIME, n),
            "refunded_points": pa.nulls(n, POINTS),
            "cancelled_at": pa.nulls(n, UTC_TIME),
        }
        return pa.RecordBatch.from_pydict(columns, schema=LEDGER.schema)

    def _chunk_rows(self, chunks: pa.Table, kind: str, now: datetime) -> pa.Table:
        n = chunks.num_rows
        zero = _const(0, pa.int32(), n)
        return pa.table(
            {
                "campaign_id": _const(self.campaign_id, pa.string(), n),
                "chunk": chunks.column("chunk"),
                "route": chunks.column("route"),
                "kind": _const(kind, pa.string(), n),
                "recipients": chunks.column("recipients"),
                "points": as_points(chunks.column("points")),
                "send_at": chunks.column("send_at"),
                "state": _const("pending", pa.string(), n),
                "attempt": zero,
                "batch_id": pa.nulls(n, pa.string()),
                "batches": zero,
                "sent": zero,
                "unsent": zero,
                "filtered": zero,
                "cost": _const(Decimal(0), POINTS, n),
                "unsent_resolved": _const(True, pa.bool_(), n),
                "error": pa.nulls(n, pa.string()),
                "in_flight_at": pa.nulls(n, UTC_TIME),
                "claimed_by": pa.nulls(n, pa.string()),
                "written_at": pa.nulls(n, UTC_TIME),
                "scheduled_for": pa.nulls(n, UTC_TIME),
                "sent_at": pa.nulls(n, UTC_TIME),
                "updated_at": _const(now, UTC_TIME, n),
                "refunded_points": pa.nulls(n, POINTS),
                "cancelled_at": pa.nulls(n, UTC_TIME),
            },
            schema=CHUNKS.schema,
        )

    def _reject_rows(self, batch: pa.RecordBatch, now: datetime) -> pa.RecordBatch:
        n = batch.num_rows
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns["campaign_id"] = _const(self.campaign_id, pa.string(), n)
        columns["rejected_at"] = _const(now, UTC_TIME, n)
        return pa.RecordBatch.from_pydict(
            {k: columns[k] for k in REJECTS.schema.names}, schema=REJECTS.schema
        )

    def finish_plan(self, stats: PlanStats, now: datetime) -> None:
        """Mark the plan complete: from here on, the ledger is the campaign's truth."""
        self.wh.execute(
            f"""UPDATE {CAMPAIGNS.name}
                SET state = 'planned', audience_rows = ?, recipients = ?, rejected = ?,
                    points = ?, chunks = ?, planned_at = ?, updated_at = ?
                WHERE campaign_id = ?""",
            [
                stats.audience_rows,
                stats.recipients,
                stats.rejected,
                stats.points,
                stats.chunks,
                now,
                now,
                self.campaign_id,
            ],
        )

    def finish(self, now: datetime) -> None:
        """Mark the campaign ``done`` (every chunk settled)."""
        self.wh.execute(
            f"UPDATE {CAMPAIGNS.name} SET state = 'done', finished_at = ?, updated_at = ? "
            "WHERE campaign_id = ?",
            [now, now, self.campaign_id],
        )

    # -- work ---------------------------------------------------------------------------------

    def chunks(self, where: str = "TRUE", parameters: Sequence[Any] = ()) -> list[ChunkInfo]:
        """Chunks of the campaign matching ``where`` (SQL on ``every8d_send_chunks``), in order."""
        table = self.wh.query_arrow(
            f"""SELECT chunk, route, kind, recipients, points, send_at, state, attempt, batch_id, unsent,
                       unsent_resolved, in_flight_at, updated_at, claimed_by, written_at, scheduled_for
                FROM {CHUNKS.name} WHERE campaign_id = ? AND ({where}) ORDER BY chunk""",
            [self.campaign_id, *parameters],
        )
        return [ChunkInfo(**row) for row in table.to_pylist()]

    def open_points(self) -> Decimal:
        """Estimated points of recipients still to pay for: ``pending`` only.

        An ``in_flight`` recipient's request was written: most likely it was
        charged already, and resolving it through the duplicate filter costs
        nothing for those it reached.  Each recipient's cost counts once.
        """
        table = self.wh.query_arrow(
            f"""SELECT coalesce(sum(points), 0) AS points FROM {LEDGER.name}
                WHERE campaign_id = ? AND state = 'pending'""",
            [self.campaign_id],
        )
        return Decimal(table.column("points")[0].as_py())

    def rows(self, chunks: Sequence[int], states: Sequence[str] = ("pending", "in_flight")) -> pa.Table:
        """The recipients of ``chunks`` still in ``states``, in chunk and row order."""
        parts = []
        for part in _slices(list(chunks)):
            parts.append(
                self.wh.query_arrow(
                    f"""SELECT {", ".join(quote(c) for c in ROW_COLUMNS)} FROM {LEDGER.name}
                        WHERE campaign_id = ? AND chunk IN ({_marks(part)}) AND state IN ({_marks(states)})
                        ORDER BY chunk, "row_number" """,
                    [self.campaign_id, *part, *states],
                )
            )
        return pa.concat_tables(parts) if parts else pa.table({c: [] for c in ROW_COLUMNS})

    def claim(self, chunks: Sequence[int], now: datetime, token: str) -> pa.Table:
        """Mark the still-pending ``chunks`` ``in_flight`` for this run and return their recipients.

        A claim is not a send: ``written_at`` stays NULL and the recipients stay
        ``pending`` until :meth:`stamp` right before the request is written.
        Only chunks this run's ``token`` won are returned, so two runners never
        share a chunk.
        """
        if not chunks:
            return self.rows([])
        with self.wh.transaction():
            for part in _slices(list(chunks)):
                self.wh.execute(
                    f"""UPDATE {CHUNKS.name} SET state = 'in_flight', claimed_by = ?, written_at = NULL,
                            updated_at = ?
                        WHERE campaign_id = ? AND chunk IN ({_marks(part)}) AND state = 'pending'""",
                    [token, now, self.campaign_id, *part],
                )
            won = [
                c.chunk
                for c in self.chunks(
                    "claimed_by = ? AND state = 'in_flight' AND written_at IS NULL "
                    f"AND chunk IN ({_marks(chunks)})",
                    [token, *chunks],
                )
            ]
            return self.rows(won, ("pending",)) if won else self.rows([])

    def stamp(self, chunk: int, token: str, scheduled_for: datetime | None) -> bool:
        """Record, right before a request is written, that it is being written (warehouse clock).

        Run it inside the lease's fenced transaction: together they are the
        atomic check that this runner still holds the chunk and the lease.
        False: the chunk is no longer this runner's, send nothing.
        """
        now, timestamp = self.wh.sql.now, self.wh.sql.timestamp
        with self.wh.transaction():
            won = self.wh.execute(
                f"""UPDATE {CHUNKS.name} SET written_at = {now}, scheduled_for = CAST(? AS {timestamp}),
                        attempt = attempt + 1, in_flight_at = coalesce(in_flight_at, {now}),
                        updated_at = {now}
                    WHERE campaign_id = ? AND chunk = ? AND claimed_by = ? AND state = 'in_flight'""",
                [scheduled_for, self.campaign_id, chunk, token],
            )
            if won != 1:
                return False
            self.wh.execute(
                f"""UPDATE {LEDGER.name} SET state = 'in_flight', attempt = attempt + 1,
                        in_flight_at = coalesce(in_flight_at, {now}), updated_at = {now}
                    WHERE campaign_id = ? AND chunk = ? AND state IN ('pending', 'in_flight')""",
                [self.campaign_id, chunk],
            )
        return True

    def release(self, chunks: Sequence[int], token: str, now: datetime) -> None:
        """Give back chunks this run claimed but never wrote a request for: ``pending`` again.

        Only with the claim token, and only while no request was written.
        """
        if not chunks:
            return
        with self.wh.transaction():
            for part in _slices(list(chunks)):
                self.wh.execute(
                    f"""UPDATE {CHUNKS.name} SET state = 'pending', claimed_by = NULL, updated_at = ?
                        WHERE campaign_id = ? AND chunk IN ({_marks(part)}) AND claimed_by = ?
                            AND state = 'in_flight' AND written_at IS NULL""",
                    [now, self.campaign_id, *part, token],
                )

    def take_over(self, token: str, now: datetime) -> int:
        """After acquiring the lease: chunks an earlier owner claimed but never wrote go back to ``pending``;
        those it wrote become this run's to resolve.  Returns how many went back."""
        with self.wh.transaction():
            # written before leases existed: only in_flight_at tells, so it counts as written
            self.wh.execute(
                f"""UPDATE {CHUNKS.name} SET written_at = coalesce(updated_at, in_flight_at)
                    WHERE campaign_id = ? AND state = 'in_flight' AND written_at IS NULL
                        AND in_flight_at IS NOT NULL""",
                [self.campaign_id],
            )
            released = self.wh.execute(
                f"""UPDATE {CHUNKS.name} SET state = 'pending', claimed_by = NULL, updated_at = ?
                    WHERE campaign_id = ? AND state = 'in_flight' AND written_at IS NULL""",
                [now, self.campaign_id],
            )
            self.wh.execute(
                f"""UPDATE {LEDGER.name} SET state = 'pending', updated_at = ?
                    WHERE campaign_id = ? AND state = 'in_flight' AND chunk IN (
                        SELECT chunk FROM {CHUNKS.name} WHERE campaign_id = ? AND state = 'pending')""",
                [now, self.campaign_id, self.campaign_id],
            )
            self.wh.execute(
                f"""UPDATE {CHUNKS.name} SET claimed_by = ?
                    WHERE campaign_id = ? AND state = 'in_flight' AND written_at IS NOT NULL""",
                [token, self.campaign_id],
            )
        return max(released, 0)

    def record_stale(self, outcomes: Iterable[ChunkOutcome], recorded_by: str, now: datetime) -> int:
        """Keep the batches a runner got after losing its lease, without touching the new owner's state.

        Each batch goes to ``every8d_send_stale_batches`` with the number of its
        recipients the new owner had already sent under another batch id (the
        duplicates it caused, as far as the ledger can tell now).  Returns that number.
        """
        duplicates = 0
        rows = []
        for outcome in outcomes:
            for batch in outcome.batches:
                others = (
                    self.wh.query_arrow(
                        f"""SELECT count(*) AS n FROM {LEDGER.name}
                        WHERE campaign_id = ? AND chunk = ? AND state = 'sent' AND batch_id IS NOT NULL
                            AND batch_id <> ?""",
                        [self.campaign_id, outcome.chunk, batch.batch_id],
                    )
                    .column("n")[0]
                    .as_py()
                )
                dup = min(int(others or 0), batch.recipients - batch.unsent)
                duplicates += dup
                rows.append(
                    {
                        "campaign_id": self.campaign_id,
                        "batch_id": batch.batch_id,
                        "chunk": outcome.chunk,
                        "recorded_by": recorded_by,
                        "recipients": batch.recipients,
                        "sent": batch.recipients - batch.unsent,
                        "cost": batch.points,
                        "duplicates": dup,
                        "recorded_at": now,
                    }
                )
        if rows:
            self.wh.append(STALE_BATCHES.name, pa.Table.from_pylist(rows, schema=STALE_BATCHES.schema))
        return duplicates

    def stale_totals(self) -> tuple[int, int]:
        """``(stale batches, duplicates they caused)`` of the campaign."""
        row = self.wh.query_arrow(
            f"""SELECT count(*) AS n, coalesce(sum(duplicates), 0) AS d FROM {STALE_BATCHES.name}
                WHERE campaign_id = ?""",
            [self.campaign_id],
        ).to_pylist()[0]
        return int(row["n"]), int(row["d"])

    def open_recipients(self) -> int:
        """Recipients that may still be texted by this campaign (``pending`` or ``in_flight``)."""
        return int(
            self.wh.query_arrow(
                f"""SELECT count(*) AS n FROM {LEDGER.name}
                WHERE campaign_id = ? AND state IN ('pending', 'in_flight')""",
                [self.campaign_id],
            )
            .column("n")[0]
            .as_py()
            or 0
        )

    def record(self, outcomes: Iterable[ChunkOutcome], now: datetime) -> None:
        """Write what each chunk's request did: chunk counters, then recipient states.

        A wave's outcomes are written with a handful of statements (an ``UPDATE`` from rows of
        parameters, :meth:`~every8d.warehouse.dialects.Dialect.update_from_values`), not a few per
        chunk: the ledger may hold millions of rows.
        """
        outcomes = list(outcomes)
        if not outcomes:
            return
        with self.wh.transaction():
            self._record_chunks(outcomes, now)
            for outcome in outcomes:  # recipient-specific states first ...
                for update in outcome.rows:
                    if update.row_numbers is not None:
                        self._update_rows(update, now)
            wide: dict[tuple[str, str | None], list[tuple[int, str | None]]] = {}
            for outcome in outcomes:  # ... then "everyone of the chunk still in flight"
                for update in outcome.rows:
                    if update.row_numbers is None:
                        wide.setdefault((update.state, update.error), []).append(
                            (outcome.chunk, update.batch_id)
                        )
            for (state, error), pairs in wide.items():
                self._update_chunk_rows(state, error, pairs, now)

    #: The columns of one chunk's outcome in :meth:`_record_chunks`, with their cast types.
    _OUTCOME_COLUMNS = (
        ("campaign_id", "text"),
        ("chunk", "integer"),
        ("state", "text"),
        ("batch_id", "text"),
        ("batches", "integer"),
        ("sent", "integer"),
        ("unsent", "integer"),
        ("filtered", "integer"),
        ("cost", "DECIMAL(12, 2)"),
        ("unsent_resolved", "boolean"),
        ("error", "text"),
        ("accepted", "boolean"),
        ("recorded_at", "timestamp"),
    )

    def _columns(self, columns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """``(name, kind)`` with the dialect's cast type.

        For ``text``, ``integer``, ``boolean``, ``timestamp``.
        """
        return [(name, getattr(self.wh.sql, kind, kind)) for name, kind in columns]

    def _record_chunks(self, outcomes: Sequence[ChunkOutcome], now: datetime) -> None:
        t = "t"
        sets = [
            ("state", "v.state"),
            ("batch_id", f"coalesce(v.batch_id, {t}.batch_id)"),
            ("batches", f"{t}.batches + v.batches"),
            ("sent", f"{t}.sent + v.sent"),
            ("unsent", f"{t}.unsent + v.unsent"),
            ("filtered", f"{t}.filtered + v.filtered"),
            ("cost", f"{t}.cost + v.cost"),
            ("unsent_resolved", "v.unsent_resolved"),
            ("error", "v.error"),
            ("sent_at", f"CASE WHEN v.accepted THEN v.recorded_at ELSE {t}.sent_at END"),
            ("written_at", f"CASE WHEN v.state = 'pending' THEN NULL ELSE {t}.written_at END"),
            ("in_flight_at", f"CASE WHEN v.state = 'pending' THEN NULL ELSE {t}.in_flight_at END"),
            ("claimed_by", f"CASE WHEN v.state = 'pending' THEN NULL ELSE {t}.claimed_by END"),
            ("updated_at", "v.recorded_at"),
        ]
        columns = self._columns(self._OUTCOME_COLUMNS)
        where = f"{t}.campaign_id = v.campaign_id AND {t}.chunk = v.chunk"
        for part in _slices(list(outcomes), 100):
            parameters: list[Any] = []
            for o in part:
                accepted = bool(o.batches) or any(u.state == "sent_unconfirmed" for u in o.rows)
                parameters += [
                    self.campaign_id,
                    o.chunk,
                    o.state,
                    o.batches[-1].batch_id if o.batches else None,
                    len(o.batches),
                    o.sent,
                    o.unsent,
                    o.filtered,
                    o.cost,
                    o.unsent_resolved,
                    o.error,
                    accepted,
                    now,
                ]
            sql = self.wh.sql.update_from_values(CHUNKS.name, t, sets, columns, len(part), where)
            self.wh.execute(sql, parameters)

    @staticmethod
    def _settles(state: str) -> bool:
        """Whether a recipient reaching ``state`` gets its ``sent_at`` (the first time)."""
        return state in ("sent", "sent_unconfirmed", "unsent_no_credit", "unsent_international")

    def _update_rows(self, update: Any, now: datetime) -> None:
        timestamp, text = self.wh.sql.timestamp, self.wh.sql.text
        sent_at = (
            f", sent_at = coalesce(sent_at, CAST(? AS {timestamp}))" if self._settles(update.state) else ""
        )
        head = [update.state, update.error, now] + ([now] if sent_at else [])
        for part in _slices(list(update.row_numbers)):
            self.wh.execute(
                f"""UPDATE {LEDGER.name}
                    SET state = ?, error = ?, updated_at = CAST(? AS {timestamp}){sent_at},
                        batch_id = coalesce(CAST(? AS {text}), batch_id)
                    WHERE campaign_id = ? AND "row_number" IN ({_marks(part)})""",
                [*head, update.batch_id, self.campaign_id, *part],
            )

    #: The columns of one chunk's rows in :meth:`_update_chunk_rows`, with their cast types.
    _ROWS_COLUMNS = (
        ("campaign_id", "text"),
        ("chunk", "integer"),
        ("batch_id", "text"),
        ("state", "text"),
        ("error", "text"),
        ("recorded_at", "timestamp"),
    )

    def _update_chunk_rows(
        self, state: str, error: str | None, pairs: list[tuple[int, str | None]], now: datetime
    ) -> None:
        t = "t"
        sets = [("state", "v.state"), ("error", "v.error"), ("updated_at", "v.recorded_at")]
        if self._settles(state):
            sets.append(("sent_at", f"coalesce({t}.sent_at, v.recorded_at)"))
        sets.append(("batch_id", f"coalesce(v.batch_id, {t}.batch_id)"))
        columns = self._columns(self._ROWS_COLUMNS)
        where = f"{t}.campaign_id = v.campaign_id AND {t}.chunk = v.chunk AND {t}.state = 'in_flight'"
        for part in _slices(pairs, 200):
            parameters: list[Any] = []
            for chunk, batch_id in part:
                parameters += [self.campaign_id, chunk, batch_id, state, error, now]
            sql = self.wh.sql.update_from_values(LEDGER.name, t, sets, columns, len(part), where)
            self.wh.execute(sql, parameters)

    def mark_unsent(self, chunk: int, updates: Sequence[tuple[str, Sequence[int]]], now: datetime) -> None:
        """Per-recipient results of a batch that reported UNSEND > 0, found in its status listing."""
        with self.wh.transaction():
            for state, row_numbers in updates:
                for part in _slices(list(row_numbers)):
                    self.wh.execute(
                        f"""UPDATE {LEDGER.name} SET state = ?, updated_at = ?
                            WHERE campaign_id = ? AND "row_number" IN ({_marks(part)})""",
                        [state, now, self.campaign_id, *part],
                    )
            self.wh.execute(
                f"""UPDATE {CHUNKS.name} SET unsent_resolved = TRUE, updated_at = ?
                    WHERE campaign_id = ? AND chunk = ?""",
                [now, self.campaign_id, chunk],
            )

    # -- figures ---------------------------------------------------------------------------------

    def state_counts(self) -> dict[str, int]:
        table = self.wh.query_arrow(
            f"SELECT state, count(*) AS n FROM {LEDGER.name} WHERE campaign_id = ? GROUP BY state",
            [self.campaign_id],
        )
        return {row["state"]: int(row["n"]) for row in table.to_pylist()}

    def reject_counts(self) -> dict[str, int]:
        table = self.wh.query_arrow(
            f"SELECT reason, count(*) AS n FROM {REJECTS.name} WHERE campaign_id = ? "
            "GROUP BY reason ORDER BY reason",
            [self.campaign_id],
        )
        return {row["reason"]: int(row["n"]) for row in table.to_pylist()}

    def totals(self) -> dict[str, Any]:
        """Points charged and refunded, batches created and chunks by state."""
        with self.wh.transaction():
            return self._totals()

    def _totals(self) -> dict[str, Any]:
        chunk = self.wh.query_arrow(
            f"""SELECT coalesce(sum(cost), 0) AS cost, coalesce(sum(refunded_points), 0) AS refunded,
                       coalesce(sum(batches), 0) AS batches, coalesce(sum(filtered), 0) AS filtered
                FROM {CHUNKS.name} WHERE campaign_id = ?""",
            [self.campaign_id],
        ).to_pylist()[0]
        by_state = self.wh.query_arrow(
            f"SELECT state, count(*) AS n FROM {CHUNKS.name} WHERE campaign_id = ? GROUP BY state",
            [self.campaign_id],
        ).to_pylist()
        distinct = (
            self.wh.query_arrow(
                f"""SELECT count(DISTINCT batch_id) AS n FROM {LEDGER.name}
                WHERE campaign_id = ? AND batch_id IS NOT NULL""",
                [self.campaign_id],
            )
            .column("n")[0]
            .as_py()
        )
        return {
            "points_charged": Decimal(chunk["cost"]),
            "points_refunded": Decimal(chunk["refunded"]),
            "batches": int(distinct or 0),
            "chunks_by_state": {r["state"]: int(r["n"]) for r in by_state},
        }

    # -- cancellation --------------------------------------------------------------------------------

    def batches_to_cancel(self) -> list[tuple[str, str]]:
        """``(batch_id, kind)`` of every batch holding recipients that are sent and not cancelled."""
        table = self.wh.query_arrow(
            f"""SELECT DISTINCT batch_id, kind FROM {LEDGER.name}
                WHERE campaign_id = ? AND batch_id IS NOT NULL AND state = 'sent'
                ORDER BY batch_id""",
            [self.campaign_id],
        )
        return [(r["batch_id"], r["kind"]) for r in table.to_pylist()]

    def record_cancel(self, batch_id: str, deleted: int, refunded: Decimal, now: datetime) -> int:
        """Mark ``deleted`` recipients of a batch ``cancelled`` and book the refund; rows changed.

        The gateway erases what is still scheduled, which is the batch's latest
        send times: those rows are marked, so the ledger follows the gateway's
        count rather than this machine's clock.
        """
        if deleted <= 0:
            return 0
        # Latest first with NULLs last, in a derived table: MySQL takes neither NULLS LAST, nor
        # LIMIT in an IN subquery, nor the updated table in its own subquery.
        with self.wh.transaction():
            changed = self.wh.execute(
                f"""UPDATE {LEDGER.name} SET state = 'cancelled', refunded_points = points, cancelled_at = ?,
                        updated_at = ?
                    WHERE campaign_id = ? AND "row_number" IN (SELECT "row_number" FROM (
                        SELECT "row_number" FROM {LEDGER.name}
                        WHERE campaign_id = ? AND batch_id = ? AND state = 'sent'
                        ORDER BY send_at IS NULL, send_at DESC, "row_number" LIMIT ?) AS latest)""",
                [now, now, self.campaign_id, self.campaign_id, batch_id, int(deleted)],
            )
            self.wh.execute(
                f"""UPDATE {CHUNKS.name} SET refunded_points = coalesce(refunded_points, 0) + ?,
                        cancelled_at = ?, updated_at = ?
                    WHERE campaign_id = ? AND chunk IN (
                        SELECT DISTINCT chunk FROM {LEDGER.name} WHERE campaign_id = ? AND batch_id = ?)""",
                [refunded, now, now, self.campaign_id, self.campaign_id, batch_id],
            )
        return changed

    # -- adoption: batches learned from status pushes (SQL kept together: it moves as one block) ---------

    def awaiting_rows(self, every_campaign: bool = False) -> pa.Table:
        """Recipients the filter confirmed whose batch is unknown, with their chunk's write times.

        :param every_campaign: of every campaign (a number awaiting in two campaigns matches neither).
        Columns: campaign_id, chunk, row_number, mobile, record_id, points, kind, in_flight_at, written_at,
        scheduled_for.
        """
        return self.wh.query_arrow(
            f"""SELECT l.campaign_id, l.chunk, l.row_number, l.mobile, l.record_id, l.points, c.kind,
                       c.in_flight_at, c.written_at, c.scheduled_for
                FROM {LEDGER.name} l
                    JOIN {CHUNKS.name} c ON c.campaign_id = l.campaign_id AND c.chunk = l.chunk
                WHERE (l.campaign_id = ? OR ?) AND c.state = 'awaiting_batch' AND l.state = 'sent_unconfirmed'
                    AND l.batch_id IS NULL
                ORDER BY l.campaign_id, l.chunk, l.row_number""",
            [self.campaign_id, every_campaign],
        )

    def adopted_batch_ids(self) -> list[str]:
        """Batches adopted for chunks still ``awaiting_batch`` (more of their pushes may match)."""
        table = self.wh.query_arrow(
            f"""SELECT a.batch_id FROM {ADOPTED_BATCHES.name} a
                JOIN {CHUNKS.name} c ON c.campaign_id = a.campaign_id AND c.chunk = a.chunk
                WHERE a.campaign_id = ? AND c.state = 'awaiting_batch' ORDER BY a.batch_id""",
            [self.campaign_id],
        )
        return table.column("batch_id").to_pylist()

    def record_adopted(self, rows: Sequence[dict[str, Any]]) -> None:
        """Note which batches were adopted.

        Idempotent on ``batch_id``: a batch matched again adds its count.
        """
        if not rows:
            return
        before = {
            r["batch_id"]: r["recipients"]
            for r in self.wh.query_arrow(
                f"""SELECT batch_id, recipients FROM {ADOPTED_BATCHES.name}
                WHERE campaign_id = ? AND batch_id IN ({_marks(rows)})""",
                [self.campaign_id, *(r["batch_id"] for r in rows)],
            ).to_pylist()
        }
        rows = [{**r, "recipients": r["recipients"] + before.get(r["batch_id"], 0)} for r in rows]
        table = pa.Table.from_pylist(list(rows), schema=ADOPTED_BATCHES.schema)
        self.wh.execute(
            f"""DELETE FROM {ADOPTED_BATCHES.name} WHERE campaign_id = ? AND batch_id IN ({_marks(rows)})""",
            [self.campaign_id, *(r["batch_id"] for r in rows)],
        )
        self.wh.append(ADOPTED_BATCHES.name, table)

    def adopted_totals(self) -> tuple[int, int]:
        """``(batches adopted from pushes, chunks still awaiting their batch)``."""
        adopted = (
            self.wh.query_arrow(
                f"SELECT count(*) AS n FROM {ADOPTED_BATCHES.name} WHERE campaign_id = ?",
                [self.campaign_id],
            )
            .column("n")[0]
            .as_py()
        )
        awaiting = (
            self.wh.query_arrow(
                f"SELECT count(*) AS n FROM {CHUNKS.name} WHERE campaign_id = ? AND state = 'awaiting_batch'",
                [self.campaign_id],
            )
            .column("n")[0]
            .as_py()
        )
        return int(adopted or 0), int(awaiting or 0)


def campaigns_awaiting_batches(warehouse: Warehouse) -> list[str]:
    """Campaigns with a chunk ``awaiting_batch`` (none when the send tables do not exist)."""
    if not warehouse.table_columns(CHUNKS.name):
        return []
    table = warehouse.query_arrow(
        f"SELECT DISTINCT campaign_id FROM {CHUNKS.name} WHERE state = 'awaiting_batch' ORDER BY campaign_id"
    )
    return table.column("campaign_id").to_pylist()
