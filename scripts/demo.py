"""``make demo``: the real DAGs, end to end, against a local sandbox gateway.

1. starts the sandbox gateway (a subprocess on a free loopback port);
2. runs ``every8d_send_campaign`` with ``airflow dags test`` on an embedded
   SQLite metadata DB: the sample audience in include/ (about 3,000 members,
   some invalid numbers and duplicates) gets a personalized SMS;
3. moves the sandbox's clock two hours forward, so statuses become final;
4. runs ``every8d_delivery_status`` (status pages → DuckDB + Parquet);
5. runs ``every8d_analytics_report`` (HTML report with charts);
6. prints where everything is and a summary table, then stops the sandbox.

Everything lands in ``.demo/`` (removed and recreated on each run); nothing
is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"


def run_dag(dag_id: str, env: dict[str, str], conf: dict | None = None) -> None:
    """``airflow dags test`` one DAG; stop the demo with its log tail if it fails."""
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if conf is not None:
        command += ["-c", json.dumps(conf)]
    started = time.monotonic()
    log_path = DEMO / f"{dag_id}.log"
    with open(log_path, "w") as log:
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        print(log_path.read_text()[-4000:])
        raise SystemExit(f"{dag_id} failed (log: {log_path})")
    print(f"  {dag_id:<28} ok in {seconds:5.1f} s   (log: {log_path.relative_to(REPO)})")


def demo_environment(root: Path, airflow_home: Path, connection_json: str | None = None) -> dict[str, str]:
    """The environment the demo's DAGs run in (``make demo``, and tests/demo_run.py for the tests).

    Airflow's home is ``airflow_home`` (not migrated here); the provider's files go under
    ``root`` through the ``[every8d]`` options: ``every8d.duckdb`` (the analysts'
    ``every8d.analyst.duckdb`` beside it), ``parquet/``, ``report/`` and ``staging/``.
    ``connection_json`` is the ``every8d_default`` connection (the sandbox's), when known.
    """
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__EVERY8D__WAREHOUSE": f"duckdb:///{root / 'every8d.duckdb'}",
        "AIRFLOW__EVERY8D__PARQUET_ROOT": str(root / "parquet"),
        "AIRFLOW__EVERY8D__REPORT_DIR": str(root / "report"),
        "AIRFLOW__EVERY8D__STAGING_ROOT": str(root / "staging"),
    }
    if connection_json is not None:
        env["AIRFLOW_CONN_EVERY8D_DEFAULT"] = connection_json
    return env


def summary(warehouse: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            """
            SELECT count(*) AS sent,
                   count(*) FILTER (WHERE status_group = 'delivered') AS delivered,
                   count(*) FILTER (WHERE status_group IN ('failed', 'expired')) AS failed,
                   count(*) FILTER (WHERE status_group IN ('pending', 'scheduled')) AS pending,
                   coalesce(sum(points), 0) AS points
            FROM every8d_messages
            """
        ).fetchall()


def main() -> None:
    from every8d.sandbox.server import SandboxServer

    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    airflow_home = DEMO / "airflow"
    warehouse = DEMO / "every8d.duckdb"
    parquet = DEMO / "parquet"
    report = DEMO / "report"
    env = demo_environment(DEMO, airflow_home)
    print("Preparing an embedded Airflow metadata DB (SQLite) ...")
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )

    with SandboxServer(frozen_clock=True, prefix="/demo") as server:
        sandbox = server.client()
        env["AIRFLOW_CONN_EVERY8D_DEFAULT"] = sandbox.connection_json()
        print(f"Sandbox EVERY8D gateway at {server.base_url} (account demo, 100000 points)")
        print("Running the DAGs:")
        run_dag("every8d_send_campaign", env, {"dry_run": False})
        sandbox.advance(2 * 3600)  # two hours later on the gateway's clock: statuses are final
        run_dag("every8d_delivery_status", env)
        run_dag("every8d_analytics_report", env)
        credit = sandbox.account()["credit"]
    print("Sandbox stopped.\n")

    sent, delivered, failed, pending, points = summary(warehouse)[0]
    print(f"{'sent':>8} {'delivered':>10} {'failed':>8} {'pending':>8} {'points':>8}")
    print(f"{sent:>8} {delivered:>10} {failed:>8} {pending:>8} {points:>8}")
    print(f"credit left on the sandbox account: {credit}\n")
    reports = sorted(report.rglob("index.html")) or sorted(report.rglob("*.html"))
    analyst = DEMO / "every8d.analyst.duckdb"
    every8d = (
        Path(sys.executable).with_name("every8d").relative_to(REPO)
        if Path(sys.executable).is_relative_to(REPO)
        else "every8d"
    )
    print("Where things are:")
    print(f"  DuckDB warehouse   {warehouse.relative_to(REPO)}   (the pipeline's file)")
    print(f"  analysts' DuckDB   {analyst.relative_to(REPO)}   (yours: never blocks the pipeline)")
    print(f"  Parquet            {parquet.relative_to(REPO)}/")
    print(f"  HTML report        {reports[0].relative_to(REPO) if reports else report.relative_to(REPO)}")
    print("  rejected rows      table every8d_send_rejects (in both DuckDB files)")
    print("Try:")
    print(f"  {every8d} query --db {analyst.relative_to(REPO)} 'select * from every8d_campaign_summary'")
    print(
        f"  {every8d} query --db {analyst.relative_to(REPO)} "
        "'select reason, count(*) from every8d_send_rejects group by reason'"
    )


if __name__ == "__main__":
    main()
