"""Where the provider keeps its tables: a DuckDB file by default, or any common-sql connection.

``open_warehouse(target)`` picks the implementation from a URL-like target:

- ``None``: the ``[every8d] warehouse`` option, else the DuckDB file
  ``$AIRFLOW_HOME/every8d/every8d.duckdb``;
- ``duckdb:///abs/path.duckdb`` or ``duckdb:///:memory:``;
- ``airflow://<conn_id>``: the connection's common-sql hook (Postgres and MySQL/MariaDB tested;
  the engine's SQL spellings are in :mod:`every8d.warehouse.dialects`).

``[every8d] duckdb_memory_limit`` caps DuckDB's memory per connection: ``512MB`` unless set
(DuckDB's own default, 80% of the machine, is too much for a process among Airflow's
workers; beyond the cap DuckDB spills to disk).  ``[every8d] duckdb_threads`` sets its threads
(DuckDB's default: one per core).
Implementations load lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from every8d import settings
from every8d.paths import default_path

if TYPE_CHECKING:
    from every8d.warehouse.base import Warehouse

__all__ = ["ENV_WAREHOUSE", "Warehouse", "default_warehouse_target", "open_warehouse"]

ENV_WAREHOUSE = settings.env_name("warehouse")
DEFAULT_DUCKDB_MEMORY_LIMIT = "512MB"
DUCKDB_SCHEME = "duckdb://"
AIRFLOW_SCHEME = "airflow://"


def default_warehouse_target() -> str:
    """``[every8d] warehouse`` if set, else the DuckDB file under ``$AIRFLOW_HOME/every8d/``."""
    configured = settings.get("warehouse")
    if configured:
        return configured
    return f"{DUCKDB_SCHEME}{default_path('every8d.duckdb').resolve()}"


def open_warehouse(target: str | None = None) -> Warehouse:
    """The warehouse named by ``target`` (see the module docstring for the accepted forms)."""
    target = (target or default_warehouse_target()).strip()
    if target.startswith(DUCKDB_SCHEME):
        from every8d.warehouse.duckdb_file import DuckDbWarehouse

        path = target[len(DUCKDB_SCHEME) :]
        memory_limit = settings.get("duckdb_memory_limit") or DEFAULT_DUCKDB_MEMORY_LIMIT
        threads = int(settings.get("duckdb_threads") or 0) or None
        if path.startswith("/:memory:") or path == ":memory:":
            return DuckDbWarehouse(":memory:", memory_limit=memory_limit, threads=threads)
        if not path.startswith("/"):
            raise ValueError("a DuckDB target needs an absolute path: duckdb:///abs/path.duckdb")
        return DuckDbWarehouse(path, memory_limit=memory_limit, threads=threads)
    if target.startswith(AIRFLOW_SCHEME):
        from every8d.warehouse.dbapi import DbApiWarehouse

        conn_id = target[len(AIRFLOW_SCHEME) :].strip("/")
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
