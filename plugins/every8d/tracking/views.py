"""The analytics views: SQL files per dialect, applied to a warehouse.

The SQL ships inside the package, in ``every8d/tracking/sql/*.sql`` (one view
per file, applied in file-name order), so a wheel install has it and analysts
can read it without Python; ``[every8d] sql_dir`` points at a changed copy.  It is
written in SQL that DuckDB and Postgres both accept (``percentile_cont ...
WITHIN GROUP``, ``EXTRACT(EPOCH FROM ...)``, ``DOUBLE PRECISION``), so one
file serves every warehouse; a file of the same name in a ``<dialect>/`` folder
beside them replaces it for that dialect (only the views whose spelling differs).
Views are dropped and recreated, so a
changed column list applies cleanly; a view may build on one an earlier file
made (``every8d_campaign_measures`` under the daily and summary views), so all
are dropped first, dependants before what they read, then created in order.
"""

from __future__ import annotations

import re
from pathlib import Path

from every8d import settings
from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import ensure_tracking_tables

VIEWS = (
    "every8d_campaign_measures",
    "every8d_campaign_daily",
    "every8d_campaign_summary",
    "every8d_failure_reasons",
    "every8d_delivery_times",
)
_VIEW_NAME = re.compile(r"CREATE\s+OR\s+REPLACE\s+VIEW\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


def default_sql_dir() -> Path:
    """``[every8d] sql_dir``, else the ``sql/`` folder shipped beside this module."""
    configured = settings.get("sql_dir")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent / "sql"


def view_files(dialect: str, sql_dir: Path | None = None) -> list[Path]:
    """The view files for ``dialect`` in apply order: the shared ones, each replaced by the file of
    the same name in the dialect's folder when there is one."""
    folder = Path(sql_dir or default_sql_dir())
    files = {path.name: path for path in folder.glob("*.sql")}
    files.update({path.name: path for path in (folder / dialect).glob("*.sql")})
    if not files:
        raise FileNotFoundError(f"no analytics views for dialect {dialect!r} in {folder}")
    return [files[name] for name in sorted(files)]


def _view_name(path: Path, sql: str) -> str:
    match = _VIEW_NAME.search(sql)
    if match is None:
        raise ValueError(f"{path.name} does not create a view")
    return match.group(1)


def drop_views(warehouse: Warehouse, names: tuple[str, ...] | list[str] = VIEWS) -> None:
    """Drop the analytics views (``names`` in apply order), dependants first: no engine refuses then."""
    for name in reversed(names):
        warehouse.execute(f"DROP VIEW IF EXISTS {name}")


def apply_views(warehouse: Warehouse, sql_dir: Path | None = None) -> list[str]:
    """(Re)create every analytics view for the warehouse's dialect; returns the view names."""
    ensure_tracking_tables(warehouse)
    views = [(path, path.read_text(encoding="utf-8")) for path in view_files(warehouse.dialect, sql_dir)]
    names = [_view_name(path, sql) for path, sql in views]
    with warehouse.transaction():
        drop_views(warehouse, [*VIEWS, *(n for n in names if n not in VIEWS)])
        for _, sql in views:
            warehouse.execute(sql)
    return names
