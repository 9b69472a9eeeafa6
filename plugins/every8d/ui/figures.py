"""One campaign's figures for the UI, read from the analytics views (and the send ledger's tables).

The UI never talks to the gateway and never takes the pipeline's lock: with a
DuckDB warehouse it reads the analysts' file (refreshed by every status pass,
see :mod:`every8d.tracking.analyst`), with a server warehouse the warehouse
itself.  Phone numbers leave this module masked.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any

from every8d import settings

#: Time-to-deliver buckets: (upper bound in seconds, label).
BUCKETS = (
    (10, "< 10 s"),
    (30, "10–30 s"),
    (60, "30–60 s"),
    (120, "1–2 min"),
    (300, "2–5 min"),
    (900, "5–15 min"),
    (3600, "15–60 min"),
    (None, "> 1 h"),
)


def mask_phone(value: str | None) -> str | None:
    """Every digit hidden but the last two (and a ``+`` country code of a full number).

    ``+886912345678`` -> ``+886•••••••78``; fewer than six digits are hidden whole.
    """
    if value is None:
        return None
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    keep = set(digits[-2:]) if len(digits) >= 6 else set()
    if value.lstrip().startswith("+") and len(digits) >= 10:
        keep |= set(digits[:3])
    return "".join(ch if (not ch.isdigit() or i in keep) else "•" for i, ch in enumerate(value))


class _Reader:
    """``query(sql, params) -> list[dict]`` on the analysts' DuckDB file or a server warehouse."""

    def __init__(self, query, tables: set[str]) -> None:
        self.query = query
        self.tables = tables


@contextmanager
def open_reader(warehouse_target: str | None = None):
    """A short-lived read-only reader (closed on exit): never holds a file beyond one request."""
    from every8d.tracking.analyst import analyst_db_path
    from every8d.warehouse import DUCKDB_SCHEME, default_warehouse_target

    target = (warehouse_target or default_warehouse_target()).strip()
    if target.startswith(DUCKDB_SCHEME):
        import duckdb

        path = analyst_db_path(target)
        if path is None or not path.exists():
            raise LookupError("no analysts' DuckDB file yet: the status DAG writes it after its first pass")
        with duckdb.connect(str(path), read_only=True) as connection:
            tables = {
                r[0]
                for r in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
            }

            def query(sql: str, parameters: list | None = None) -> list[dict]:
                result = connection.execute(sql, parameters or [])
                names = [c[0] for c in result.description]
                return [dict(zip(names, row, strict=True)) for row in result.fetchall()]

            yield _Reader(query, tables)
        return
    from every8d.warehouse import open_warehouse

    with open_warehouse(target) as warehouse:
        tables = {
            r["table_name"]
            for r in warehouse.query_arrow("SELECT table_name FROM information_schema.tables").to_pylist()
        }
        yield _Reader(lambda sql, parameters=None: warehouse.query_arrow(sql, parameters).to_pylist(), tables)


def _number(value: Any) -> Any:
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value


def campaigns_of_run(reader: _Reader, dag_id: str, run_id: str) -> list[str]:
    """Campaign ids a DAG run planned or sent (the ledger records dag_id and run_id)."""
    if "every8d_campaigns" not in reader.tables:
        return []
    rows = reader.query(
        "SELECT campaign_id FROM every8d_campaigns WHERE dag_id = ? AND run_id = ? ORDER BY planned_at",
        [dag_id, run_id],
    )
    return [r["campaign_id"] for r in rows]


