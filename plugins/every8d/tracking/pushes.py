"""Merge status and reply pushes (table ``every8d_push_events``) into messages, history, replies and opt-outs.

The flush only appends events (it is their one writer); this is the one place that
derives anything from them.  It claims the ones not merged yet
(so an event arriving mid-merge waits for the next run), resolves each to a
message (by MR when the gateway echoed one we know; else a final push goes to
its own open message of the number, the n-th distinct final push to the n-th
open message, so a number listed twice gets both deliveries; a non-final push
goes to the number's first open message), keeps the most telling event per message
(final beats non-final, then the latest report), and runs the same merge as a
poll.  Events of batches nobody registered stay pending until they are.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from every8d.optout import OptOutMatcher
from every8d.tracking import merge
from every8d.tracking.replies import record_replies, replies_from_columns
from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import (
    BATCHES,
    MESSAGES,
    PUSH_EVENTS,
    PUSH_EVENTS_MERGED,
    STATUS_STAGING,
    ensure_tracking_tables,
)

REPLY_STATUS = 999


def claim_sql(warehouse: Warehouse) -> str:
    """Claim every unmerged event of a registered batch for one merge (parameters: now, merge id)."""
    return warehouse.sql.insert_new(f"""
INSERT INTO {PUSH_EVENTS_MERGED.name} (event_key, merged_at, merge_id)
SELECT e.event_key, CAST(? AS {warehouse.sql.timestamp}), ?
FROM {PUSH_EVENTS.name} e
JOIN {BATCHES.name} b ON b.batch_id = e.batch_id
WHERE NOT EXISTS (SELECT 1 FROM {PUSH_EVENTS_MERGED.name} d WHERE d.event_key = e.event_key)""")


STAGE_STATUS_EVENTS = f"""
INSERT INTO {STATUS_STAGING.name}
    (batch_id, mobile, seq, mr, name, sent_at, received_at, points, status, observed_at, source)
