"""Merge staged observations into current status and history.

Observations (a polled batch, or push events resolved to messages) wait in
``every8d_status_staging``.  The history gets a row for every observed
change, then ``every8d_messages`` is upserted.  A final status is never
replaced: later observations of a final message only fill in what was
missing (received time, points, MR), so a late or duplicated push cannot
undo a delivery.  Replaying the same observations changes nothing.

Postgres (and other warehouses) keep the two tables' keys as primary keys
and the merge is ``INSERT ... ON CONFLICT``.  DuckDB has no index on them
(see :class:`~every8d.warehouse.tables.TableSpec`), so there the same
statements are spelled with anti-joins: history rows already recorded and
messages already known are left out of the inserts, and known messages are
changed by one ``UPDATE ... FROM`` the staged rows.  Both spellings leave
the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from every8d.warehouse.base import Warehouse
from every8d.warehouse.sqltypes import create_table_sql
from every8d.warehouse.tables import BATCHES, MESSAGES, PARQUET_DIRTY, STATUS_HISTORY, STATUS_STAGING

EXPIRED_MEANING_EN = "no final status within the validity window (closed by the sync)"
EXPIRED_MEANING_ZH = "有效期限內未取得最終狀態"

_GROUP = "COALESCE(c.status_group, 'pending')"
_FINAL = "COALESCE(c.is_final, FALSE)"
_MEANING_EN = "COALESCE(c.meaning_en, 'unknown status ' || CAST(s.status AS VARCHAR))"
_MEANING_ZH = "COALESCE(c.meaning_zh, '')"

_HISTORY_COLUMNS = (
    "batch_id, mobile, seq, mr, status, status_group, is_final, previous_status, source, observed_at"
)
_HISTORY_SELECT = f"""
SELECT s.batch_id, s.mobile, s.seq, COALESCE(s.mr, m.mr) AS mr, s.status, {_GROUP} AS status_group,
       {_FINAL} AS is_final, m.status AS previous_status, s.source, s.observed_at
FROM {STATUS_STAGING.name} s
JOIN {BATCHES.name} b ON b.batch_id = s.batch_id
LEFT JOIN every8d_status_codes c ON c.status = s.status
LEFT JOIN {MESSAGES.name} m ON m.batch_id = s.batch_id AND m.mobile = s.mobile AND m.seq = s.seq
WHERE m.batch_id IS NULL
   OR (NOT m.is_final AND (m.status <> s.status OR m.status_group <> {_GROUP}))
"""

HISTORY_FROM_STAGING = f"""
INSERT INTO {STATUS_HISTORY.name} ({_HISTORY_COLUMNS})
{_HISTORY_SELECT}
ON CONFLICT DO NOTHING
"""


def _new_history(select: str) -> str:
    """DuckDB: insert the history rows ``select`` yields, but not those already recorded.

    The history key: a message passes through each (status, group) once.
    """
    return f"""
INSERT INTO {STATUS_HISTORY.name} ({_HISTORY_COLUMNS})
SELECT x.* FROM ({select}) x
ANTI JOIN {STATUS_HISTORY.name} h
    ON h.batch_id = x.batch_id AND h.mobile = x.mobile AND h.seq = x.seq
   AND h.status = x.status AND h.status_group = x.status_group
"""


HISTORY_FROM_STAGING_DUCKDB = _new_history(_HISTORY_SELECT)


_MESSAGE_COLUMNS = (
    "batch_id, mobile, seq, mr, campaign_id, kind, name, sent_at, received_at, points, status, status_group, "
    "meaning_en, meaning_zh, is_final, final_at, first_seen_at, updated_at, source"
)
# The staged rows as message rows; parameters: first_seen_at, updated_at.
_MESSAGES_SELECT = f"""
SELECT s.batch_id, s.mobile, s.seq, s.mr, b.campaign_id, b.kind, s.name, s.sent_at, s.received_at, s.points,
       s.status, {_GROUP} AS status_group, {_MEANING_EN} AS meaning_en, {_MEANING_ZH} AS meaning_zh,
       {_FINAL} AS is_final, CASE WHEN {_FINAL} THEN COALESCE(s.received_at, s.observed_at) END AS final_at,
       CAST(? AS TIMESTAMP WITH TIME ZONE) AS first_seen_at,
       CAST(? AS TIMESTAMP WITH TIME ZONE) AS updated_at, s.source
