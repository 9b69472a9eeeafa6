"""Every table the provider writes, as Arrow schemas with their keys (documented in docs/tables.md).

One module so that the SQL tables, the Parquet files and the tests agree on
names and types.  Times are UTC ``timestamp[us, tz=UTC]`` and end in ``_at``;
phone numbers are E.164 text; points are ``decimal(12, 2)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from every8d.arrow_types import POINTS, UTC_TIME
from every8d.client import statuses

if TYPE_CHECKING:
    from every8d.warehouse.base import Warehouse


def _field(name: str, arrow_type: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, arrow_type, nullable=nullable)


@dataclass(frozen=True)
class TableSpec:
    """A table's name, Arrow schema and primary key.

    :param duckdb_primary_key: declare the key on DuckDB too.  The two big
        tables do not: DuckDB keeps an ART index of every key of a table,
        loaded when the file opens and updated row by row, and it was most
        of a million-row merge.  Their keys are kept by the merge itself
        (anti-joins, see :mod:`every8d.tracking.merge`); Postgres and other
        warehouses still enforce them.
    :param duckdb_temporary: on DuckDB, a ``TEMP`` table created in each
        transaction that uses it (memory, spilling to disk), never written to the file.
    """

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...] = ()
    duckdb_primary_key: bool = True
    duckdb_temporary: bool = False

    def key_on(self, dialect: str) -> tuple[str, ...]:
        """The primary key the table is declared with on ``dialect``."""
        return self.primary_key if dialect != "duckdb" or self.duckdb_primary_key else ()

    def ensure(self, warehouse: Warehouse) -> None:
        if warehouse.dialect == "duckdb" and self.duckdb_temporary:
            return  # created by the transaction that fills it
        warehouse.ensure_table(self.name, self.schema, self.key_on(warehouse.dialect))


BATCHES = TableSpec(
    "every8d_batches",
    pa.schema(
        [
            _field("batch_id", pa.string(), False),
            _field("campaign_id", pa.string()),
            _field("kind", pa.string(), False),  # sms | mms
            _field("sent_at", UTC_TIME, False),
            _field("scheduled_at", UTC_TIME),
            _field("recipients", pa.int32()),
            _field("points", POINTS),
            _field("validity_minutes", pa.int32()),
            _field("state", pa.string(), False),  # open | closed
            _field("closed_reason", pa.string()),  # all_final | expired
            _field("registered_at", UTC_TIME),
            _field("last_poll_at", UTC_TIME),
            _field("next_poll_at", UTC_TIME),
            _field("polls", pa.int32()),
            _field("listed", pa.int32()),  # messages the gateway listed at the last poll
            _field("final_count", pa.int32()),  # of those, how many were final
            _field("closed_at", UTC_TIME),
        ]
    ),
    ("batch_id",),
)

#: One row per message.  A number listed n times in a batch (one line per
#: message) gets ``seq`` 1..n in the gateway's listing order.
MESSAGES = TableSpec(
    "every8d_messages",
    pa.schema(
        [
            _field("batch_id", pa.string(), False),
            _field("mobile", pa.string(), False),  # E.164
            _field("seq", pa.int32(), False),
            _field("mr", pa.string()),
            _field("campaign_id", pa.string()),
            _field("kind", pa.string(), False),
            _field("name", pa.string()),
            _field("sent_at", UTC_TIME),
            _field("received_at", UTC_TIME),
            _field("points", POINTS),
            _field("status", pa.int32(), False),
            _field("status_group", pa.string(), False),
            _field("meaning_en", pa.string()),
            _field("meaning_zh", pa.string()),
            _field("is_final", pa.bool_(), False),
            _field("final_at", UTC_TIME),  # when the final status was first observed (or received_at)
            _field("first_seen_at", UTC_TIME, False),
            _field("updated_at", UTC_TIME, False),
            _field("source", pa.string(), False),  # poll | push | close
        ]
    ),
    ("batch_id", "mobile", "seq"),
    duckdb_primary_key=False,
)

#: Append-only: one row per observed change of a message's status.
STATUS_HISTORY = TableSpec(
    "every8d_status_history",
    pa.schema(
        [
            _field("batch_id", pa.string(), False),
            _field("mobile", pa.string(), False),
            _field("seq", pa.int32(), False),
            _field("mr", pa.string()),
            _field("status", pa.int32(), False),
            _field("status_group", pa.string(), False),
            _field("is_final", pa.bool_(), False),
            _field("previous_status", pa.int32()),
            _field("source", pa.string(), False),  # poll | push | close
            _field("observed_at", UTC_TIME, False),
        ]
    ),
    # A message passes through each (status, group) once, so a replayed change is a no-op.
    ("batch_id", "mobile", "seq", "status", "status_group"),
    duckdb_primary_key=False,
)

#: The gateway's status code table, for joins in SQL.
STATUS_CODES = TableSpec(
    "every8d_status_codes",
    pa.schema(
        [
            _field("status", pa.int32(), False),
            _field("status_group", pa.string(), False),
            _field("is_final", pa.bool_(), False),
            _field("meaning_en", pa.string(), False),
            _field("meaning_zh", pa.string(), False),
        ]
    ),
    ("status",),
)

#: Written by the push endpoint; merged into messages and history by the sync.
PUSH_EVENTS = TableSpec(
    "every8d_push_events",
    pa.schema(
        [
            _field("batch_id", pa.string(), False),
            _field("mobile", pa.string()),
            _field("mr", pa.string()),
            _field("status", pa.int32(), False),
            _field("reported_at", UTC_TIME),
            _field("received_at", UTC_TIME, False),
            _field("reply_text", pa.string()),
            _field("event_key", pa.string(), False),
        ]
    ),
    ("event_key",),
)

#: Which push events the sync has merged already (the push table stays the push endpoint's).
PUSH_EVENTS_MERGED = TableSpec(
    "every8d_push_events_merged",
    pa.schema(
        [
            _field("event_key", pa.string(), False),
            _field("merged_at", UTC_TIME, False),
            _field("merge_id", pa.string(), False),
        ]
    ),
    ("event_key",),
)

#: How far the flush got in each push journal (by the journal's own id): moved in the same
#: transaction as the events it covers, so concurrent flushers never split or double a journal.
PUSH_FLUSH_STATE = TableSpec(
    "every8d_push_flush_state",
    pa.schema(
        [
            _field("journal_id", pa.string(), False),
            _field("flushed_seq", pa.int64(), False),
            _field("flushed_at", UTC_TIME),
        ]
    ),
    ("journal_id",),
)

REPLIES = TableSpec(
    "every8d_replies",
    pa.schema(
        [
            _field("batch_id", pa.string(), False),
            _field("mobile", pa.string(), False),
            _field("reply_text", pa.string()),
            _field("replied_at", UTC_TIME, False),
            _field("source", pa.string(), False),  # poll | push
            _field("event_key", pa.string(), False),
        ]
    ),
    ("event_key",),
)

SUPPRESSIONS = TableSpec(
    "every8d_suppressions",
    pa.schema(
        [
            _field("mobile", pa.string(), False),
            _field("reason", pa.string()),
            _field("source", pa.string()),
            _field("created_at", UTC_TIME, False),
        ]
    ),
    ("mobile",),
)

#: Observations being merged (a polled batch, or resolved push events); empty between transactions.
STATUS_STAGING = TableSpec(
    "every8d_status_staging",
    pa.schema(
        [
            _field("batch_id", pa.string(), False),
            _field("mobile", pa.string(), False),
            _field("seq", pa.int32(), False),
            _field("mr", pa.string()),
            _field("name", pa.string()),
            _field("sent_at", UTC_TIME),
            _field("received_at", UTC_TIME),
            _field("points", POINTS),
            _field("status", pa.int32(), False),
            _field("observed_at", UTC_TIME, False),
            _field("source", pa.string(), False),  # poll | push
        ]
    ),
    (),  # no index: rows are unique by construction, and an index makes clearing it slow
    duckdb_temporary=True,
)

#: Parquet partitions (send date, kind) whose files are older than the tables.
PARQUET_DIRTY = TableSpec(
    "every8d_parquet_dirty",
    pa.schema(
        [
            _field("send_date", pa.date32(), False),
            _field("kind", pa.string(), False),
            _field("marked_at", UTC_TIME, False),
        ]
    ),
    ("send_date", "kind"),
)

TRACKING_TABLES = (
    BATCHES,
    MESSAGES,
    STATUS_HISTORY,
    STATUS_CODES,
    PUSH_EVENTS,
    PUSH_EVENTS_MERGED,
    PUSH_FLUSH_STATE,
    REPLIES,
    SUPPRESSIONS,
    STATUS_STAGING,
    PARQUET_DIRTY,
)


def status_codes_table() -> pa.Table:
    """The client's status code table as rows of ``every8d_status_codes``."""
    codes = list(statuses.STATUS_CODES.values())
    return pa.Table.from_pydict(
        {
            "status": [c.code for c in codes],
            "status_group": [c.group for c in codes],
            "is_final": [c.final for c in codes],
            "meaning_en": [c.meaning for c in codes],
            "meaning_zh": [c.meaning_zh for c in codes],
        },
        schema=STATUS_CODES.schema,
    )


def ensure_tracking_tables(warehouse: Warehouse) -> None:
    """Create (or extend) every tracking table and refresh the status code table; idempotent."""
    if getattr(warehouse, "_tracking_tables_ready", False):
        return
    with warehouse.transaction():
        for spec in TRACKING_TABLES:
            spec.ensure(warehouse)
            if warehouse.dialect == "duckdb" and spec.duckdb_temporary:
                # Files written by earlier versions hold it as a (always empty) table of their own.
                warehouse.execute(f"DROP TABLE IF EXISTS {spec.name}")
        warehouse.upsert(STATUS_CODES.name, status_codes_table(), STATUS_CODES.primary_key)
    warehouse._tracking_tables_ready = True  # type: ignore[attr-defined]