SELECT batch_id, mobile, CAST(seq AS {{integer}}), mr, NULL, NULL, NULL, NULL, status, observed_at, 'push'
FROM (
    WITH claimed AS (
        SELECT e.event_key, e.batch_id, e.mobile, NULLIF(e.mr, '') AS mr, e.status,
               COALESCE(e.reported_at, e.received_at) AS observed_at, COALESCE(c.is_final, FALSE) AS is_final
        FROM {PUSH_EVENTS.name} e
        JOIN {PUSH_EVENTS_MERGED.name} d ON d.event_key = e.event_key AND d.merge_id = ?
        LEFT JOIN every8d_status_codes c ON c.status = e.status
        WHERE e.status <> {REPLY_STATUS}
    ),
    by_mr AS (
        SELECT batch_id, mr, min(mobile) AS mobile, min(seq) AS seq
        FROM {MESSAGES.name}
        WHERE mr IS NOT NULL AND batch_id IN (SELECT batch_id FROM claimed)
        GROUP BY batch_id, mr
    ),
    by_mobile AS (
        SELECT batch_id, mobile, min(CASE WHEN NOT is_final THEN seq END) AS open_seq, min(seq) AS any_seq,
               count(*) AS messages
        FROM {MESSAGES.name}
        WHERE batch_id IN (SELECT batch_id FROM claimed)
        GROUP BY batch_id, mobile
    ),
    open_messages AS (  -- the n-th message of a number not final yet
        SELECT batch_id, mobile, seq, row_number() OVER (PARTITION BY batch_id, mobile ORDER BY seq) AS nth
        FROM {MESSAGES.name}
        WHERE NOT is_final AND batch_id IN (SELECT batch_id FROM claimed)
    ),
    unmatched_finals AS (  -- final pushes with no known MR: the n-th distinct one per number
        SELECT p.event_key,
               dense_rank() OVER (PARTITION BY p.batch_id, p.mobile ORDER BY p.observed_at, p.status) AS nth
        FROM claimed p
        LEFT JOIN by_mr r ON r.batch_id = p.batch_id AND r.mr = p.mr
        WHERE p.is_final AND r.mobile IS NULL
    ),
    resolved AS (
        SELECT p.event_key, p.batch_id, p.status, p.observed_at, p.is_final,
               COALESCE(r.mobile, p.mobile) AS mobile,
               COALESCE(r.seq, o.seq, CASE WHEN NOT p.is_final THEN bm.open_seq END, bm.any_seq, 1) AS seq,
               -- an MR we do not know yet is kept only where it cannot land on the wrong message
               CASE WHEN r.mobile IS NOT NULL OR COALESCE(bm.messages, 1) = 1 THEN p.mr END AS mr
        FROM claimed p
        LEFT JOIN by_mr r ON r.batch_id = p.batch_id AND r.mr = p.mr
        LEFT JOIN by_mobile bm ON bm.batch_id = p.batch_id AND bm.mobile = p.mobile
        LEFT JOIN unmatched_finals u ON u.event_key = p.event_key
        LEFT JOIN open_messages o ON o.batch_id = p.batch_id AND o.mobile = p.mobile AND o.nth = u.nth
        WHERE COALESCE(r.mobile, p.mobile) IS NOT NULL
    ),
    ranked AS (
        SELECT resolved.*,
               row_number() OVER (
                   PARTITION BY batch_id, mobile, seq ORDER BY is_final DESC, observed_at DESC, event_key DESC
               ) AS pick
        FROM resolved
    )
    SELECT * FROM ranked WHERE pick = 1
) winners
"""

CLAIMED_REPLIES = f"""
SELECT e.batch_id, e.mobile, e.reply_text, COALESCE(e.reported_at, e.received_at) AS replied_at
FROM {PUSH_EVENTS.name} e
JOIN {PUSH_EVENTS_MERGED.name} d ON d.event_key = e.event_key AND d.merge_id = ?
WHERE e.status = {REPLY_STATUS} AND e.mobile IS NOT NULL
ORDER BY e.event_key
"""


@dataclass(frozen=True)
class PushMergeResult:
    claimed: int
    history_rows: int
    message_rows: int
    replies: int


def merge_push_events(
    warehouse: Warehouse, *, now: datetime | None = None, matcher: OptOutMatcher | None = None
) -> PushMergeResult:
    """Merge every push event not merged yet; safe to run at any time, and twice.

    Reply pushes (STATUS 999) become replies keyed like polled ones (one key function,
    :func:`~every8d.tracking.replies.reply_event_key`), and opt-out replies suppress their number.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    merge_id = uuid.uuid4().hex
    ensure_tracking_tables(warehouse)
    with warehouse.transaction():
        claimed = warehouse.execute(claim_sql(warehouse), [now, merge_id])
        if claimed == 0:
            return PushMergeResult(0, 0, 0, 0)
        merge.clear_staging(warehouse)
        warehouse.execute(STAGE_STATUS_EVENTS.format(integer=warehouse.sql.integer), [merge_id])
        counts = merge.merge_staged(warehouse, now=now)
        if counts.changed:
            merge.mark_dirty(warehouse)
        merge.clear_staging(warehouse)
        pushed = warehouse.query_arrow(CLAIMED_REPLIES, [merge_id])
        replies = record_replies(
            warehouse,
            replies_from_columns(
                pushed.column("batch_id").to_pylist(),
                pushed.column("mobile").to_pylist(),
                pushed.column("replied_at").to_pylist(),
                pushed.column("reply_text").to_pylist(),
                source="push",
            ),
            now=now,
            matcher=matcher,
        )
    return PushMergeResult(max(claimed, 0), counts.history, counts.messages, replies)


UNREGISTERED_PUSHES = f"""
SELECT e.batch_id, e.mobile, NULLIF(e.mr, '') AS mr, min(e.received_at) AS first_at
FROM {PUSH_EVENTS.name} e
WHERE e.received_at >= CAST(? AS {{timestamp}}) AND e.status <> {REPLY_STATUS}
    AND (e.batch_id NOT IN (SELECT batch_id FROM {BATCHES.name}) OR e.batch_id IN ({{include}}))
GROUP BY e.batch_id, e.mobile, NULLIF(e.mr, '')
ORDER BY e.batch_id, e.mobile
"""


def pushed_unregistered_batches(warehouse: Warehouse, since: datetime, include: list[str] | tuple = ()):
    """Who the status pushes of batches nobody registered went to: ``batch_id, mobile, mr, first_at`` rows.

    A batch the gateway issued but whose answer we never read (a killed runner, a lost answer)
    shows up here only: the campaign ledger adopts it from these rows (:mod:`every8d.campaign.adoption`).
    :param include: registered batches to list anyway (adopted ones whose chunk may still match more rows).
    """
    ensure_tracking_tables(warehouse)
    marks = ", ".join("?" for _ in include) or "NULL"
    sql = UNREGISTERED_PUSHES.format(include=marks, timestamp=warehouse.sql.timestamp)
    return warehouse.query_arrow(sql, [since, *include])
