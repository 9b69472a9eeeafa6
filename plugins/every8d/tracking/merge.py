"""Merge staged observations into current status and history, in SQL both DuckDB and Postgres speak.

Observations (a polled batch, or push events resolved to messages) wait in
``every8d_status_staging``.  Two statements settle them: the history gets a
row for every observed change, then ``every8d_messages`` is upserted.  A final
status is never replaced: later observations of a final message only fill in
what was missing (received time, points, MR), so a late or duplicated push
cannot undo a delivery.  Replaying the same observations changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import BATCHES, MESSAGES, PARQUET_DIRTY, STATUS_HISTORY, STATUS_STAGING

EXPIRED_MEANING_EN = "no final status within the validity window (closed by the sync)"
EXPIRED_MEANING_ZH = "有效期限內未取得最終狀態"

_GROUP = "COALESCE(c.status_group, 'pending')"
_FINAL = "COALESCE(c.is_final, FALSE)"
_MEANING_EN = "COALESCE(c.meaning_en, 'unknown status ' || CAST(s.status AS VARCHAR))"
_MEANING_ZH = "COALESCE(c.meaning_zh, '')"

HISTORY_FROM_STAGING = f"""
INSERT INTO {STATUS_HISTORY.name}
    (batch_id, mobile, seq, mr, status, status_group, is_final, previous_status, source, observed_at)
SELECT s.batch_id, s.mobile, s.seq, COALESCE(s.mr, m.mr), s.status, {_GROUP}, {_FINAL}, m.status,
       s.source, s.observed_at
FROM {STATUS_STAGING.name} s
JOIN {BATCHES.name} b ON b.batch_id = s.batch_id
LEFT JOIN every8d_status_codes c ON c.status = s.status
LEFT JOIN {MESSAGES.name} m ON m.batch_id = s.batch_id AND m.mobile = s.mobile AND m.seq = s.seq
WHERE m.batch_id IS NULL
   OR (NOT m.is_final AND (m.status <> s.status OR m.status_group <> {_GROUP}))
ON CONFLICT DO NOTHING
"""


def _keep_if_final(column: str) -> str:
    return f"{column} = CASE WHEN t.is_final THEN t.{column} ELSE excluded.{column} END"


MESSAGES_FROM_STAGING = f"""
INSERT INTO {MESSAGES.name} AS t
    (batch_id, mobile, seq, mr, campaign_id, kind, name, sent_at, received_at, points, status, status_group,
     meaning_en, meaning_zh, is_final, final_at, first_seen_at, updated_at, source)
SELECT s.batch_id, s.mobile, s.seq, s.mr, b.campaign_id, b.kind, s.name, s.sent_at, s.received_at, s.points,
       s.status, {_GROUP}, {_MEANING_EN}, {_MEANING_ZH}, {_FINAL},
       CASE WHEN {_FINAL} THEN COALESCE(s.received_at, s.observed_at) END,
       CAST(? AS TIMESTAMP WITH TIME ZONE), CAST(? AS TIMESTAMP WITH TIME ZONE), s.source
FROM {STATUS_STAGING.name} s
JOIN {BATCHES.name} b ON b.batch_id = s.batch_id
LEFT JOIN every8d_status_codes c ON c.status = s.status
ON CONFLICT (batch_id, mobile, seq) DO UPDATE SET
    {_keep_if_final("status")},
    {_keep_if_final("status_group")},
    {_keep_if_final("meaning_en")},
    {_keep_if_final("meaning_zh")},
    {_keep_if_final("final_at")},
    {_keep_if_final("source")},
    is_final = t.is_final OR excluded.is_final,
    mr = COALESCE(t.mr, excluded.mr),
    name = COALESCE(excluded.name, t.name),
    sent_at = COALESCE(excluded.sent_at, t.sent_at),
    received_at = COALESCE(excluded.received_at, t.received_at),
    points = COALESCE(excluded.points, t.points),
    updated_at = excluded.updated_at
WHERE (NOT t.is_final AND (t.status <> excluded.status OR t.status_group <> excluded.status_group))
   OR (t.mr IS NULL AND excluded.mr IS NOT NULL)
   OR (excluded.name IS NOT NULL AND t.name IS DISTINCT FROM excluded.name)
   OR (excluded.sent_at IS NOT NULL AND t.sent_at IS DISTINCT FROM excluded.sent_at)
   OR (excluded.received_at IS NOT NULL AND t.received_at IS DISTINCT FROM excluded.received_at)
   OR (excluded.points IS NOT NULL AND t.points IS DISTINCT FROM excluded.points)
"""

EXPIRE_HISTORY = f"""
INSERT INTO {STATUS_HISTORY.name}
    (batch_id, mobile, seq, mr, status, status_group, is_final, previous_status, source, observed_at)
