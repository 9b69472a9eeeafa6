"""Move journaled pushes into the warehouse's push events table, and nothing else.

Run it on a schedule (the ``every8d_push_flush`` DAG, the status DAG's push
task, or ``python -m every8d.callbacks flush`` from cron) on the machine that
holds the journal.  The flush is the one writer of ``every8d_push_events``;
the push merge (:mod:`every8d.tracking.pushes`) derives statuses, replies and
opt-outs from those events.  How far a journal was flushed is a row of
``every8d_push_flush_state``, locked, read and moved in the same transaction
as the events it covers: two flushers at once (the flush DAG and the status
DAG) take turns, so neither splits the journal nor writes a row twice, and a
crash before the commit leaves both the events and the watermark unwritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from every8d.callbacks.events import REPLY_STATUS
from every8d.callbacks.journal import ROW_COLUMNS, Journal
from every8d.callbacks.settings import journal_path_from_env

if TYPE_CHECKING:
    import pyarrow as pa

    from every8d.warehouse.base import Warehouse

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 20_000
DEFAULT_KEEP = timedelta(days=7)


@dataclass(frozen=True)
class FlushResult:
    """What one flush did (counts only; the warehouse may report -1 where the driver cannot tell)."""

    read: int
    events_written: int
    flushed_seq: int
    pruned: int


def _columns(rows: list[tuple]) -> dict[str, list]:
    return (
        dict(zip(ROW_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
        if rows
        else {c: [] for c in ROW_COLUMNS}
    )


def _times(micros: list[int]) -> pa.Array:
    import pyarrow as pa

    from every8d.warehouse.tables import UTC_TIME

    return pa.array(micros, pa.int64()).cast(UTC_TIME)


def push_events_table(rows: list[tuple]) -> pa.Table:
    """Journal rows as ``every8d_push_events`` (a reply's text only on STATUS 999 rows)."""
    import pyarrow as pa

    from every8d.warehouse.tables import PUSH_EVENTS

    c = _columns(rows)
    return pa.table(
        {
            "batch_id": pa.array(c["batch_id"], pa.string()),
            "mobile": pa.array(c["mobile"], pa.string()),
            "mr": pa.array([mr or None for mr in c["mr"]], pa.string()),
            "status": pa.array(c["status"], pa.int32()),
            "reported_at": _times(c["reported_at_us"]),
            "received_at": _times(c["received_at_us"]),
            "reply_text": pa.array(
                [sm if st == REPLY_STATUS else None for sm, st in zip(c["sm"], c["status"], strict=True)],
                pa.string(),
            ),
            "event_key": pa.array(c["event_key"], pa.string()),
        },
        schema=PUSH_EVENTS.schema,
    )


def _open(warehouse: Warehouse | str | None) -> tuple[Warehouse, bool]:
    if warehouse is None or isinstance(warehouse, str):
        from every8d.warehouse import open_warehouse

        return open_warehouse(warehouse), True
    return warehouse, False


def _locked_watermark(wh: Warehouse, journal_id: str) -> int:
    """The journal's flushed sequence number, its row locked until the transaction ends."""
    from every8d.warehouse.tables import PUSH_FLUSH_STATE

    rows = (
        wh.query_arrow(
            f"SELECT flushed_seq FROM {PUSH_FLUSH_STATE.name} WHERE journal_id = ?{wh.sql.for_update}",
            [journal_id],
        )
        .column(0)
        .to_pylist()
    )
    return int(rows[0]) if rows else 0


def _move_watermark(wh: Warehouse, journal_id: str, seq: int, now: datetime) -> None:
    from every8d.warehouse.tables import PUSH_FLUSH_STATE

    wh.execute(
        f"UPDATE {PUSH_FLUSH_STATE.name} SET flushed_seq = ?, flushed_at = CAST(? AS {wh.sql.timestamp}) "
        "WHERE journal_id = ?",
        [seq, now, journal_id],
    )


def _ensure_watermark(wh: Warehouse, journal_id: str) -> None:
    """The journal's watermark row (0 when new), so that flushers have a row to lock."""
    import pyarrow as pa

    from every8d.warehouse.tables import PUSH_EVENTS, PUSH_FLUSH_STATE

    PUSH_EVENTS.ensure(wh)  # each on its own: a flusher creating them at the same moment is no error
    PUSH_FLUSH_STATE.ensure(wh)
    row = pa.table(
        {"journal_id": [journal_id], "flushed_seq": [0], "flushed_at": [None]}, schema=PUSH_FLUSH_STATE.schema
    )
    wh.upsert(PUSH_FLUSH_STATE.name, row, PUSH_FLUSH_STATE.primary_key, update_columns=[])


def flush_journal(
    warehouse: Warehouse | str | None = None,
    *,
    journal_path: str | Path | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep: timedelta = DEFAULT_KEEP,
    now: datetime | None = None,
) -> FlushResult:
    """Write every journaled push not flushed yet into ``every8d_push_events``, moving the watermark with it.

    :param warehouse: a Warehouse, an ``open_warehouse`` target, or None for the default one.
    :param journal_path: the journal (default: ``[every8d] push_journal`` or ``$AIRFLOW_HOME/every8d/``).
    :param batch_rows: journal rows per warehouse transaction.
    :param keep: how long flushed rows stay in the journal before they are pruned.
    """
    from every8d.warehouse.tables import PUSH_EVENTS

    path = Path(journal_path) if journal_path is not None else journal_path_from_env()
    if not path.exists():
        log.info("no push journal yet: nothing to flush")
        return FlushResult(0, 0, 0, 0)
    wh, owned = _open(warehouse)
    read = events_written = 0
    try:
        with Journal(path, busy_timeout=30.0) as journal:
            journal_id = journal.journal_id()
            _ensure_watermark(wh, journal_id)
            while True:
                with wh.transaction():
                    seq = _locked_watermark(wh, journal_id)
                    rows = journal.read_after(seq, batch_rows)
                    if rows:
                        events_written += wh.upsert(
                            PUSH_EVENTS.name,
                            push_events_table(rows),
                            PUSH_EVENTS.primary_key,
                            update_columns=[],
                        )
                        seq = rows[-1][0]
                        _move_watermark(wh, journal_id, seq, datetime.now(UTC))
                journal.mark_flushed(seq)
                if not rows:
                    break
                read += len(rows)
            pruned = journal.prune((now or datetime.now(UTC)) - keep)
    finally:
        if owned:
            wh.close()
    result = FlushResult(read, events_written, seq, pruned)
    log.info("push flush: %d read, %d events written, %d pruned", read, events_written, pruned)
    return result