FROM {STATUS_STAGING.name} s
JOIN {BATCHES.name} b ON b.batch_id = s.batch_id
LEFT JOIN every8d_status_codes c ON c.status = s.status
"""


def _message_update(new: str) -> tuple[str, str]:
    """``(SET list, WHERE condition)`` of a known message ``t`` observed again as ``new``."""

    def keep_if_final(column: str) -> str:
        return f"{column} = CASE WHEN t.is_final THEN t.{column} ELSE {new}.{column} END"

    sets = ",\n    ".join(
        [
            *map(keep_if_final, ("status", "status_group", "meaning_en", "meaning_zh", "final_at", "source")),
            f"is_final = t.is_final OR {new}.is_final",
            f"mr = COALESCE(t.mr, {new}.mr)",
            f"name = COALESCE({new}.name, t.name)",
            f"sent_at = COALESCE({new}.sent_at, t.sent_at)",
            f"received_at = COALESCE({new}.received_at, t.received_at)",
            f"points = COALESCE({new}.points, t.points)",
            f"updated_at = {new}.updated_at",
        ]
    )
    changed = f"""(NOT t.is_final AND (t.status <> {new}.status OR t.status_group <> {new}.status_group))
   OR (t.mr IS NULL AND {new}.mr IS NOT NULL)
   OR ({new}.name IS NOT NULL AND t.name IS DISTINCT FROM {new}.name)
   OR ({new}.sent_at IS NOT NULL AND t.sent_at IS DISTINCT FROM {new}.sent_at)
   OR ({new}.received_at IS NOT NULL AND t.received_at IS DISTINCT FROM {new}.received_at)
   OR ({new}.points IS NOT NULL AND t.points IS DISTINCT FROM {new}.points)"""
    return sets, changed


_UPSERT_SET, _UPSERT_WHERE = _message_update("excluded")
MESSAGES_FROM_STAGING = f"""
INSERT INTO {MESSAGES.name} AS t ({_MESSAGE_COLUMNS})
{_MESSAGES_SELECT}
ON CONFLICT (batch_id, mobile, seq) DO UPDATE SET
    {_UPSERT_SET}
WHERE {_UPSERT_WHERE}
"""

_MESSAGE_KNOWN = f"t.batch_id = x.batch_id AND t.mobile = x.mobile AND t.seq = x.seq"
_UPDATE_SET, _UPDATE_WHERE = _message_update("x")
# DuckDB: known messages first (parameters: first_seen_at, updated_at), then the new ones (the same).
UPDATE_MESSAGES_DUCKDB = f"""
UPDATE {MESSAGES.name} t SET
    {_UPDATE_SET}
FROM ({_MESSAGES_SELECT}) x
WHERE {_MESSAGE_KNOWN} AND ({_UPDATE_WHERE})
"""
INSERT_MESSAGES_DUCKDB = f"""
INSERT INTO {MESSAGES.name} ({_MESSAGE_COLUMNS})
SELECT x.* FROM ({_MESSAGES_SELECT}) x
ANTI JOIN {MESSAGES.name} t ON {_MESSAGE_KNOWN}
"""

_EXPIRE_SELECT = f"""
SELECT batch_id, mobile, seq, mr, status, 'expired' AS status_group, TRUE AS is_final,
       status AS previous_status, 'close' AS source, CAST(? AS TIMESTAMP WITH TIME ZONE) AS observed_at
FROM {MESSAGES.name}
WHERE batch_id = ? AND NOT is_final
"""
EXPIRE_HISTORY = f"""
INSERT INTO {STATUS_HISTORY.name} ({_HISTORY_COLUMNS})
{_EXPIRE_SELECT}
ON CONFLICT DO NOTHING
"""
EXPIRE_HISTORY_DUCKDB = _new_history(_EXPIRE_SELECT)

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

# Many batches' polls in one statement: one VALUES row per batch (batch_id, next_poll_at, listed,
# final_count, state, closed_reason, closed_at); parameters: now, now, then the rows' values.
_POLL_ROW = (
    "(CAST(? AS VARCHAR), CAST(? AS TIMESTAMP WITH TIME ZONE), CAST(? AS BIGINT), CAST(? AS BIGINT), "
    "CAST(? AS VARCHAR), CAST(? AS VARCHAR), CAST(? AS TIMESTAMP WITH TIME ZONE))"
)


def _update_batches(rows: int) -> str:
    return f"""
