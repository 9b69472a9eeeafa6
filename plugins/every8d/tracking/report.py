"""An HTML delivery report with PNG charts per campaign, read from the analytics views.

Static files (``index.html`` plus two charts per campaign) so the report can
be mailed, served from a bucket or opened from disk.  Every file is written
to a temporary name and then renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from every8d.warehouse.base import Warehouse

ENV_REPORT_DIR = "EVERY8D_REPORT_DIR"


def default_report_dir() -> Path:
    """``EVERY8D_REPORT_DIR``, else ``$AIRFLOW_HOME/every8d/reports``."""
    configured = os.environ.get(ENV_REPORT_DIR, "").strip()
    if configured:
        return Path(configured)
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "every8d" / "reports"


def _slug(campaign: str | None) -> str:
    """A file-name-safe, unique name for a campaign id."""
    text = campaign if campaign is not None else "(none)"
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "campaign"
    return f"{readable}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@dataclass(frozen=True)
class Report:
    index: Path
    campaigns: int
    charts: int


def _chart_png(kind: str, rows: list[dict], title: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2), dpi=100)
    axes = figure.add_subplot()
    if kind == "daily":
        days = [str(r["send_date"]) for r in rows]
        positions = range(len(days))
        delivered = [r["delivered"] for r in rows]
        failed = [r["failed"] + r["expired"] for r in rows]
        pending = [r["pending"] for r in rows]
        axes.bar(positions, delivered, label="delivered", color="#2e7d32")
        axes.bar(positions, failed, bottom=delivered, label="failed/expired", color="#c62828")
        axes.bar(positions, pending, bottom=[d + f for d, f in zip(delivered, failed)], label="pending",
                 color="#9e9e9e")
        axes.set_xticks(list(positions), days, rotation=30, ha="right", fontsize=8)
        axes.set_ylabel("messages")
        axes.legend(fontsize=8)
    else:
        labels = [f"{r['status']} {r['meaning_en'][:28]}" for r in rows]
        axes.barh(range(len(rows)), [r["messages"] for r in rows], color="#c62828")
        axes.set_yticks(list(range(len(rows))), labels, fontsize=8)
        axes.invert_yaxis()
        axes.set_xlabel("messages")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _number(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


SUMMARY_COLUMNS = (
    ("sent", "sent"), ("delivered", "delivered"), ("failed", "failed"), ("expired", "expired"),
    ("pending", "pending"), ("delivery_rate", "delivery rate"), ("points_spent", "points"),
    ("points_per_delivered", "points / delivered"), ("p50_seconds_to_deliver", "p50 s"),
    ("p95_seconds_to_deliver", "p95 s"), ("replies", "replies"), ("opt_outs", "opt-outs"),
)


def build_report(warehouse: Warehouse, out_dir: Path | None = None) -> Report:
    """Write ``index.html`` and per-campaign charts from the views (apply them first)."""
    out = Path(out_dir or default_report_dir())
    out.mkdir(parents=True, exist_ok=True)
    summary = warehouse.query_arrow("SELECT * FROM every8d_campaign_summary ORDER BY campaign_id").to_pylist()
    daily = warehouse.query_arrow(
        "SELECT * FROM every8d_campaign_daily ORDER BY campaign_id, send_date"
    ).to_pylist()
    reasons = warehouse.query_arrow(
        "SELECT * FROM every8d_failure_reasons ORDER BY campaign_id, messages DESC, status"
    ).to_pylist()
    charts = 0
    sections = []
    for campaign in summary:
        cid = campaign["campaign_id"]
        slug = _slug(cid)
        name = html.escape(cid if cid is not None else "(no campaign)")
        days = [r for r in daily if r["campaign_id"] == cid]
        failures = [r for r in reasons if r["campaign_id"] == cid]
        _write_atomic(out / f"{slug}-daily.png", _chart_png("daily", days, f"{cid}: messages per send day"))
        images = [f'<img src="{slug}-daily.png" alt="messages per day for {name}">']
        charts += 1
        if failures:
            _write_atomic(out / f"{slug}-failures.png", _chart_png("failures", failures, f"{cid}: failure reasons"))
            images.append(f'<img src="{slug}-failures.png" alt="failure reasons for {name}">')
            charts += 1
        cells = "".join(
            f"<td>{_number(campaign[key], 3 if key == 'delivery_rate' else 1)}</td>" for key, _ in SUMMARY_COLUMNS
        )
        sections.append(f'<section id="{slug}"><h2>{name}</h2><table><tr><th>campaign</th>'
                        + "".join(f"<th>{label}</th>" for _, label in SUMMARY_COLUMNS)
                        + f"</tr><tr><td>{name}</td>{cells}</tr></table>{''.join(images)}</section>")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>EVERY8D delivery report</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}</style></head><body><h1>EVERY8D delivery report</h1>"
        f"<p>{len(summary)} campaign(s). Times in UTC; rates over all messages sent.</p>"
        + "".join(sections) + "</body></html>"
    )
    index = out / "index.html"
    _write_atomic(index, page.encode("utf-8"))
    return Report(index=index, campaigns=len(summary), charts=charts)
