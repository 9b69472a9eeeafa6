"""The delivery-status sync: which batches to poll, and polling one batch into the tables.

One batch's sync is: page through its status (parsed into Arrow and spooled
to a local Arrow file as pages arrive), then, in one warehouse transaction,
stage the rows, merge them, apply the close rules and book the poll.  A crash
anywhere leaves the tables as they were, and a rerun with the same ``now``
leaves them exactly as one run would (the DAG passes its run's time as ``now``).

Only a complete listing is merged: every page but the last holds exactly
1000 rows, the rows add up to the count line, and every row parses with a
known status code.  Anything else raises a retry-safe
:class:`~every8d.errors.IncompleteListingError` (or ``UnknownStatusCodeError``)
before the warehouse is touched: nothing merged, no poll booked, no batch closed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from every8d.client.pagination import paginate
from every8d.client.results import StatusPage
from every8d.client.v21 import status
from every8d.errors import IncompleteListingError, WireFormatError
from every8d.tracking import merge
from every8d.tracking.replies import fetch_replies, record_replies
from every8d.tracking.schedule import DEFAULT_EXPIRY_GRACE, BatchClock, close_reason
from every8d.tracking.spool import PageSpool
from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import BATCHES, STATUS_STAGING, ensure_tracking_tables

if TYPE_CHECKING:
    from every8d.client import Every8dClient

log = logging.getLogger(__name__)

DEFAULT_DUE_LIMIT = 500


@dataclass(frozen=True)
class DueBatch:
    """A batch to poll, with what the close rules need (JSON-friendly for XCom)."""

    batch_id: str
    kind: str
    sent_at: datetime
    scheduled_at: datetime | None
    validity_minutes: int

    @property
    def mms(self) -> bool:
        return self.kind == "mms"

    def clock(self, grace: timedelta = DEFAULT_EXPIRY_GRACE) -> BatchClock:
        return BatchClock(self.scheduled_at or self.sent_at, self.validity_minutes, grace)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sent_at"] = self.sent_at.isoformat()
        data["scheduled_at"] = self.scheduled_at.isoformat() if self.scheduled_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DueBatch:
        scheduled = data.get("scheduled_at")
        return cls(
            batch_id=str(data["batch_id"]),
            kind=str(data["kind"]),
            sent_at=datetime.fromisoformat(data["sent_at"]),
            scheduled_at=datetime.fromisoformat(scheduled) if scheduled else None,
            validity_minutes=int(data["validity_minutes"]),
        )


@dataclass(frozen=True)
class SyncOptions:
    """How to poll.

    :param with_record_ids: ask for the JSON status form, which carries each message's MR.
    :param page_concurrency: status pages fetched at once for one batch (1 = one after another).
    :param expiry_grace: wait after the validity window before pending messages expire.
    :param poll_replies: also read the batch's replies (``getReplyMessage``) while it is open.
    :param spool_dir: folder for page spools (a temporary folder by default).
    """

    with_record_ids: bool = False
    page_concurrency: int = 2
    expiry_grace: timedelta = DEFAULT_EXPIRY_GRACE
    poll_replies: bool = True
    spool_dir: Path | None = None


@dataclass(frozen=True)
class BatchSyncResult:
    batch_id: str
    listed: int
    pages: int
    history_rows: int
    message_rows: int
    expired: int
    replies: int
    closed_reason: str | None
    next_poll_at: datetime | None
    #: Seconds spent reading the gateway (pages and replies), and in the warehouse transaction.
    fetch_seconds: float = 0.0
    merge_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["next_poll_at"] = self.next_poll_at.isoformat() if self.next_poll_at else None
        return data


def due_batches(warehouse: Warehouse, now: datetime, limit: int = DEFAULT_DUE_LIMIT) -> list[DueBatch]:
    """Open batches whose next poll is due at ``now``, most overdue first."""
    ensure_tracking_tables(warehouse)
    rows = warehouse.query_arrow(
        f"SELECT batch_id, kind, sent_at, scheduled_at, validity_minutes FROM {BATCHES.name} "
        "WHERE state = 'open' "
        f"AND (next_poll_at IS NULL OR next_poll_at <= CAST(? AS {warehouse.sql.timestamp})) "
        "ORDER BY next_poll_at, batch_id LIMIT ?",
        [now, int(limit)],
    ).to_pylist()
    return [
        DueBatch(
            r["batch_id"], r["kind"], r["sent_at"], r["scheduled_at"], int(r["validity_minutes"] or 1440)
        )
        for r in rows
    ]


#: Status pages parsed together in one CSV call (about 2 MB of text).
PAGES_PER_PARSE = 32


def fetch_status_pages(
    client: Every8dClient,
    batch: DueBatch,
    *,
    with_record_ids: bool = False,
    concurrency: int = 1,
    pages_per_parse: int = PAGES_PER_PARSE,
) -> Iterator[tuple[int, StatusPage]]:
    """A batch's whole listing as ``(pages, rows)`` chunks in listing order: each chunk holds
    ``pages`` consecutive pages parsed as one table.

    Page 1 gives the batch's count, hence the number of pages; the rest are
    fetched ``concurrency`` at a time while earlier ones are parsed
    (:func:`every8d.client.pagination.paginate`).  After the last chunk the
    listing is checked whole: an incomplete one raises
    :class:`IncompleteListingError` instead of ending, so a consumer must act
    only once the iterator is exhausted (the spool does).
    """
    endpoint = status.endpoint(batch.mms)

    def text(number: int) -> str:
        return client.get_delivery_status_text(
            batch.batch_id, number, mms=batch.mms, with_record_ids=with_record_ids
        )

    def parse(texts: list[str]) -> StatusPage:
        try:
            if not with_record_ids:
                return status.parse_status_pages(texts, endpoint)
            return status.concat_status_pages(
                [status.parse_status_page_json(page, endpoint) for page in texts]
            )
        except WireFormatError as error:  # a page cut inside a row, most likely: read again later
            raise IncompleteListingError(endpoint, f"a page could not be read: {error.problem}") from error

    for chunk in paginate(
        text,
        parse,
        endpoint=endpoint,
        page_size=status.STATUS_PAGE_SIZE,
        concurrency=concurrency,
        pages_per_parse=pages_per_parse,
    ):
        yield len(chunk.page_rows), chunk


def apply_close_rules(
    warehouse: Warehouse,
    batch: DueBatch,
    spool: PageSpool,
    *,
    messages: int,
    final: int,
    now: datetime,
    grace: timedelta,
) -> tuple[merge.Poll, int]:
    """After a batch's rows are merged (``messages`` held, ``final`` of them final): close it or
    plan its next poll, expiring what missed the validity window.  Returns the poll to book and
    how many messages were expired.  The one home of these rules for single and grouped merges."""
    clock = batch.clock(grace)
    reason = close_reason(
        gateway_total=spool.total,
        listed=spool.rows,
        messages=messages,
        final=final,
        now=now,
        deadline=clock.deadline,
    )
    expired = merge.expire_pending(warehouse, batch.batch_id, now=now) if reason == "expired" else 0
    next_poll = None if reason else clock.next_poll_at(now)
    return merge.Poll(batch.batch_id, next_poll, spool.total, final + expired, reason), expired


def merge_spool(
    warehouse: Warehouse,
    batch: DueBatch,
    spool: PageSpool,
    *,
    now: datetime,
    grace: timedelta = DEFAULT_EXPIRY_GRACE,
) -> BatchSyncResult:
    """One transaction: stage the spooled rows, merge them, apply the close rules, book the poll."""
    with warehouse.transaction():
        merge.clear_staging(warehouse)
        if warehouse.sql.scans_arrow:  # the warehouse reads the spool file itself
            columns = ", ".join(STATUS_STAGING.schema.names)

            def stage(source: str) -> str:
                return f"INSERT INTO {STATUS_STAGING.name} ({columns}) {spool.staging_select(source)}"

            with spool.reader() as rows:
                warehouse.execute_over(rows, stage, [batch.batch_id, now, "poll"])
        else:
            with spool.staged(batch.batch_id, source="poll", observed_at=now) as staged:
                warehouse.append(STATUS_STAGING.name, staged)
        counts = merge.merge_staged(warehouse, now=now)
        messages, final = merge.batch_counts(warehouse, batch.batch_id)
        poll, expired = apply_close_rules(
            warehouse, batch, spool, messages=messages, final=final, now=now, grace=grace
        )
        merge.record_polls(warehouse, [poll], now=now)
        reason = poll.closed_reason
        if counts.changed or expired:
            merge.mark_dirty(warehouse, batch_id=batch.batch_id)
        merge.clear_staging(warehouse)
    return BatchSyncResult(
        batch_id=batch.batch_id,
        listed=spool.total,
        pages=spool.pages,
        history_rows=counts.history,
        message_rows=counts.messages,
        expired=expired,
        replies=0,
        closed_reason=reason,
        next_poll_at=poll.next_poll_at,
    )


def sync_batch(
    warehouse: Warehouse,
    client: Every8dClient,
    batch: DueBatch,
    *,
    now: datetime | None = None,
    options: SyncOptions = SyncOptions(),
) -> BatchSyncResult:
    """Poll one batch's status (and replies) from the gateway into the tables."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    ensure_tracking_tables(warehouse)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="every8d-spool-", dir=options.spool_dir) as folder:
        spool = PageSpool(Path(folder) / "pages.arrows").write(
            fetch_status_pages(
                client, batch, with_record_ids=options.with_record_ids, concurrency=options.page_concurrency
            )
        )
        replies = fetch_replies(client, batch.batch_id) if options.poll_replies else None
        fetched = time.perf_counter()
        with warehouse.transaction():
            result = merge_spool(warehouse, batch, spool, now=now, grace=options.expiry_grace)
            added = record_replies(warehouse, replies, now=now) if replies is not None else 0
    merged = time.perf_counter()
    log.info(
        "batch %s: %d listed in %d page(s), %d change(s), %d expired, %d new repl(ies)%s; "
        "read in %.1fs, merged in %.1fs",
        batch.batch_id,
        result.listed,
        result.pages,
        result.history_rows,
        result.expired,
        added,
        f", closed ({result.closed_reason})" if result.closed_reason else "",
        fetched - started,
        merged - fetched,
    )
    return BatchSyncResult(
        **{
            **asdict(result),
            "replies": added,
            "fetch_seconds": round(fetched - started, 3),
            "merge_seconds": round(merged - fetched, 3),
        }
    )