SELECT batch_id, mobile, seq, mr, status, 'expired', TRUE, status, 'close', CAST(? AS TIMESTAMP WITH TIME ZONE)
FROM {MESSAGES.name}
WHERE batch_id = ? AND NOT is_final
ON CONFLICT DO NOTHING
"""

EXPIRE_MESSAGES = f"""
UPDATE {MESSAGES.name}
SET status_group = 'expired', is_final = TRUE, meaning_en = ?, meaning_zh = ?,
    final_at = CAST(? AS TIMESTAMP WITH TIME ZONE), updated_at = CAST(? AS TIMESTAMP WITH TIME ZONE),
    source = 'close'
WHERE batch_id = ? AND NOT is_final
"""

BATCH_COUNTS = f"""
SELECT count(*) AS messages, COALESCE(sum(CASE WHEN is_final THEN 1 ELSE 0 END), 0) AS final
FROM {MESSAGES.name} WHERE batch_id = ?
"""

# A rerun of the same poll (same `now`) does not count as another poll.
UPDATE_BATCH = f"""
UPDATE {BATCHES.name}
SET polls = COALESCE(polls, 0) + CASE WHEN last_poll_at IS NOT DISTINCT FROM CAST(? AS TIMESTAMP WITH TIME ZONE)
                                      THEN 0 ELSE 1 END,
    last_poll_at = CAST(? AS TIMESTAMP WITH TIME ZONE),
    next_poll_at = CAST(? AS TIMESTAMP WITH TIME ZONE),
    listed = ?, final_count = ?, state = ?, closed_reason = ?,
    closed_at = CAST(? AS TIMESTAMP WITH TIME ZONE)
WHERE batch_id = ?
"""

SEND_DATE = "CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE)"

MARK_DIRTY = f"""
INSERT INTO {PARQUET_DIRTY.name} (send_date, kind, marked_at)
SELECT DISTINCT {SEND_DATE}, b.kind, CAST(? AS TIMESTAMP WITH TIME ZONE)
FROM {BATCHES.name} b
WHERE b.batch_id IN (SELECT batch_id FROM {STATUS_STAGING.name}) OR b.batch_id = ?
ON CONFLICT (send_date, kind) DO UPDATE SET marked_at = excluded.marked_at
"""


@dataclass(frozen=True)
class MergeCounts:
    """What a merge changed: history rows added and message rows written."""

    history: int
    messages: int

    @property
    def changed(self) -> bool:
        return self.history > 0 or self.messages > 0


def merge_staged(warehouse: Warehouse, *, now: datetime) -> MergeCounts:
    """Apply everything in the staging table to history and messages (call inside a transaction)."""
    history = warehouse.execute(HISTORY_FROM_STAGING)
    messages = warehouse.execute(MESSAGES_FROM_STAGING, [now, now])
    return MergeCounts(max(history, 0), max(messages, 0))


def clear_staging(warehouse: Warehouse) -> None:
    warehouse.execute(f"DELETE FROM {STATUS_STAGING.name}")


def expire_pending(warehouse: Warehouse, batch_id: str, *, now: datetime) -> int:
    """Close every non-final message of a batch as ``expired``; returns how many."""
    warehouse.execute(EXPIRE_HISTORY, [now, batch_id])
    count = warehouse.execute(EXPIRE_MESSAGES, [EXPIRED_MEANING_EN, EXPIRED_MEANING_ZH, now, now, batch_id])
    return max(count, 0)


def batch_counts(warehouse: Warehouse, batch_id: str) -> tuple[int, int]:
    """(message rows, final rows) held for a batch."""
    row = warehouse.query_arrow(BATCH_COUNTS, [batch_id]).to_pylist()[0]
    return int(row["messages"]), int(row["final"])


def record_poll(
    warehouse: Warehouse,
    batch_id: str,
    *,
    now: datetime,
    next_poll_at: datetime | None,
    listed: int,
    final: int,
    closed_reason: str | None,
) -> None:
    """Update a batch's polling bookkeeping after a poll (closing it when ``closed_reason`` is set)."""
    state = "closed" if closed_reason else "open"
    warehouse.execute(
        UPDATE_BATCH,
        [now, now, next_poll_at, listed, final, state, closed_reason, now if closed_reason else None, batch_id],
    )


def mark_dirty(warehouse: Warehouse, *, batch_id: str | None = None) -> None:
    """Flag the Parquet partitions of staged batches (and of ``batch_id``) for the next export."""
    warehouse.execute(MARK_DIRTY, [datetime.now(timezone.utc), batch_id or ""])


def send_date_of(sent_at: datetime, scheduled_at: datetime | None) -> date:
    """The partition date of a batch: the UTC date it goes out."""
    return (scheduled_at or sent_at).astimezone(timezone.utc).date()
