"""Merge staged observations into current status and history.

Observations (a polled batch, or push events resolved to messages) wait in
``every8d_status_staging``.  The history gets a row for every observed
change, then ``every8d_messages`` is upserted.  A final status is never
replaced: later observations of a final message only fill in what was
missing (received time, points, MR), so a late or duplicated push cannot
undo a delivery.  Replaying the same observations changes nothing.

Postgres keeps the two tables' keys as primary keys and the merge is
``INSERT ... ON CONFLICT``.  DuckDB has no index on them (see
:class:`~every8d.warehouse.tables.TableSpec`), and MySQL/MariaDB has no
``ON CONFLICT ... WHERE``, so there the same statements are spelled with
anti-joins: history rows already recorded and messages already known are
left out of the inserts, and known messages are changed by one
``UPDATE ... FROM`` (MySQL: ``UPDATE ... JOIN``) the staged rows.  Every
spelling leaves the same rows; the dialect objects
(:mod:`every8d.warehouse.dialects`) hold the differences.

Without an index (DuckDB) an anti-join against a whole table builds a hash
table of it, so a merge would cost more as the tables grow.  There the staged
rows are compared with the staged batches' rows only (``batch_id IN`` the
staged batches: one column scanned), and when none of the staged batches has a
message row yet (one ``LIMIT 1`` probe) -- a batch's first poll, the usual case
-- there is nothing to compare with: the rows are simply inserted.  History
rows are only ever written with their message rows, so such a batch has no
history either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache

from every8d.warehouse.base import Warehouse
from every8d.warehouse.dialects import Dialect, dialect_for
from every8d.warehouse.tables import BATCHES, MESSAGES, PARQUET_DIRTY, STATUS_HISTORY, STATUS_STAGING

EXPIRED_MEANING_EN = "no final status within the validity window (closed by the sync)"
EXPIRED_MEANING_ZH = "有效期限內未取得最終狀態"

_GROUP = "COALESCE(c.status_group, 'pending')"
_FINAL = "COALESCE(c.is_final, FALSE)"
_MEANING_ZH = "COALESCE(c.meaning_zh, '')"

_HISTORY_COLUMNS = (
    "batch_id, mobile, seq, mr, status, status_group, is_final, previous_status, source, observed_at"
)
#: The staged batches' rows of a table: what a merge compares the staged rows with (on DuckDB, where
#: the tables have no index, a scan of one column instead of a hash table of the whole table).
_STAGED_BATCHES = f"SELECT DISTINCT batch_id FROM {STATUS_STAGING.name}"


def _of_staged_batches(table: str) -> str:
    return f"(SELECT * FROM {table} WHERE batch_id IN ({_STAGED_BATCHES}))"


def _history_select(messages: str) -> str:
    """The staged rows that are changes, as history rows; ``messages``: the table (or its staged part)."""
    return f"""
SELECT s.batch_id, s.mobile, s.seq, COALESCE(s.mr, m.mr) AS mr, s.status, {_GROUP} AS status_group,
       {_FINAL} AS is_final, m.status AS previous_status, s.source, s.observed_at
FROM {STATUS_STAGING.name} s
JOIN {BATCHES.name} b ON b.batch_id = s.batch_id
LEFT JOIN every8d_status_codes c ON c.status = s.status
LEFT JOIN {messages} m ON m.batch_id = s.batch_id AND m.mobile = s.mobile AND m.seq = s.seq
WHERE m.batch_id IS NULL
   OR (NOT m.is_final AND (m.status <> s.status OR m.status_group <> {_GROUP}))
"""


#: Every staged row as a history row: the staged batches have no messages (nor history) yet.
_FIRST_HISTORY_SELECT = f"""
SELECT s.batch_id, s.mobile, s.seq, s.mr, s.status, {_GROUP} AS status_group,
       {_FINAL} AS is_final, CAST(NULL AS INTEGER) AS previous_status, s.source, s.observed_at
