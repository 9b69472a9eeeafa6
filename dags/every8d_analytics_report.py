"""Daily EVERY8D delivery report: analytics views refreshed, then HTML per campaign and an overview.

Reads the warehouse the status sync writes (param ``warehouse`` or
``[every8d] warehouse``), (re)creates the views from the SQL shipped in the
package (or ``[every8d] sql_dir``), refreshes the analysts' DuckDB file, and
writes the report to param ``report_dir`` or ``[every8d] report_dir`` (default
``$AIRFLOW_HOME/every8d/reports``): ``index.html`` across campaigns and one
self-contained HTML file per campaign, times in ``timezone`` (UTC or Asia/Taipei).
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, task


@dag(
    dag_id="every8d_analytics_report",
    schedule="0 1 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["every8d"],
    doc_md=__doc__,
    params={
        "warehouse": Param(
            None, type=["null", "string"], description="warehouse target; default [every8d] warehouse"
        ),
        "report_dir": Param(
            None, type=["null", "string"], description="output folder; default [every8d] report_dir"
        ),
        "timezone": Param(
            "Asia/Taipei",
            type="string",
            enum=["UTC", "Asia/Taipei"],
            description="the zone the report shows times in",
        ),
    },
)
def every8d_analytics_report():
    @task
    def refresh_views(params=None) -> dict:
        from every8d.pipelines.delivery_status import refresh_for, warehouse_from
        from every8d.tracking.views import apply_views

        with warehouse_from(params) as warehouse:
            views = apply_views(warehouse)
            return {"views": views, **refresh_for(params, warehouse)}

    @task
    def write_report(views: dict, params=None) -> dict:
        from pathlib import Path

        from every8d.pipelines.delivery_status import warehouse_from
        from every8d.tracking.report import build_report

        out_dir = (params or {}).get("report_dir")
        with warehouse_from(params) as warehouse:
            report = build_report(
                warehouse,
                Path(out_dir) if out_dir else None,
                timezone=(params or {}).get("timezone") or "UTC",
            )
        return {"index": str(report.index), "campaigns": report.campaigns, "charts": report.charts}

    # an XComArg: the decorators' types cannot say it resolves to the upstream's dict
    write_report(refresh_views())  # type: ignore[arg-type]


every8d_analytics_report()