def campaign_figures(reader: _Reader, campaign_id: str) -> dict[str, Any]:
    """Everything the Campaign tab shows for one campaign, JSON-friendly, numbers masked."""
    plan: dict[str, Any] = {}
    if "every8d_campaigns" in reader.tables:
        found = reader.query(
            "SELECT campaign_id, kind, state, audience_rows, recipients, rejected, points, "
            "dag_id, run_id, planned_at, finished_at FROM every8d_campaigns "
            "WHERE campaign_id = ?",
            [campaign_id],
        )
        plan = found[0] if found else {}
    summary = reader.query("SELECT * FROM every8d_campaign_summary WHERE campaign_id = ?", [campaign_id])
    summary_row = summary[0] if summary else {}
    rejects = []
    if "every8d_send_rejects" in reader.tables:
        rejects = reader.query(
            "SELECT reason, count(*) AS rows FROM every8d_send_rejects WHERE campaign_id = ? "
            "GROUP BY reason ORDER BY count(*) DESC, reason",
            [campaign_id],
        )
    failures = reader.query(
        "SELECT status, status_group, meaning_en, meaning_zh, sum(messages) AS messages "
        "FROM every8d_failure_reasons "
        "WHERE campaign_id = ? GROUP BY status, status_group, meaning_en, meaning_zh "
        "ORDER BY sum(messages) DESC, status",
        [campaign_id],
    )
    cases = " ".join(
        f"WHEN seconds_to_deliver < {bound} THEN {i}"
        for i, (bound, _) in enumerate(BUCKETS)
        if bound is not None
    )
    buckets = {
        r["bucket"]: r["messages"]
        for r in reader.query(
            f"SELECT CASE {cases} ELSE {len(BUCKETS) - 1} END AS bucket, count(*) AS messages "
            "FROM every8d_delivery_times WHERE campaign_id = ? GROUP BY 1",
            [campaign_id],
        )
    }
    sent = int(summary_row.get("sent") or 0)
    pending = int(summary_row.get("pending") or 0)
    state = plan.get("state")
    return {
        "campaign_id": campaign_id,
        "kind": plan.get("kind"),
        "state": state,
        "live": pending > 0 or state not in ("done", None),
        "audience_rows": plan.get("audience_rows"),
        "recipients": plan.get("recipients"),
        "rejected": plan.get("rejected"),
        "rejected_by_reason": [{"reason": r["reason"], "rows": int(r["rows"])} for r in rejects],
        "sent": sent,
        "delivered": int(summary_row.get("delivered") or 0),
        "failed": int(summary_row.get("failed") or 0),
        "expired": int(summary_row.get("expired") or 0),
        "cancelled": int(summary_row.get("cancelled") or 0),
        "pending": pending,
        "failed_by_reason": [
            {
                "status": int(r["status"]),
                "group": r["status_group"],
                "meaning": r["meaning_en"],
                "meaning_zh": r["meaning_zh"],
                "messages": int(r["messages"]),
            }
            for r in failures
        ],
        "points_estimated": _number(plan.get("points")),
        "points_spent": _number(summary_row.get("points_spent")),
        "delivery_rate": _number(summary_row.get("delivery_rate")),
        "points_per_delivered": _number(summary_row.get("points_per_delivered")),
        "p50_seconds_to_deliver": _number(summary_row.get("p50_seconds_to_deliver")),
        "p95_seconds_to_deliver": _number(summary_row.get("p95_seconds_to_deliver")),
        "time_to_deliver": [
            {"bucket": label, "messages": int(buckets.get(i, 0))} for i, (_, label) in enumerate(BUCKETS)
        ],
        "replies": int(summary_row.get("replies") or 0),
        "opt_outs": int(summary_row.get("opt_outs") or 0),
        "planned_at": plan.get("planned_at"),
        "finished_at": plan.get("finished_at"),
    }


def campaign_rejects(reader: _Reader, campaign_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """The campaign's rejected audience rows, phone numbers masked."""
    if "every8d_send_rejects" not in reader.tables:
        return []
    rows = reader.query(
        'SELECT "row_number", reason, detail, COALESCE(mobile, raw_mobile) AS raw_mobile '
        "FROM every8d_send_rejects "
        'WHERE campaign_id = ? ORDER BY "row_number" LIMIT ?',
        [campaign_id, limit],
    )
    return [
        {
            "row_number": int(r["row_number"]),
            "reason": r["reason"],
            "detail": _mask_in_text(r["detail"]),
            "mobile": mask_phone(r["raw_mobile"]),
        }
        for r in rows
    ]


_DIGIT_RUN = re.compile(r"\+?\d[\d \-]{5,}\d")


def _mask_in_text(text: str | None) -> str | None:
    """Numbers inside free text (a reject's detail may quote one) masked too."""
    return None if text is None else _DIGIT_RUN.sub(lambda m: mask_phone(m.group(0)) or "", text)


def all_campaigns(reader: _Reader, limit: int = 200) -> list[dict[str, Any]]:
    """The newest campaigns with their headline figures, for the EVERY8D page."""
    plan_join = (
        "LEFT JOIN every8d_campaigns c ON c.campaign_id = s.campaign_id"
        if "every8d_campaigns" in reader.tables
        else ""
    )
    plan_columns = (
        "c.dag_id, c.run_id, c.state, c.planned_at"
        if plan_join
        else "NULL AS dag_id, NULL AS run_id, NULL AS state, NULL AS planned_at"
    )
    rows = reader.query(
        f"SELECT s.campaign_id, s.sent, s.delivered, s.failed, s.pending, s.delivery_rate, s.points_spent, "
        f"s.first_send_date, {plan_columns} FROM every8d_campaign_summary s {plan_join} "
        f"ORDER BY s.first_send_date DESC, s.campaign_id LIMIT {int(limit)}"
    )
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def warehouse_target() -> str | None:
    return settings.get("warehouse") or None
