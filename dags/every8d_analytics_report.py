"""Daily EVERY8D delivery report: analytics views refreshed, then HTML with PNG charts per campaign.

Reads the warehouse the status sync writes (param ``warehouse`` or
``EVERY8D_WAREHOUSE``), (re)creates the views from ``include/sql/``
next to this folder (or ``EVERY8D_SQL_DIR``), and writes the report to param
``report_dir`` or ``EVERY8D_REPORT_DIR`` (default ``$AIRFLOW_HOME/every8d/reports``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import Param, dag, task

SQL_DIR = Path(__file__).resolve().parent.parent / "include" / "sql"


@dag(
    dag_id="every8d_analytics_report",
    schedule="0 1 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["every8d"],
    doc_md=__doc__,
    params={
        "warehouse": Param(None, type=["null", "string"], description="warehouse target; default EVERY8D_WAREHOUSE"),
        "report_dir": Param(None, type=["null", "string"], description="output folder; default EVERY8D_REPORT_DIR"),
    },
)
def every8d_analytics_report():
    @task
    def refresh_views(params=None) -> list[str]:
        import os

        from every8d.tracking.tasks import warehouse_from
        from every8d.tracking.views import ENV_SQL_DIR, apply_views

        sql_dir = Path(os.environ[ENV_SQL_DIR]) if os.environ.get(ENV_SQL_DIR) else SQL_DIR
        with warehouse_from(params) as warehouse:
            return apply_views(warehouse, sql_dir)

    @task
    def write_report(views: list[str], params=None) -> dict:
        from every8d.tracking.report import build_report
        from every8d.tracking.tasks import warehouse_from

        out_dir = (params or {}).get("report_dir")
        with warehouse_from(params) as warehouse:
            report = build_report(warehouse, Path(out_dir) if out_dir else None)
        return {"index": str(report.index), "campaigns": report.campaigns, "charts": report.charts}

    write_report(refresh_views())


every8d_analytics_report()
