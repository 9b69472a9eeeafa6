"""Shared test setup: a throw-away AIRFLOW_HOME, the sandbox gateway, Postgres.

Airflow reads its configuration when first imported, so the environment is
set here, at import time, before any test module imports airflow.  The
services come from ``provisioning``: used where they answer, provisioned where
they can be, else the fixture fails with one sentence naming what is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import provisioning
import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="every8d-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
os.environ["AIRFLOW__CORE__PARALLELISM"] = "2"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

pytest_plugins = ["every8d.sandbox.pytest_plugin"]

# Property tests check behaviour, not speed: on a loaded 2-core CI machine a
# single example can take longer than Hypothesis's default 200 ms deadline.
settings.register_profile("every8d", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("every8d")


#: The longest test files (a few minutes between them), started first: `make test` runs the suite on
#: two workers one file at a time (pytest-xdist, ``--dist loadfile``), and a long file started last
#: would leave the other worker idle for its whole length.
LONGEST_FIRST = (
    "topology/test_celery_topology.py",
    "campaign/test_campaign_fencing.py",
    "ui/test_connection_form.py",
    "test_analysts.py",
    "test_bench_smoke.py",
    "dags/test_send_campaign_dag.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(REPO / "tests").as_posix()
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """A migrated Airflow metadata DB (SQLite) in a temporary AIRFLOW_HOME."""
    marker = _AIRFLOW_HOME / ".migrated"
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        marker.touch()
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin DSN of a PostgreSQL server: the configured one when it answers, else an embedded one."""
    dsn = provisioning.configured_postgres_dsn()
    if provisioning.postgres_answers(dsn):
        yield dsn
        return
    try:
        server = provisioning.start_embedded_postgres()
    except provisioning.MissingService as missing:
        pytest.fail(str(missing), pytrace=False)
    print(
        f"\nno PostgreSQL at {provisioning.describe(dsn)}: using an embedded server at "
        f"{provisioning.describe(server.dsn)}",
        file=sys.stderr,
    )
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server() -> tuple[str, int]:
    """The MariaDB server (127.0.0.1:3306) for warehouse tests; a clear failure when none answers."""
    try:
        return provisioning.ensure_mariadb()
    except provisioning.MissingService as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> str:
    """A fresh PostgreSQL database for this test session; its URI (dropped afterwards)."""
    import psycopg2

    name = f"every8d_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(postgres_server)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_server.rpartition("/")
    yield f"{base}/{name}"
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture(scope="session")
def demo_campaign(airflow_home: Path, tmp_path_factory):
    """A demo-like campaign sent and tracked by the real DAGs, an analyst's session open all along.

    The analyst opens the analysts' DuckDB file after a first (empty) status pass and keeps
    it open while the campaign is sent and its statuses are synced; a DAG failing would
    fail this fixture.  Yields the run and the sandbox's own record of its batches.
    """
    import demo_run

    from every8d.sandbox.server import SandboxServer

    root = tmp_path_factory.mktemp("demo")
    with SandboxServer(frozen_clock=True, prefix="/demo") as server:
        sandbox = server.client()
        run = demo_run.demo_env(root, airflow_home, sandbox.connection_json())
        demo_run.run_dag(run, "every8d_delivery_status")  # nothing to poll yet; writes the analysts' file
        analyst = demo_run.AnalystSession(run.analyst_db)
        try:
            audience = demo_run.small_audience(root / "audience.csv")
            demo_run.run_dag(run, "every8d_send_campaign", {"dry_run": False, "audience": str(audience)})
            run.batch_ids = [b["batch_id"] for b in sandbox.batches()]
            first = sandbox.messages(run.batch_ids[0])
            sandbox.add_reply(run.batch_ids[0], first[0]["mobile"], "謝謝，收到")
            sandbox.add_reply(run.batch_ids[0], first[1]["mobile"], "STOP")
            sandbox.advance(2 * 3600)  # two hours later on the gateway's clock: statuses are final
            demo_run.run_dag(run, "every8d_delivery_status")
            record = {batch_id: sandbox.messages(batch_id) for batch_id in run.batch_ids}
            account = sandbox.account()
            run.campaign_id, run.run_id = demo_run.last_campaign(run)
            run.analyst_alive_throughout = analyst.alive()
            run.analyst_first_count = analyst.first[0]
            run.analyst_old_session_count = int(analyst.query("SELECT count(*) FROM every8d_messages")[0])
        finally:
            analyst.close()
    return run, record, account
