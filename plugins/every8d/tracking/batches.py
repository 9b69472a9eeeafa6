"""Batches the status sync must follow: registered by the send operators, polled until final.

``register_batches`` is idempotent on ``batch_id``: registering again updates
what the sender knows (campaign, counts, points) but never the polling state,
so a retried send task cannot reopen or reset a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import BATCHES

KINDS = ("sms", "mms")
#: Columns a re-registration may update; polling state is the sync's alone.
SENDER_COLUMNS = (
    "campaign_id",
    "kind",
    "sent_at",
    "scheduled_at",
    "recipients",
    "points",
    "validity_minutes",
)
DEFAULT_VALIDITY_MINUTES = 1440


def _utc(value: Any, what: str, index: int) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"batch row {index}: {what} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def batches_table(rows: Sequence[Mapping[str, Any]], *, now: datetime | None = None) -> pa.Table:
    """Validate registration rows and shape them as ``every8d_batches`` rows (state ``open``)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    columns: dict[str, list[Any]] = {name: [] for name in BATCHES.schema.names}
    for index, row in enumerate(rows, start=1):
        batch_id = str(row.get("batch_id") or "").strip()
        if not batch_id:
            raise ValueError(f"batch row {index} has no batch_id")
        kind = str(row.get("kind") or "sms").lower()
        if kind not in KINDS:
            raise ValueError(f"batch row {index}: kind must be one of {KINDS}, not {kind!r}")
        sent_at = _utc(row.get("sent_at"), "sent_at", index)
        if sent_at is None:
            raise ValueError(f"batch row {index} has no sent_at")
        scheduled_at = _utc(row.get("scheduled_at"), "scheduled_at", index)
        validity = row.get("validity_minutes")
        points = row.get("points")
        values = {
            "batch_id": batch_id,
            "campaign_id": None if row.get("campaign_id") is None else str(row["campaign_id"]),
            "kind": kind,
            "sent_at": sent_at,
            "scheduled_at": scheduled_at,
            "recipients": None if row.get("recipients") is None else int(row["recipients"]),
            "points": None if points is None else Decimal(str(points)),
            "validity_minutes": DEFAULT_VALIDITY_MINUTES if validity is None else int(validity),
            "state": "open",
            "closed_reason": None,
            "registered_at": now,
            "last_poll_at": None,
            # First poll as soon as the batch goes out (a scheduled batch: at its time).
            "next_poll_at": max(sent_at, scheduled_at) if scheduled_at else sent_at,
            "polls": 0,
            "listed": None,
            "final_count": None,
            "closed_at": None,
        }
        for name, value in values.items():
            columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=BATCHES.schema)


def register_batches(warehouse: Warehouse, rows: Sequence[Mapping[str, Any]]) -> int:
    """Record batches for the status sync; idempotent on ``batch_id``.

    :param rows: dicts with batch_id, campaign_id, kind ("sms"|"mms"), sent_at
        (aware datetime), scheduled_at (aware or None), recipients, points
        (Decimal) and validity_minutes.
    :return: rows inserted or updated.
    """
    table = batches_table(rows)
    if table.num_rows == 0:
        return 0
    if len(set(table.column("batch_id").to_pylist())) != table.num_rows:
        raise ValueError("register_batches got the same batch_id twice")
    with warehouse.transaction():
        BATCHES.ensure(warehouse)
        return warehouse.upsert(BATCHES.name, table, BATCHES.primary_key, update_columns=list(SENDER_COLUMNS))
