"""Snapshot a campaign's audience once, for the UI-triggered campaign DAG.

A form gives a file path/URL or a SQL query; the plan (dry run) and the send
are separate tasks, possibly minutes apart.  Reading the source once into a
Parquet file makes both see the same rows, and fails early — before any send —
when the audience lacks a column the message template uses.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from every8d import settings
from every8d.atomic import atomic_path
from every8d.campaign.audience import AudienceError, SqlAudience, iter_audience
from every8d.paths import default_path

_SQL = re.compile(r"^\s*(select|with)\s", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def staging_root() -> Path:
    """``[every8d] staging_root``, else ``$AIRFLOW_HOME/every8d/staging``."""
    configured = settings.get("staging_root")
    if configured:
        return Path(configured)
    return default_path("staging")


def template_fields(message: str) -> list[str]:
    """The audience columns a ``string.Template`` message refers to, in order."""
    template = string.Template(message)
    if not template.is_valid():
        raise ValueError(
            "the message template is malformed: a '$' must start $name or ${name} (write $$ for '$')"
        )
    return list(dict.fromkeys(template.get_identifiers()))


def _available_columns(source: Any) -> list[str] | None:
    """Column names of a file audience without reading its rows (None for SQL: known only by running it)."""
    if isinstance(source, SqlAudience):
        return None
    from every8d.campaign.audience import _file_format, _open_csv, _storage_path

    path = _storage_path(source)
    if _file_format(str(source), None) == "csv":
        reader, handle = _open_csv(path, None, 1024)
        try:
            return reader.schema.names
        finally:
            handle.close()
    import pyarrow.dataset as ds

    return ds.dataset(
        str(path.path) if path.protocol in ("", "file", "local") else path, format="parquet"
    ).schema.names


def stage_campaign_audience(
    audience: str, message: str, *, sql_conn_id: str | None, run_id: str, mobile_column: str = "mobile"
) -> dict[str, Any]:
    """Read ``audience`` (path/URL or SQL) into ``<staging root>/<run_id>.parquet``.

    :returns: ``{"path": ..., "columns": [...], "rows": n}`` — small, XCom-safe.
    :raises AudienceError: missing columns, unreadable source, or SQL without a connection.
    """
    import pyarrow.parquet as pq

    if _SQL.match(audience):
        if not sql_conn_id:
            raise AudienceError("a SQL audience needs the SQL connection parameter (sql_conn_id)")
        source: Any = SqlAudience(audience, sql_conn_id)
    else:
        source = audience.strip()
    needed = [mobile_column, *template_fields(message)]
    available = _available_columns(source)
    if available is not None and "name" in available:
        needed.append("name")
    columns = list(dict.fromkeys(needed))

    target = staging_root() / f"{_UNSAFE.sub('_', run_id)}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    writer = None
    with atomic_path(target) as partial:
        try:
            for batch in iter_audience(source, columns):
                if writer is None:
                    writer = pq.ParquetWriter(partial, batch.schema)
                writer.write_batch(batch.cast(writer.schema) if batch.schema != writer.schema else batch)
                rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise AudienceError("the audience is empty")
    return {"path": str(target), "columns": columns, "rows": rows}
