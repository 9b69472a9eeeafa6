"""The MariaDB warehouse the tracking, push and ledger tests share, beside DuckDB and Postgres.

MariaDB is the running server at 127.0.0.1:3306 (root, no password): no pip package
embeds one.  When none answers, the MariaDB legs are skipped with one sentence.
Import the fixtures into a conftest (or a test module) to use them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import provisioning
import pytest

from every8d.warehouse import open_warehouse

WAREHOUSE_KINDS = ["duckdb", "postgres", "mariadb"]
MARIADB_CONN_ID = "every8d_test_mariadb"


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[str]:
    """A fresh MariaDB database for this test session; its Airflow connection URI (dropped afterwards)."""
    try:
        host, port = provisioning.ensure_mariadb()
    except provisioning.MissingService as missing:
        pytest.skip(str(missing))
    try:
        import MySQLdb
    except ImportError:
        pytest.skip(
            "mysqlclient is not installed (it needs libmariadb-dev to build): `pip install -e '.[mysql]'`"
        )

    name = f"every8d_test_{uuid.uuid4().hex[:10]}"
    admin = MySQLdb.connect(host=host, port=port, user="root", password="")
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    yield f"mysql://root@{host}:{port}/{name}?charset=utf8mb4"
    admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def mariadb_target_for(database: str, monkeypatch: pytest.MonkeyPatch, tables: list[str]) -> str:
    """``airflow://...`` of a MariaDB connection to ``database``, with ``tables`` dropped first."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{MARIADB_CONN_ID.upper()}", database)
    target = f"airflow://{MARIADB_CONN_ID}"
    with open_warehouse(target) as warehouse:
        for table in tables:
            warehouse.execute(f"DROP TABLE IF EXISTS {table}")
    return target
