"""Where the provider keeps its tables: a DuckDB file by default, or any common-sql connection.

``open_warehouse(target)`` picks the implementation from a URL-like target:

- ``None``: env ``EVERY8D_WAREHOUSE``, else the DuckDB file
  ``$AIRFLOW_HOME/every8d/every8d.duckdb``;
- ``duckdb:///abs/path.duckdb`` or ``duckdb:///:memory:``;
- ``airflow://<conn_id>``: the connection's common-sql hook (Postgres and MySQL/MariaDB tested;
  the engine's SQL spellings are in :mod:`every8d.warehouse.dialects`).

``EVERY8D_DUCKDB_MEMORY_LIMIT`` caps DuckDB's memory per connection: ``512MB`` unless set
(DuckDB's own default, 80% of the machine, is too much for a process among Airflow's
workers; beyond the cap DuckDB spills to disk).
Implementations load lazily, so importing this package stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from every8d.warehouse.base import Warehouse

__all__ = ["ENV_WAREHOUSE", "Warehouse", "default_warehouse_target", "open_warehouse"]

ENV_WAREHOUSE = "EVERY8D_WAREHOUSE"
ENV_DUCKDB_MEMORY_LIMIT = "EVERY8D_DUCKDB_MEMORY_LIMIT"
DEFAULT_DUCKDB_MEMORY_LIMIT = "512MB"
DUCKDB_SCHEME = "duckdb://"
AIRFLOW_SCHEME = "airflow://"


def default_warehouse_target() -> str:
    """``EVERY8D_WAREHOUSE`` if set, else the DuckDB file under ``$AIRFLOW_HOME/every8d/``."""
    configured = os.environ.get(ENV_WAREHOUSE, "").strip()
    if configured:
        return configured
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return f"{DUCKDB_SCHEME}{(home / 'every8d' / 'every8d.duckdb').resolve()}"


def open_warehouse(target: str | None = None) -> Warehouse:
    """The warehouse named by ``target`` (see the module docstring for the accepted forms)."""
    target = (target or default_warehouse_target()).strip()
    if target.startswith(DUCKDB_SCHEME):
        from every8d.warehouse.duckdb_file import DuckDbWarehouse

        path = target[len(DUCKDB_SCHEME):]
        memory_limit = os.environ.get(ENV_DUCKDB_MEMORY_LIMIT, "").strip() or DEFAULT_DUCKDB_MEMORY_LIMIT
        if path.startswith("/:memory:") or path == ":memory:":
            return DuckDbWarehouse(":memory:", memory_limit=memory_limit)
        if not path.startswith("/"):
            raise ValueError("a DuckDB target needs an absolute path: duckdb:///abs/path.duckdb")
        return DuckDbWarehouse(path, memory_limit=memory_limit)
    if target.startswith(AIRFLOW_SCHEME):
        from every8d.warehouse.dbapi import DbApiWarehouse

        conn_id = target[len(AIRFLOW_SCHEME):].strip("/")
        if not conn_id:
            raise ValueError("an Airflow target names a connection: airflow://<conn_id>")
        return DbApiWarehouse(conn_id)
    raise ValueError(
        "unknown warehouse target; use duckdb:///abs/path.duckdb, duckdb:///:memory: or airflow://<conn_id>"
    )


def __getattr__(name: str):
    if name == "Warehouse":
        from every8d.warehouse.base import Warehouse

        return Warehouse
    raise AttributeError(name)
