"""The delivery report: one self-contained HTML file per campaign and an overview across campaigns.

Read from the analytics views.  Every file stands alone (charts are embedded
PNGs), so it can be mailed, served from a bucket or opened from disk, and each
is written to a temporary name and renamed, so a reader never sees half a
report.  Times appear in both UTC and Asia/Taipei; a switch at the top of each
page picks one (the ``timezone`` argument is the default).  Charts need the
``report`` extra (matplotlib).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import textwrap
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from every8d import atomic, settings
from every8d.paths import default_path
from every8d.warehouse.base import Warehouse

ZONES = ("UTC", "Asia/Taipei")
GREEN, RED, GREY, BLUE = "#2f855a", "#c53030", "#a0aec0", "#2b6cb0"


def default_report_dir() -> Path:
    """``[every8d] report_dir``, else ``$AIRFLOW_HOME/every8d/reports``."""
    configured = settings.get("report_dir")
    if configured:
        return Path(configured)
    return default_path("reports")


def _slug(campaign: str | None) -> str:
    """A file-name-safe, unique name for a campaign id."""
    text = campaign if campaign is not None else "(none)"
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "campaign"
    return f"{readable}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


@dataclass(frozen=True)
class Report:
    index: Path
    campaigns: int
    charts: int
    pages: tuple[Path, ...] = ()


# -- charts ------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "the report's charts need matplotlib: pip install 'airflow-provider-every8d[report]'"
        ) from error
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _wrap(label: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def _bars_chart(labels: list[str], values: list[float], title: str, xlabel: str, color: str) -> str:
    figure = _figure(7.5, max(1.6, 0.45 * len(labels) + 1.0))
    axes = figure.add_subplot()
    positions = list(range(len(labels)))
    axes.barh(positions, values, color=color)
    axes.set_yticks(positions, [_wrap(label) for label in labels], fontsize=8)
    axes.invert_yaxis()
    for position, value in zip(positions, values, strict=True):
        axes.text(value, position, f" {value:,.0f}", va="center", fontsize=8)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_title(title, fontsize=10, loc="left")
    axes.margins(x=0.15)
    return _png(figure)


def _delivery_curve(seconds: list[float], sent: int, title: str) -> str:
    """Share of sent messages delivered within t, t on a log scale."""
    figure = _figure(7.5, 3.0)
    axes = figure.add_subplot()
    ordered = sorted(max(s, 0.5) for s in seconds)
    shares = [(i + 1) / max(sent, 1) * 100 for i in range(len(ordered))]
    axes.step(ordered, shares, where="post", color=BLUE)
    axes.set_xscale("log")
    ticks = [t for t in (1, 10, 30, 60, 300, 900, 3600, 14400, 86400) if not ordered or t <= ordered[-1] * 2]
    axes.set_xticks(ticks, [_duration(t) for t in ticks], fontsize=8)
    axes.set_ylim(0, 100)
    axes.set_ylabel("% of sent delivered", fontsize=9)
    axes.set_xlabel("time after sending", fontsize=9)
    axes.set_title(title, fontsize=10, loc="left")
    axes.grid(alpha=0.3)
    return _png(figure)


def _short(campaign: str | None, width: int = 22) -> str:
    text = campaign or "(none)"
    return text if len(text) <= width else text[: width - 1] + "…"


def _over_time(rows: list[dict], title: str) -> str:
    """Delivery rate and points per delivered per campaign, in send order (one tick per campaign)."""
    figure = _figure(7.5, 3.4)
    rate_axes = figure.add_subplot()
    positions = list(range(len(rows)))
    labels = [f"{r['first_send_date']}\n{_short(r['campaign_id'])}" for r in rows]
    rate_axes.plot(
        positions, [(r["delivery_rate"] or 0) * 100 for r in rows], "o-", color=GREEN, label="delivery rate %"
    )
    rate_axes.set_ylabel("delivery rate %", fontsize=9, color=GREEN)
    rate_axes.set_ylim(0, 105)
    rate_axes.set_xlim(-0.5, len(rows) - 0.5)
    cost_axes = rate_axes.twinx()
    cost_axes.plot(
        positions,
        [float(r["points_per_delivered"] or 0) for r in rows],
        "s--",
        color=RED,
        label="points per delivered",
    )
    cost_axes.set_ylabel("points per delivered", fontsize=9, color=RED)
    cost_axes.set_ylim(0, max([float(r["points_per_delivered"] or 0) for r in rows] + [1]) * 1.3)
    step = max(1, len(rows) // 12)  # at most about twelve readable labels
    rate_axes.set_xticks(positions[::step], labels[::step], fontsize=7)
    figure.legend(loc="lower left", fontsize=8)
    rate_axes.set_title(title, fontsize=10, loc="left")
    return _png(figure)


# -- HTML --------------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _fmt(value: Any, digits: int = 1, percent: bool = False) -> str:
    if value is None:
        return "–"
    if percent:
        return f"{float(value) * 100:.1f} %"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (float,)) or type(value).__name__ == "Decimal":
        return f"{float(value):,.{digits}f}"
    return html.escape(str(value))


def _when(value: datetime | date | None) -> str:
    """Both zones in the page; CSS shows the chosen one."""
    if value is None:
        return "–"
    if not isinstance(value, datetime):
        return html.escape(str(value))
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    taipei = moment.astimezone(ZoneInfo("Asia/Taipei")).strftime("%Y-%m-%d %H:%M Taipei")
    return f"<span class='tz-utc'>{utc}</span><span class='tz-taipei'>{taipei}</span>"


def _page(title: str, body: str, zone: str) -> bytes:
    chosen = "taipei" if zone == "Asia/Taipei" else "utc"
    switch = (
        "<label class='switch'>times in <select onchange=\"document.body.dataset.tz=this.value\">"
        + "".join(
            f"<option value='{v}'{' selected' if v == chosen else ''}>{label}</option>"
            for v, label in (("utc", "UTC"), ("taipei", "Asia/Taipei"))
        )
        + "</select></label>"
    )
    style = (
        "body{font-family:system-ui,'Noto Sans TC',sans-serif;margin:24px;max-width:1000px;color:#1a202c}"
        "table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border-bottom:1px solid #e2e8f0;"
        "padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%;display:block;margin:8px 0}.switch{float:right;font-size:13px}"
        "body[data-tz=utc] .tz-taipei,body[data-tz=taipei] .tz-utc{display:none}.muted{color:#718096}"
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body data-tz='{chosen}'>{switch}{body}</body></html>"
    ).encode()


def _image(data: str, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


FIGURES = (
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("failed", "failed"),
    ("expired", "expired"),
    ("pending", "pending"),
    ("delivery_rate", "delivery rate"),
    ("points_spent", "points spent"),
    ("points_per_delivered", "points per delivered"),
    ("p50_seconds_to_deliver", "median time to deliver"),
    ("p95_seconds_to_deliver", "95th percentile"),
    ("replies", "replies"),
    ("opt_outs", "opt-outs"),
)


COUNTS = {"sent", "delivered", "failed", "expired", "pending", "cancelled", "replies", "opt_outs"}


def _cell(key: str, value: Any) -> str:
    if key in COUNTS and value is not None:
        return f"{int(value):,}"
    if key == "delivery_rate":
        return _fmt(value, percent=True)
    if key.endswith("seconds_to_deliver"):
        return _duration(value)
    return _fmt(value, 2 if key == "points_per_delivered" else 1)


def _campaign_page(
    campaign: dict, plan: dict, failures: list[dict], seconds: list[float], zone: str, rejects: list[dict]
) -> tuple[bytes, int]:
    cid = campaign["campaign_id"] if campaign["campaign_id"] is not None else "(no campaign)"
    rows = "".join(
        f"<tr><td>{label}</td><td>{_cell(key, campaign.get(key))}</td></tr>" for key, label in FIGURES
    )
    estimated = plan.get("points")
    before = (
        f"<tr><td>audience rows</td><td>{_fmt(plan.get('audience_rows'))}</td></tr>"
        f"<tr><td>recipients</td><td>{_fmt(plan.get('recipients'))}</td></tr>"
        + "".join(
            f"<tr><td>rejected: {html.escape(r['reason'])}</td><td>{int(r['rows']):,}</td></tr>"
            for r in rejects
        )
    )
    cost = (
        f"<tr><td>points estimated before sending</td><td>{_fmt(estimated)}</td></tr>"
        f"<tr><td>points spent (gateway)</td><td>{_fmt(campaign.get('points_spent'))}</td></tr>"
    )
    charts = [
        _image(
            _delivery_curve(
                seconds, int(campaign["sent"] or 0), "Share of sent messages delivered over time"
            ),
            "time to deliver",
        )
    ]
    if failures:
        labels = [f"{f['status']} {f['meaning_en'] or ''}".strip() for f in failures]
        charts.append(
            _image(
                _bars_chart(
                    labels, [f["messages"] for f in failures], "Why messages did not arrive", "messages", RED
                ),
                "failure reasons",
            )
        )
    body = (
        f"<h1>Campaign {html.escape(cid)}</h1><p class='muted'>sent {_when(campaign.get('first_send_date'))}"
        f" · planned {_when(plan.get('planned_at'))} · finished {_when(plan.get('finished_at'))}</p>"
        f"<h2>Before sending</h2><table>{before}</table><h2>Delivery</h2>"
        f"<table>{rows}</table><h2>Cost</h2><table>{cost}</table>{''.join(charts)}"
        "<p class='muted'><a href='index.html'>all campaigns</a></p>"
    )
    return _page(f"EVERY8D campaign {cid}", body, zone), len(charts)


def _plans(warehouse: Warehouse) -> dict[str, dict]:
    if not warehouse.table_columns("every8d_campaigns"):
        return {}
    rows = warehouse.query_arrow(
        "SELECT campaign_id, audience_rows, recipients, points, planned_at, finished_at "
        "FROM every8d_campaigns"
    )
    return {r["campaign_id"]: r for r in rows.to_pylist()}


def _rejects(warehouse: Warehouse) -> dict[str, list[dict]]:
    if not warehouse.table_columns("every8d_send_rejects"):
        return {}
    found: dict[str, list[dict]] = {}
    for r in warehouse.query_arrow(
        "SELECT campaign_id, reason, count(*) AS rows FROM every8d_send_rejects "
        "GROUP BY campaign_id, reason ORDER BY campaign_id, rows DESC"
    ).to_pylist():
        found.setdefault(r["campaign_id"], []).append(r)
    return found


def build_report(warehouse: Warehouse, out_dir: Path | None = None, *, timezone: str = "UTC") -> Report:
    """Write ``index.html`` and one ``<campaign>.html`` per campaign from the views (apply them first)."""
    if timezone not in ZONES:
        raise ValueError(f"timezone must be one of {', '.join(ZONES)}, not {timezone!r}")
    out = Path(out_dir or default_report_dir())
    out.mkdir(parents=True, exist_ok=True)
    summary = warehouse.query_arrow(
        "SELECT * FROM every8d_campaign_summary ORDER BY first_send_date, campaign_id"
    ).to_pylist()
    reasons = warehouse.query_arrow(
        "SELECT campaign_id, status, meaning_en, sum(messages) AS messages FROM every8d_failure_reasons "
        "GROUP BY campaign_id, status, meaning_en ORDER BY campaign_id, messages DESC, status"
    ).to_pylist()
    times: dict[Any, list[float]] = {}
    for batch in warehouse.query_batches(
        "SELECT campaign_id, seconds_to_deliver FROM every8d_delivery_times"
    ):
        for cid, seconds in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            times.setdefault(cid, []).append(seconds)
    plans, rejects = _plans(warehouse), _rejects(warehouse)
    charts, pages, lines = 0, [], []
    for campaign in summary:
        cid = campaign["campaign_id"]
        page, count = _campaign_page(
            campaign,
            plans.get(cid, {}),
            [r for r in reasons if r["campaign_id"] == cid],
            times.get(cid, []),
            timezone,
            rejects.get(cid, []),
        )
        path = out / f"{_slug(cid)}.html"
        atomic.write_bytes(path, page)
        pages.append(path)
        charts += count
        lines.append(
            f"<tr><td><a href='{path.name}'>{html.escape(cid or '(no campaign)')}</a></td>"
            f"<td>{_when(campaign['first_send_date'])}</td>"
            + "".join(
                f"<td>{_cell(k, campaign.get(k))}</td>"
                for k in ("sent", "delivered", "delivery_rate", "points_spent", "points_per_delivered")
            )
            + "</tr>"
        )
    worst: dict[str, int] = {}
    for r in reasons:
        label = f"{r['status']} {r['meaning_en'] or ''}".strip()
        worst[label] = worst.get(label, 0) + int(r["messages"])
    overview = []
    if summary:
        overview.append(
            _image(
                _over_time(summary, "Delivery rate and points per delivered, by campaign send date"),
                "delivery rate and cost over time",
            )
        )
        charts += 1
    if worst:
        top = sorted(worst.items(), key=lambda item: -item[1])[:8]
        overview.append(
            _image(
                _bars_chart(
                    [k for k, _ in top],
                    [v for _, v in top],
                    "Worst failure reasons, all campaigns",
                    "messages",
                    RED,
                ),
                "worst failures",
            )
        )
        charts += 1
    body = (
        "<h1>EVERY8D delivery report</h1>"
        f"<p class='muted'>{len(summary)} campaign(s); rates over all messages sent.</p>"
        "<table><tr><th>campaign</th><th>sent on</th><th>sent</th><th>delivered</th><th>delivery rate</th>"
        f"<th>points</th><th>points per delivered</th></tr>{''.join(lines)}</table>{''.join(overview)}"
    )
    index = out / "index.html"
    atomic.write_bytes(index, _page("EVERY8D delivery report", body, timezone))
    return Report(index=index, campaigns=len(summary), charts=charts, pages=tuple(pages))