FROM {STATUS_STAGING.name} s
JOIN {BATCHES.name} b ON b.batch_id = s.batch_id
LEFT JOIN every8d_status_codes c ON c.status = s.status
"""
#: Whether any staged batch has message rows already (one row if so).
_ANY_KNOWN = f"SELECT batch_id FROM {MESSAGES.name} WHERE batch_id IN ({_STAGED_BATCHES}) LIMIT 1"
_HISTORY_INSERT = f"INSERT INTO {STATUS_HISTORY.name} ({_HISTORY_COLUMNS})"
#: The history key: a message passes through each (status, group) once.
_HISTORY_KNOWN = (
    "h.batch_id = x.batch_id AND h.mobile = x.mobile AND h.seq = x.seq "
    "AND h.status = x.status AND h.status_group = x.status_group"
)

_MESSAGE_COLUMNS = (
    "batch_id, mobile, seq, mr, campaign_id, kind, name, sent_at, received_at, points, status, status_group, "
    "meaning_en, meaning_zh, is_final, final_at, first_seen_at, updated_at, source"
)
_MESSAGE_KNOWN = "t.batch_id = x.batch_id AND t.mobile = x.mobile AND t.seq = x.seq"

_EXPIRE_SELECT = """
SELECT batch_id, mobile, seq, mr, status, 'expired' AS status_group, TRUE AS is_final,
       status AS previous_status, 'close' AS source, CAST(? AS {ts}) AS observed_at
FROM {messages}
WHERE batch_id = ? AND NOT is_final
"""

BATCH_COUNTS = f"""
SELECT count(*) AS messages, COALESCE(sum(CASE WHEN is_final THEN 1 ELSE 0 END), 0) AS final
FROM {MESSAGES.name} WHERE batch_id = ?
"""

SEND_DATE = "CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE)"


def _message_update(d: Dialect, new: str) -> tuple[list[tuple[str, str]], str]:
    """``(assignments, WHERE condition)`` of a known message ``t`` observed again as ``new``.

    ``is_final`` is assigned after every column that reads it (MySQL applies them in order).
    """

    def keep_if_final(column: str) -> tuple[str, str]:
        return column, f"CASE WHEN t.is_final THEN t.{column} ELSE {new}.{column} END"

    sets = [
        *map(keep_if_final, ("status", "status_group", "meaning_en", "meaning_zh", "final_at", "source")),
        ("is_final", f"t.is_final OR {new}.is_final"),
        ("mr", f"COALESCE(t.mr, {new}.mr)"),
        ("name", f"COALESCE({new}.name, t.name)"),
        ("sent_at", f"COALESCE({new}.sent_at, t.sent_at)"),
        ("received_at", f"COALESCE({new}.received_at, t.received_at)"),
        ("points", f"COALESCE({new}.points, t.points)"),
        ("updated_at", f"{new}.updated_at"),
    ]
    changed = f"""(NOT t.is_final AND (t.status <> {new}.status OR t.status_group <> {new}.status_group))
   OR (t.mr IS NULL AND {new}.mr IS NOT NULL)
   OR ({new}.name IS NOT NULL AND {d.distinct("t.name", f"{new}.name")})
   OR ({new}.sent_at IS NOT NULL AND {d.distinct("t.sent_at", f"{new}.sent_at")})
   OR ({new}.received_at IS NOT NULL AND {d.distinct("t.received_at", f"{new}.received_at")})
   OR ({new}.points IS NOT NULL AND {d.distinct("t.points", f"{new}.points")})"""
    return sets, changed


@dataclass(frozen=True)
class MergeSql:
    """The merge's statements as one dialect spells them.

    ``by_key``: the tables carry their keys and the dialect has ``ON CONFLICT ... WHERE``
    (Postgres), so history and messages are upserts; otherwise (DuckDB without keys, MySQL)
    known messages are updated and the rest inserted, history rows already there left out.
    """

    by_key: bool
    #: The tables have no keys (DuckDB): the merge compares the staged rows with the staged batches'
    #: rows only, and staged batches none of which has messages yet are simply inserted.
    first_sight: bool
    any_known: str  # first_sight only: a row if some staged batch has messages
    history_first: str  # first_sight only: every staged row as history
    insert_first: str  # first_sight only: every staged row as a message
    history_from_staging: str
    messages_from_staging: str  # by_key only
    update_messages: str  # otherwise, then insert_messages
    insert_messages: str
    expire_history: str
    expire_messages: str
    mark_dirty: str


@cache
def merge_sql(dialect: str) -> MergeSql:
    d = dialect_for(dialect)
    ts = d.timestamp
    meaning_en = f"COALESCE(c.meaning_en, 'unknown status ' || CAST(s.status AS {d.text}))"
    # The staged rows as message rows; parameters: first_seen_at, updated_at.
    messages_select = f"""
SELECT s.batch_id, s.mobile, s.seq, s.mr, b.campaign_id, b.kind, s.name, s.sent_at, s.received_at, s.points,
       s.status, {_GROUP} AS status_group, {meaning_en} AS meaning_en, {_MEANING_ZH} AS meaning_zh,
       {_FINAL} AS is_final, CASE WHEN {_FINAL} THEN COALESCE(s.received_at, s.observed_at) END AS final_at,
       CAST(? AS {ts}) AS first_seen_at,
       CAST(? AS {ts}) AS updated_at, s.source
