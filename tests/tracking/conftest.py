"""Warehouses for the tracking tests: a DuckDB file, a real Postgres database and a real MariaDB database.

MariaDB comes from ``tests/warehouse_fixtures.py`` (skipped, with one sentence, when no server answers).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from warehouse_fixtures import WAREHOUSE_KINDS, mariadb_database, mariadb_target_for  # noqa: F401

from every8d.tracking.views import drop_views
from every8d.warehouse import open_warehouse
from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import TRACKING_TABLES

PG_CONN_ID = "every8d_test_warehouse"


def _drop_everything(warehouse: Warehouse) -> None:
    drop_views(warehouse)  # dependants first: the daily and summary views read every8d_campaign_measures
    for spec in TRACKING_TABLES:
        warehouse.execute(f"DROP TABLE IF EXISTS {spec.name}")


@pytest.fixture
def duckdb_target(tmp_path) -> str:
    return f"duckdb://{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture
def postgres_target(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``airflow://...`` of a Postgres connection to the session's test database, emptied of our tables."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{PG_CONN_ID.upper()}", postgres_database)
    target = f"airflow://{PG_CONN_ID}"
    warehouse = open_warehouse(target)
    _drop_everything(warehouse)
    return target


@pytest.fixture
def mariadb_target(mariadb_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``airflow://...`` of a MariaDB connection to the session's test database, emptied of our tables."""
    target = mariadb_target_for(mariadb_database, monkeypatch, [])
    with open_warehouse(target) as warehouse:
        _drop_everything(warehouse)
    return target


@pytest.fixture(params=WAREHOUSE_KINDS)
def warehouse_target(request: pytest.FixtureRequest) -> str:
    """The target of each warehouse kind in turn."""
    return request.getfixturevalue(f"{request.param}_target")


@pytest.fixture
def warehouse(warehouse_target: str) -> Iterator[Warehouse]:
    wh = open_warehouse(warehouse_target)
    yield wh
    wh.close()
