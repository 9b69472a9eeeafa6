"""The analysts' DuckDB file: the same tables and views, in a file the pipeline never locks.

DuckDB allows one writing process per file and no writer while another
process has it open, even read-only: an analyst's notebook left open on the
warehouse file would make every status sync and campaign wait and fail.  So
analysts get a file of their own, ``every8d.analyst.duckdb`` beside the
warehouse (or ``[every8d] analyst_db``): the big per-message tables are views
over the Parquet output (always as fresh as the last export), the small
tables are copied in, and the analytics views are created on top.  The
pipeline rebuilds it under a temporary name and renames it into place, so a
session holding the old file keeps reading its snapshot (reconnect to see
the new one) and never blocks the rename.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from every8d import settings
from every8d.atomic import atomic_path
from every8d.tracking.views import view_files
from every8d.warehouse.base import Warehouse

log = logging.getLogger(__name__)

DISABLED = ("none", "off", "false", "0")
#: Tables partitioned in the Parquet output: views over the files instead of copies.
PARQUET_TABLES = ("every8d_messages", "every8d_status_history", "every8d_batches")
#: Copied whole at each refresh (small, or not in the Parquet output); missing ones are skipped.
COPIED_TABLES = (
    "every8d_status_codes",
    "every8d_replies",
    "every8d_suppressions",
    "every8d_campaigns",
    "every8d_send_chunks",
    "every8d_send_rejects",
    "every8d_send_ledger",
    "every8d_push_events",
)
#: Columns analysts never need in their copy (the MMS image bytes).
LEFT_OUT = {"every8d_campaigns": ("image",)}


@dataclass(frozen=True)
class AnalystDb:
    path: Path
    parquet_views: tuple[str, ...]
    copied: tuple[str, ...]
    views: tuple[str, ...]


def analyst_db_path(warehouse_target: str | None) -> Path | None:
    """``[every8d] analyst_db``, else ``<warehouse>.analyst.duckdb`` beside a DuckDB warehouse file, else
    None."""
    configured = settings.get("analyst_db")
    if configured.lower() in DISABLED:
        return None
    if configured:
        return Path(configured)
    from every8d.warehouse import DUCKDB_SCHEME, default_warehouse_target

    target = (warehouse_target or default_warehouse_target()).strip()
    if not target.startswith(DUCKDB_SCHEME) or ":memory:" in target:
        return None  # a server warehouse (Postgres, ...) serves analysts itself
    warehouse_file = Path("/" + target[len(DUCKDB_SCHEME) :].lstrip("/"))
    return warehouse_file.with_name(f"{warehouse_file.stem}.analyst.duckdb")


def _parquet_glob(root: Any, table: str) -> str | None:
    """The local Parquet files of ``table`` as a glob, or None when there are none (or the root is remote)."""
    if root is None:
        return None
    folder = Path(str(root)) / table
    if not folder.is_dir() or next(folder.rglob("*.parquet"), None) is None:
        return None
    return str(folder / "**" / "*.parquet")


def _copy_table(connection: Any, warehouse: Warehouse, table: str) -> bool:
    """Copy ``table`` from the warehouse into ``connection`` as Arrow; False when the warehouse lacks it."""
    columns = [c for c in warehouse.table_columns(table) if c not in LEFT_OUT.get(table, ())]
    if not columns:
        return False
    batches = warehouse.query_batches(f"SELECT {', '.join(columns)} FROM {table}")
    first = next(batches)
    reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
    connection.register("every8d_source", reader)
    connection.execute(f"CREATE TABLE {table} AS SELECT * FROM every8d_source")
    connection.unregister("every8d_source")
    return True


def refresh_analyst_db(warehouse: Warehouse, path: Path, parquet_root: Any = None) -> AnalystDb:
    """Rebuild the analysts' file from the warehouse (and Parquet), then rename it into place."""
    import duckdb

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parquet_views, copied, views = [], [], []
    with atomic_path(path) as temporary, duckdb.connect(str(temporary)) as connection:
        for table in PARQUET_TABLES:
            files = _parquet_glob(parquet_root, table)
            if files is not None:
                escaped = files.replace("'", "''")
                connection.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{escaped}', "
                    "hive_partitioning = true, union_by_name = true)"
                )
                parquet_views.append(table)
            elif _copy_table(connection, warehouse, table):
                copied.append(table)
        for table in COPIED_TABLES:
            if _copy_table(connection, warehouse, table):
                copied.append(table)
        if "every8d_messages" in parquet_views + copied and "every8d_batches" in parquet_views + copied:
            for sql_file in view_files("duckdb"):
                connection.execute(sql_file.read_text(encoding="utf-8"))
                views.append(sql_file.stem)
        connection.execute("CHECKPOINT")
    log.info(
        "analysts' DuckDB file %s: %d Parquet views, %d tables copied, %d analytics views",
        path,
        len(parquet_views),
        len(copied),
        len(views),
    )
    return AnalystDb(path, tuple(parquet_views), tuple(copied), tuple(views))
