"""Move journaled pushes into the warehouse: events, replies and opt-outs.

Run it on a schedule (the ``every8d_push_flush`` DAG, or
``python -m every8d.callbacks flush`` from cron) on the machine that holds
the journal.  Every write is keyed (``event_key``), so a flush that crashes
after the warehouse commit but before the watermark moved simply writes the
same rows again, and changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from every8d import settings
from every8d.callbacks.events import REPLY_STATUS
from every8d.callbacks.journal import ROW_COLUMNS, Journal
from every8d.callbacks.settings import journal_path_from_env
from every8d.optout import OptOutMatcher, parse_keywords

if TYPE_CHECKING:
    import pyarrow as pa

    from every8d.warehouse.base import Warehouse

log = logging.getLogger(__name__)

OPT_OUT_REASON = "opt-out reply"
SOURCE = "push"
DEFAULT_BATCH_ROWS = 20_000
DEFAULT_KEEP = timedelta(days=7)


@dataclass(frozen=True)
class FlushResult:
    """What one flush did (counts only; the warehouse may report -1 where the driver cannot tell)."""

    read: int
    events_written: int
    replies_written: int
    opt_outs_added: int
    flushed_seq: int
    pruned: int


def _columns(rows: list[tuple]) -> dict[str, list]:
    return dict(zip(ROW_COLUMNS, map(list, zip(*rows)))) if rows else {c: [] for c in ROW_COLUMNS}


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
                [sm if st == REPLY_STATUS else None for sm, st in zip(c["sm"], c["status"])], pa.string()
            ),
            "event_key": pa.array(c["event_key"], pa.string()),
        },
        schema=PUSH_EVENTS.schema,
    )


def replies_table(events: pa.Table) -> pa.Table:
    """``every8d_replies`` rows for the STATUS 999 events, one per reply key.

    The key is the tracking layer's ``reply_event_key`` (no MR, no status), so a
    reply both pushed and polled with ``getReplyMessage`` is stored once.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from every8d.tracking.replies import reply_event_key
    from every8d.warehouse.tables import REPLIES

    replies = events.filter(pc.equal(events["status"], REPLY_STATUS))
    by_key: dict[str, tuple] = {}
    for batch_id, mobile, text, at in zip(
        *(replies[c].to_pylist() for c in ("batch_id", "mobile", "reply_text", "reported_at"))
    ):
        by_key.setdefault(reply_event_key(batch_id, mobile, at, text), (batch_id, mobile, text, at))
    values = list(zip(*by_key.values())) or [[], [], [], []]
    return pa.table(
        {
            "batch_id": pa.array(values[0], pa.string()),
            "mobile": pa.array(values[1], pa.string()),
            "reply_text": pa.array(values[2], pa.string()),
            "replied_at": pa.array(values[3], REPLIES.schema.field("replied_at").type),
            "source": pa.array([SOURCE] * len(by_key), pa.string()),
            "event_key": pa.array(list(by_key), pa.string()),
        },
        schema=REPLIES.schema,
    )


def opt_out_mobiles(replies: pa.Table, matcher: OptOutMatcher) -> list[str]:
    """Numbers whose reply is an opt-out, well-formed E.164 only (a bad one must not block the flush)."""
    from every8d.tracking.suppressions import E164_PATTERN

    e164 = re.compile(E164_PATTERN)
    found = {
        m
        for m, text in zip(replies["mobile"].to_pylist(), replies["reply_text"].to_pylist())
        if matcher(text)
    }
    good = sorted(m for m in found if e164.match(m))
    if len(good) < len(found):
        log.warning("%d opt-out number(s) are not E.164 and were not suppressed", len(found) - len(good))
    return good


def _open(warehouse: Warehouse | str | None) -> tuple[Warehouse, bool]:
    if warehouse is None or isinstance(warehouse, str):
        from every8d.warehouse import open_warehouse

        return open_warehouse(warehouse), True
    return warehouse, False


def flush_journal(
    warehouse: Warehouse | str | None = None,
    *,
    journal_path: str | Path | None = None,
    opt_out_keywords: Iterable[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep: timedelta = DEFAULT_KEEP,
    now: datetime | None = None,
) -> FlushResult:
    """Write every journaled push not flushed yet into the warehouse, then move the watermark.

    :param warehouse: a Warehouse, an ``open_warehouse`` target, or None for the default one.
    :param journal_path: the journal (default: ``[every8d] push_journal`` or ``$AIRFLOW_HOME/every8d/``).
    :param opt_out_keywords: keywords (default: ``[every8d] opt_out_keywords`` or the built-in list).
    :param batch_rows: journal rows per warehouse transaction.
    :param keep: how long flushed rows stay in the journal before they are pruned.
    """
    import os

    from every8d.tracking.suppressions import add_suppressions
    from every8d.warehouse.tables import PUSH_EVENTS, REPLIES

    path = Path(journal_path) if journal_path is not None else journal_path_from_env()
    if not path.exists():
        log.info("no push journal yet: nothing to flush")
        return FlushResult(0, 0, 0, 0, 0, 0)
    keywords = (
        opt_out_keywords
        if opt_out_keywords is not None
        else parse_keywords(settings.get("opt_out_keywords") or None)
    )
    matcher = OptOutMatcher(keywords)
    wh, owned = _open(warehouse)
    read = events_written = replies_written = opt_outs = 0
    try:
        with Journal(path, busy_timeout=30.0) as journal:
            with wh.transaction():
                PUSH_EVENTS.ensure(wh)
                REPLIES.ensure(wh)
            seq = journal.flushed_seq()
            while rows := journal.read_after(seq, batch_rows):
                events = push_events_table(rows)
                replies = replies_table(events)
                with wh.transaction():
                    events_written += wh.upsert(
                        PUSH_EVENTS.name, events, PUSH_EVENTS.primary_key, update_columns=[]
                    )
                    replies_written += wh.upsert(
                        REPLIES.name, replies, REPLIES.primary_key, update_columns=[]
                    )
                    opt_outs += add_suppressions(
                        wh, opt_out_mobiles(replies, matcher), OPT_OUT_REASON, SOURCE
                    )
                seq = rows[-1][0]
                journal.mark_flushed(seq)
                read += len(rows)
            pruned = journal.prune((now or datetime.now(timezone.utc)) - keep)
    finally:
        if owned:
            wh.close()
    result = FlushResult(read, events_written, replies_written, opt_outs, seq, pruned)
    log.info(
        "push flush: %d read, %d events and %d replies written, %d opt-outs added, %d pruned",
        read,
        events_written,
        replies_written,
        opt_outs,
        pruned,
    )
    return result