UPDATE {BATCHES.name}
SET polls = COALESCE(polls, 0) + CASE WHEN last_poll_at IS NOT DISTINCT FROM CAST(? AS TIMESTAMP WITH TIME ZONE)
                                      THEN 0 ELSE 1 END,
    last_poll_at = CAST(? AS TIMESTAMP WITH TIME ZONE),
    next_poll_at = v.next_poll_at, listed = v.listed, final_count = v.final_count, state = v.state,
    closed_reason = v.closed_reason, closed_at = v.closed_at
FROM (VALUES {", ".join([_POLL_ROW] * rows)})
     AS v (batch_id, next_poll_at, listed, final_count, state, closed_reason, closed_at)
WHERE {BATCHES.name}.batch_id = v.batch_id
"""


SEND_DATE = "CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE)"

MARK_DIRTY = f"""
INSERT INTO {PARQUET_DIRTY.name} (send_date, kind, marked_at)
SELECT DISTINCT {SEND_DATE}, b.kind, CAST(? AS TIMESTAMP WITH TIME ZONE)
FROM {BATCHES.name} b
WHERE b.batch_id IN (SELECT DISTINCT batch_id FROM {STATUS_STAGING.name}) OR b.batch_id = ?
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
    if warehouse.dialect == "duckdb":
        history = warehouse.execute(HISTORY_FROM_STAGING_DUCKDB)
        updated = warehouse.execute(UPDATE_MESSAGES_DUCKDB, [now, now])
        inserted = warehouse.execute(INSERT_MESSAGES_DUCKDB, [now, now])
        return MergeCounts(max(history, 0), max(updated, 0) + max(inserted, 0))
    history = warehouse.execute(HISTORY_FROM_STAGING)
    messages = warehouse.execute(MESSAGES_FROM_STAGING, [now, now])
    return MergeCounts(max(history, 0), max(messages, 0))


def clear_staging(warehouse: Warehouse) -> None:
    """Empty the staging table (on DuckDB: create this transaction's ``TEMP`` staging table first)."""
    if warehouse.dialect == "duckdb" and STATUS_STAGING.duckdb_temporary:
        warehouse.execute(
            create_table_sql(STATUS_STAGING.name, STATUS_STAGING.schema, (), "duckdb", temporary=True)
        )
    warehouse.execute(f"DELETE FROM {STATUS_STAGING.name}")


def expire_pending(warehouse: Warehouse, batch_id: str, *, now: datetime) -> int:
    """Close every non-final message of a batch as ``expired``; returns how many."""
    expire_history = EXPIRE_HISTORY_DUCKDB if warehouse.dialect == "duckdb" else EXPIRE_HISTORY
    warehouse.execute(expire_history, [now, batch_id])
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
        [
            now,
            now,
            next_poll_at,
            listed,
            final,
            state,
            closed_reason,
            now if closed_reason else None,
            batch_id,
        ],
    )


@dataclass(frozen=True)
class Poll:
    """One batch's poll bookkeeping, as :func:`record_poll` takes it."""

    batch_id: str
    next_poll_at: datetime | None
    listed: int
    final: int
    closed_reason: str | None


#: Batches booked per UPDATE statement at most (7 parameters each).
POLLS_PER_STATEMENT = 500


def record_polls(warehouse: Warehouse, polls: list[Poll], *, now: datetime) -> None:
    """:func:`record_poll` for many batches, in one statement per ``POLLS_PER_STATEMENT`` (one
    statement per batch cost a quarter of a group merge)."""
    for first in range(0, len(polls), POLLS_PER_STATEMENT):
        chunk = polls[first : first + POLLS_PER_STATEMENT]
        values: list[object] = [now, now]
        for poll in chunk:
            closed = bool(poll.closed_reason)
            values += [
                poll.batch_id,
                poll.next_poll_at,
                int(poll.listed),
                int(poll.final),
                "closed" if closed else "open",
                poll.closed_reason,
                now if closed else None,
            ]
        warehouse.execute(_update_batches(len(chunk)), values)


def mark_dirty(warehouse: Warehouse, *, batch_id: str | None = None) -> None:
    """Flag the Parquet partitions of staged batches (and of ``batch_id``) for the next export."""
    warehouse.execute(MARK_DIRTY, [datetime.now(timezone.utc), batch_id or ""])


def send_date_of(sent_at: datetime, scheduled_at: datetime | None) -> date:
    """The partition date of a batch: the UTC date it goes out."""
    return (scheduled_at or sent_at).astimezone(timezone.utc).date()
