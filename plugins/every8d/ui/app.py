"""The EVERY8D pages inside the Airflow UI: a Campaign tab on DAG runs and an overview in the nav.

Plugin FastAPI apps are public unless they check Airflow's auth themselves, so
every route here depends on Airflow's own ``requires_access_dag`` (the UI
session's ``_token`` cookie or a bearer token; DAG-level permissions), and an
anonymous request gets 401.  Pages are rendered on the server from the
analytics views (:mod:`every8d.ui.figures`), re-read on each request, and
reload themselves while the campaign is live.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

UI_URL_PREFIX = "/every8d-ui"
REFRESH_SECONDS = 15
ZONES = {"UTC": UTC, "Asia/Taipei": ZoneInfo("Asia/Taipei")}

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans TC",sans-serif;
margin:16px;color:#1a202c}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:20px 0 8px} .muted{color:#718096;font-size:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{border:1px solid #e2e8f0;border-radius:8px;padding:10px} .card b{display:block;font-size:22px}
.card span{color:#4a5568;font-size:12px} table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #e2e8f0;padding:4px 10px;text-align:left} td.n{text-align:right}
.bar{background:#3182ce;height:12px;display:inline-block;border-radius:2px} .bad{background:#c53030}
.live{color:#2f855a;font-weight:600} a{color:#2b6cb0}
"""


def _fmt(value: Any, digits: int = 1, percent: bool = False) -> str:
    if value is None:
        return "–"
    if percent:
        return f"{value * 100:.1f} %"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _time(value: Any, zone: str) -> str:
    if not isinstance(value, datetime):
        return "–"
    return value.astimezone(ZONES[zone]).strftime("%Y-%m-%d %H:%M:%S ") + (
        "UTC" if zone == "UTC" else "Taipei"
    )