FROM {STATUS_STAGING.name} s
JOIN {BATCHES.name} b ON b.batch_id = s.batch_id
LEFT JOIN every8d_status_codes c ON c.status = s.status
"""
    by_key = d.conflict_update and bool(MESSAGES.key_on(d.name)) and bool(STATUS_HISTORY.key_on(d.name))
    first_sight = not MESSAGES.key_on(d.name) and not STATUS_HISTORY.key_on(d.name)
    expire_select = _EXPIRE_SELECT.format(ts=ts, messages=MESSAGES.name)
    # Without keys, the staged rows are compared with the staged batches' rows only.
    messages_seen = _of_staged_batches(MESSAGES.name) if first_sight else MESSAGES.name
    history_seen = _of_staged_batches(STATUS_HISTORY.name) if first_sight else STATUS_HISTORY.name

    def new_history(select: str, history: str = STATUS_HISTORY.name) -> str:
        if STATUS_HISTORY.key_on(d.name):
            return d.insert_new(f"{_HISTORY_INSERT}\n{select}")
        return f"{_HISTORY_INSERT}\n{d.anti_join(select, 'x', history, 'h', _HISTORY_KNOWN)}"

    upsert_sets, upsert_where = _message_update(d, "excluded")
    update_sets, update_where = _message_update(d, "x")
    messages_from_staging = (
        d.conflict_update_sql(
            MESSAGES.name,
            "t",
            _MESSAGE_COLUMNS,
            messages_select,
            MESSAGES.primary_key,
            upsert_sets,
            upsert_where,
        )
        if by_key
        else ""
    )
    staged_only = f"t.batch_id IN ({_STAGED_BATCHES}) AND " if first_sight else ""
    return MergeSql(
        by_key=by_key,
        first_sight=first_sight,
        any_known=_ANY_KNOWN,
        history_first=f"{_HISTORY_INSERT}\n{_FIRST_HISTORY_SELECT}",
        insert_first=f"INSERT INTO {MESSAGES.name} ({_MESSAGE_COLUMNS})\n{messages_select}",
        history_from_staging=new_history(_history_select(messages_seen), history_seen),
        messages_from_staging=messages_from_staging,
        update_messages=d.update_from(
            MESSAGES.name,
            "t",
            update_sets,
            messages_select,
            "x",
            f"{staged_only}{_MESSAGE_KNOWN} AND ({update_where})",
        ),
        insert_messages=(
            f"INSERT INTO {MESSAGES.name} ({_MESSAGE_COLUMNS})\n"
            f"{d.anti_join(messages_select, 'x', messages_seen, 't', _MESSAGE_KNOWN)}"
        ),
        expire_history=new_history(expire_select),
        expire_messages=f"""
UPDATE {MESSAGES.name}
SET status_group = 'expired', is_final = TRUE, meaning_en = ?, meaning_zh = ?,
    final_at = CAST(? AS {ts}), updated_at = CAST(? AS {ts}),
    source = 'close'
WHERE batch_id = ? AND NOT is_final
""",
        mark_dirty=d.insert_or_update(
            f"""INSERT INTO {PARQUET_DIRTY.name} (send_date, kind, marked_at)
