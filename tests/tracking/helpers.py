"""Shared steps of the tracking tests: send through the real hook, register, read tables back."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal

from every8d.hooks.every8d import Every8dHook
from every8d.tracking.batches import register_batches
from every8d.tracking.sync import DueBatch
from every8d.warehouse.base import Warehouse

# A 1x1 PNG, small enough for the cheapest MMS.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct Taiwanese mobiles in local form (the sandbox lists them as E.164)."""
    return [f"0912{index:06d}" for index in range(start, start + count)]


def send_batch(
    sandbox,
    warehouse: Warehouse,
    destinations: list[str],
    *,
    kind: str = "sms",
    campaign: str = "spring",
    validity_minutes: int = 1440,
    schedule_at: datetime | None = None,
) -> DueBatch:
    """Send through the hook to the sandbox and register the batch, as the send operators do."""
    hook = Every8dHook()
    if kind == "mms":
        result = hook.send_mms(
            "Spring",
            destinations,
            image=PNG,
            subject="Sale",
            validity_minutes=validity_minutes,
            schedule_at=schedule_at,
        )
    else:
        result = hook.send_sms(
            "Spring sale today", destinations, validity_minutes=validity_minutes, schedule_at=schedule_at
        )
    hook.close()
    sent_at = sandbox.now()
    register_batches(
        warehouse,
        [
            {
                "batch_id": result.batch_id,
                "campaign_id": campaign,
                "kind": kind,
                "sent_at": sent_at,
                "scheduled_at": schedule_at,
                "recipients": len(destinations),
                "points": result.cost,
                "validity_minutes": validity_minutes,
            }
        ],
    )
    return DueBatch(result.batch_id, kind, sent_at, schedule_at, validity_minutes)


def sandbox_rows(sandbox, batch_id: str) -> list[tuple]:
    """The sandbox's own record of a batch as (mobile, seq, status, points, received_at), in key order."""
    seen: dict[str, int] = {}
    rows = []
    for message in sandbox.messages(batch_id):
        seen[message["mobile"]] = seen.get(message["mobile"], 0) + 1
        received = message["received_at"]
        rows.append(
            (
                message["mobile"],
                seen[message["mobile"]],
                message["status"],
                Decimal(message["points"]),
                datetime.fromisoformat(received).replace(microsecond=0) if received else None,
            )
        )
    return sorted(rows)


def table_rows(warehouse: Warehouse, batch_id: str) -> list[tuple]:
    """Our ``every8d_messages`` rows of a batch in the same shape as :func:`sandbox_rows`."""
    result = warehouse.query_arrow(
        "SELECT mobile, seq, status, points, received_at FROM every8d_messages WHERE batch_id = ? "
        "ORDER BY mobile, seq",
        [batch_id],
    )
    return [(r["mobile"], r["seq"], r["status"], r["points"], r["received_at"]) for r in result.to_pylist()]


def snapshot(warehouse: Warehouse) -> dict[str, list[dict]]:
    """Every tracking table's rows, ordered, to compare two states of the warehouse."""
    tables = {
        "every8d_messages": "batch_id, mobile, seq",
        "every8d_status_history": "batch_id, mobile, seq, status, status_group",
        "every8d_batches": "batch_id",
        "every8d_replies": "event_key",
        "every8d_suppressions": "mobile",
    }
    return {
        name: warehouse.query_arrow(f"SELECT * FROM {name} ORDER BY {order}").to_pylist()
        for name, order in tables.items()
    }