def _page(title: str, body: str, refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{meta}"
        f"<title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _bars(rows: list[tuple[str, int]], css: str = "") -> str:
    top = max([n for _, n in rows] + [1])
    return (
        "<table>"
        + "".join(
            f"<tr><td>{html.escape(label)}</td><td class='n'>{n:,}</td>"
            f"<td><span class='bar {css}' style='width:{max(1, round(240 * n / top)) if n else 0}px'>"
            "</span></td></tr>"
            for label, n in rows
        )
        + "</table>"
    )


def _card(key: str, label: str, value: str) -> str:
    return f"<div class='card' data-figure='{key}'><b>{value}</b><span>{html.escape(label)}</span></div>"


def render_campaign(figures: dict[str, Any], rejects_href: str, zone: str) -> str:
    f = figures
    cards = [
        ("recipients", "recipients", _fmt(f["recipients"])),
        ("rejected", "rejected", _fmt(f["rejected"])),
        ("sent", "sent", _fmt(f["sent"])),
        ("delivered", "delivered", _fmt(f["delivered"])),
        ("failed", "failed", _fmt(f["failed"])),
        ("pending", "pending", _fmt(f["pending"])),
        ("expired", "expired", _fmt(f["expired"])),
        ("delivery_rate", "delivery rate", _fmt(f["delivery_rate"], percent=True)),
        ("points_estimated", "points estimated", _fmt(f["points_estimated"])),
        ("points_spent", "points spent", _fmt(f["points_spent"])),
        ("points_per_delivered", "points per delivered", _fmt(f["points_per_delivered"], 2)),
        ("p50_seconds_to_deliver", "median seconds to deliver", _fmt(f["p50_seconds_to_deliver"])),
        ("replies", "replies", _fmt(f["replies"])),
        ("opt_outs", "opt-outs", _fmt(f["opt_outs"])),
    ]
    state = "<span class='live'>live – refreshes every 15 s</span>" if f["live"] else "final"
    rejected = (
        _bars([(r["reason"], r["rows"]) for r in f["rejected_by_reason"]], "bad")
        if f["rejected_by_reason"]
        else "<p class='muted'>none</p>"
    )
    failed = (
        _bars([(f"{r['status']} {r['meaning'] or ''}", r["messages"]) for r in f["failed_by_reason"]], "bad")
        if f["failed_by_reason"]
        else "<p class='muted'>none</p>"
    )
    other_zone = "Asia/Taipei" if zone == "UTC" else "UTC"
    body = (
        f"<h1>Campaign {html.escape(f['campaign_id'])}</h1>"
        f"<p class='muted'>{html.escape(f['kind'] or '')} · {state} · planned {_time(f['planned_at'], zone)}"
        f" · finished {_time(f['finished_at'], zone)} · "
        f"<a href='?tz={other_zone}'>show times in {other_zone}</a>"
        f"</p><div class='cards'>{''.join(_card(*c) for c in cards)}</div>"
        f"<h2>Rejected before sending, by reason</h2>{rejected}"
        f"<p><a id='rejects-link' href='{html.escape(rejects_href)}'>rejected rows (numbers masked)</a></p>"
        f"<h2>Failed and expired, by reason</h2>{failed}"
        f"<h2>Time to deliver</h2>{_bars([(b['bucket'], b['messages']) for b in f['time_to_deliver']])}"
        f"<p class='muted'>p50 {_fmt(f['p50_seconds_to_deliver'])} s · "
        f"p95 {_fmt(f['p95_seconds_to_deliver'])} s."
        " Read from the warehouse's analytics views after each status pass; never from the gateway.</p>"
    )
    return _page(f"Campaign {f['campaign_id']}", body, f["live"])


def render_rejects(campaign_id: str, rows: list[dict[str, Any]]) -> str:
    table = (
        "<table><tr><th>row</th><th>reason</th><th>number</th><th>detail</th></tr>"
        + "".join(
            f"<tr><td class='n'>{r['row_number']}</td><td>{html.escape(r['reason'])}</td>"
            f"<td>{html.escape(r['mobile'] or '')}</td><td>{html.escape(r['detail'] or '')}</td></tr>"
            for r in rows
        )
        + "</table>"
    )
    return _page(
        f"Rejects of {campaign_id}",
        f"<h1>Rejected rows of {html.escape(campaign_id)}</h1>"
        f"<p class='muted'>{len(rows)} row(s); numbers masked.</p>{table}",
        False,
    )


def render_overview(rows: list[dict[str, Any]]) -> str:
    lines = "".join(
        f"<tr><td>{html.escape(str(r['campaign_id']))}</td><td class='n'>{_fmt(r['sent'])}</td>"
        f"<td class='n'>{_fmt(r['delivered'])}</td><td class='n'>{_fmt(r['failed'])}</td>"
        f"<td class='n'>{_fmt(r['pending'])}</td><td class='n'>{_fmt(r['delivery_rate'], percent=True)}</td>"
        f"<td class='n'>{_fmt(r['points_spent'])}</td><td>"
        + (
            f"<a target='_top' href='/dags/{html.escape(r['dag_id'])}/runs/{html.escape(r['run_id'])}'>"
            "run</a>"
            if r.get("dag_id") and r.get("run_id")
            else ""
        )
        + "</td></tr>"
        for r in rows
    )
    body = (
        "<h1>EVERY8D campaigns</h1><table><tr><th>campaign</th><th>sent</th><th>delivered</th><th>failed</th>"
        f"<th>pending</th><th>delivery rate</th><th>points</th><th></th></tr>{lines}</table>"
    )
    return _page("EVERY8D campaigns", body, False)


def create_ui_app():
    """The FastAPI app mounted at ``/every8d-ui``; every route behind Airflow's auth."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse

    from every8d.ui import figures as fig

    app = FastAPI(title="EVERY8D campaigns", docs_url=None, redoc_url=None, openapi_url=None)
    run_access = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]

    def _campaign(dag_id: str, run_id: str) -> tuple[dict[str, Any], str]:
        try:
            with fig.open_reader(fig.warehouse_target()) as reader:
                ids = fig.campaigns_of_run(reader, dag_id, run_id)
                if not ids:
                    raise HTTPException(
                        404,
                        f"DAG run {run_id} of {dag_id} sent no EVERY8D campaign "
                        "(or the status DAG has not run since)",
                    )
                return fig.campaign_figures(reader, ids[-1]), ids[-1]
        except LookupError as missing:
            raise HTTPException(404, str(missing)) from None

    @app.get("/campaign/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=run_access)
    def campaign_page(dag_id: str, run_id: str, tz: str = "UTC") -> HTMLResponse:
        zone = tz if tz in ZONES else "UTC"
        try:
            figures, _ = _campaign(dag_id, run_id)
        except HTTPException as error:
            return HTMLResponse(
                _page("No campaign", f"<h1>No campaign</h1><p>{html.escape(error.detail)}</p>", False),
                status_code=error.status_code,
            )
        from urllib.parse import quote

        return HTMLResponse(
            render_campaign(figures, f"../../rejects/{quote(dag_id, safe='')}/{quote(run_id, safe='')}", zone)
        )

    @app.get("/rejects/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=run_access)
    def rejects_page(dag_id: str, run_id: str) -> HTMLResponse:
        _, campaign_id = _campaign(dag_id, run_id)
        with fig.open_reader(fig.warehouse_target()) as reader:
            return HTMLResponse(render_rejects(campaign_id, fig.campaign_rejects(reader, campaign_id)))

    @app.get("/api/campaign/{dag_id}/{run_id}", dependencies=run_access)
    def campaign_json(dag_id: str, run_id: str) -> JSONResponse:
        from fastapi.encoders import jsonable_encoder

        figures, _ = _campaign(dag_id, run_id)
        return JSONResponse(jsonable_encoder(figures))

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(requires_access_dag("GET"))])
    def overview() -> HTMLResponse:
        try:
            with fig.open_reader(fig.warehouse_target()) as reader:
                return HTMLResponse(render_overview(fig.all_campaigns(reader)))
        except LookupError as missing:
            return HTMLResponse(
                _page("EVERY8D", f"<h1>EVERY8D campaigns</h1><p>{html.escape(str(missing))}</p>", False)
            )

    return app