SELECT DISTINCT {SEND_DATE}, b.kind, CAST(? AS {ts})
FROM {BATCHES.name} b
WHERE b.batch_id IN (SELECT DISTINCT batch_id FROM {STATUS_STAGING.name}) OR b.batch_id = ?""",
            PARQUET_DIRTY.name,
            PARQUET_DIRTY.primary_key,
            ["marked_at"],
        ),
    )


@dataclass(frozen=True)
class MergeCounts:
    """What a merge changed: history rows added and message rows written."""

    history: int
    messages: int
    #: The staged batches had no message rows before: their rows now are exactly the staged ones.
    first_sight: bool = False

    @property
    def changed(self) -> bool:
        return self.history > 0 or self.messages > 0


def merge_staged(warehouse: Warehouse, *, now: datetime) -> MergeCounts:
    """Apply everything in the staging table to history and messages (call inside a transaction)."""
    sql = merge_sql(warehouse.dialect)
    if sql.first_sight and not warehouse.query_arrow(sql.any_known).num_rows:
        # Batches seen for the first time (the usual poll): nothing to compare with, every row is new.
        # Their history is empty too: history rows are only written with their message rows.
        history = warehouse.execute(sql.history_first)
        inserted = warehouse.execute(sql.insert_first, [now, now])
        return MergeCounts(max(history, 0), max(inserted, 0), first_sight=True)
    history = warehouse.execute(sql.history_from_staging)
    if sql.by_key:
        messages = warehouse.execute(sql.messages_from_staging, [now, now])
        return MergeCounts(max(history, 0), max(messages, 0))
    updated = warehouse.execute(sql.update_messages, [now, now])
    inserted = warehouse.execute(sql.insert_messages, [now, now])
    return MergeCounts(max(history, 0), max(updated, 0) + max(inserted, 0))


def clear_staging(warehouse: Warehouse) -> None:
    """Empty the staging table (on DuckDB: create this transaction's ``TEMP`` staging table first)."""
    if warehouse.dialect == "duckdb" and STATUS_STAGING.duckdb_temporary:
        warehouse.execute(
            dialect_for("duckdb").create_table_sql(
                STATUS_STAGING.name, STATUS_STAGING.schema, (), temporary=True
            )
        )
    warehouse.execute(f"DELETE FROM {STATUS_STAGING.name}")


def expire_pending(warehouse: Warehouse, batch_id: str, *, now: datetime) -> int:
    """Close every non-final message of a batch as ``expired``; returns how many."""
    sql = merge_sql(warehouse.dialect)
    warehouse.execute(sql.expire_history, [now, batch_id])
    count = warehouse.execute(
        sql.expire_messages, [EXPIRED_MEANING_EN, EXPIRED_MEANING_ZH, now, now, batch_id]
    )
    return max(count, 0)


def batch_counts(warehouse: Warehouse, batch_id: str) -> tuple[int, int]:
    """(message rows, final rows) held for a batch."""
    row = warehouse.query_arrow(BATCH_COUNTS, [batch_id]).to_pylist()[0]
    return int(row["messages"]), int(row["final"])


@dataclass(frozen=True)
class Poll:
    """One batch's poll bookkeeping, as :func:`record_polls` books it."""

    batch_id: str
    next_poll_at: datetime | None
    listed: int
    final: int
    closed_reason: str | None


#: Batches booked per UPDATE statement at most (7 parameters each).
POLLS_PER_STATEMENT = 500


def record_polls(warehouse: Warehouse, polls: list[Poll], *, now: datetime) -> None:
    """Update the batches' polling bookkeeping after a poll (closing those with a ``closed_reason``),
    in one statement per ``POLLS_PER_STATEMENT`` (one statement per batch cost a quarter of a group
    merge).  A rerun of the same poll (same ``now``) does not count as another poll."""
    for first in range(0, len(polls), POLLS_PER_STATEMENT):
        chunk = polls[first : first + POLLS_PER_STATEMENT]
        values: list[object] = []
        for poll in chunk:
            closed = bool(poll.closed_reason)
            values += [
                poll.batch_id,
                now,
                poll.next_poll_at,
                int(poll.listed),
                int(poll.final),
                "closed" if closed else "open",
                poll.closed_reason,
                now if closed else None,
            ]
        warehouse.execute(_update_batches_sql(warehouse.dialect, len(chunk)), values)


@lru_cache(maxsize=64)
def _update_batches_sql(dialect: str, rows: int) -> str:
    """One UPDATE of ``rows`` batches' poll bookkeeping; every parameter sits in the rows (8 per batch).

    ``polls`` is assigned first: it reads ``last_poll_at`` before that is moved (a rerun of the same
    poll, same ``now``, does not count as another poll).
    """
    d = dialect_for(dialect)
    ts, text, big = d.timestamp, d.text, d.integer
    columns = [
        ("batch_id", text),
        ("polled_at", ts),
        ("next_poll_at", ts),
        ("listed", big),
        ("final_count", big),
        ("state", text),
        ("closed_reason", text),
        ("closed_at", ts),
    ]
    same_poll = d.not_distinct("t.last_poll_at", "v.polled_at")
    sets = [
        ("polls", f"COALESCE(t.polls, 0) + CASE WHEN {same_poll} THEN 0 ELSE 1 END"),
        ("last_poll_at", "v.polled_at"),
        *((name, f"v.{name}") for name, _ in columns[2:]),
    ]
    return d.update_from_values(BATCHES.name, "t", sets, columns, rows, "t.batch_id = v.batch_id")


def mark_dirty(warehouse: Warehouse, *, batch_id: str | None = None) -> None:
    """Flag the Parquet partitions of staged batches (and of ``batch_id``) for the next export."""
    warehouse.execute(merge_sql(warehouse.dialect).mark_dirty, [datetime.now(UTC), batch_id or ""])
