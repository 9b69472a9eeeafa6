"""Parquet copies of the tracking tables, hive-partitioned by send date and kind.

Layout under the root (a local folder, any fsspec URL, or an ``ObjectStoragePath``)::

    every8d_messages/send_date=2026-05-01/kind=sms/data.parquet
    every8d_status_history/send_date=2026-05-01/kind=sms/data.parquet
    every8d_batches/data.parquet

The sync marks the partitions it changed in ``every8d_parquet_dirty`` (in the
same transaction as the change); the export rewrites each marked partition
whole from the warehouse, streaming, into a hidden temporary file that then
replaces ``data.parquet`` (readers never see half a file), deletes any other
file in the partition (``delete_matching``), and clears the mark.  A crash
before the mark is cleared just means the next export redoes it.  An export
killed while writing leaves its temporary file behind; the next export of that
folder removes every temporary file older than ``STALE_TEMP_SECONDS`` (younger
ones may belong to an export running right now, e.g. a task and its retry).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from every8d import settings
from every8d.paths import default_path
from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import BATCHES, MESSAGES, PARQUET_DIRTY, STATUS_HISTORY, TableSpec

log = logging.getLogger(__name__)

DATA_FILE = "data.parquet"
PARTITION_COLUMNS = ("send_date", "kind")
PARTITIONED_TABLES = (MESSAGES, STATUS_HISTORY)
_SEND_DATE = "CAST(COALESCE(b.scheduled_at, b.sent_at) AS DATE)"
TEMP_PREFIX = f".{DATA_FILE}."
TEMP_SUFFIX = ".tmp"
#: A temporary file this old belongs to no running export (a partition is written in seconds).
STALE_TEMP_SECONDS = 3600.0


def _modified_epoch(info: dict) -> float | None:
    """When an fsspec entry was last written (local ``mtime``, S3/GCS ``LastModified``/``updated``)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


def default_parquet_root() -> str:
    """``[every8d] parquet_root`` if set, else ``$AIRFLOW_HOME/every8d/parquet``."""
    configured = settings.get("parquet_root")
    if configured:
        return configured
    return str(default_path("parquet").resolve())


def resolve_root(root: Any = None) -> tuple[Any, str]:
    """``(fsspec filesystem, base path)`` for a folder, an fsspec URL or an ``ObjectStoragePath``."""
    if root is None:
        root = default_parquet_root()
    if hasattr(root, "fs") and hasattr(root, "path"):  # ObjectStoragePath / universal_pathlib
        return root.fs, str(root.path).rstrip("/")
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(root))
    return fs, str(path).rstrip("/")


def file_schema(spec: TableSpec) -> pa.Schema:
    """The schema of a table's Parquet files: the table's, minus hive partition columns."""
    keep = [field for field in spec.schema if field.name not in PARTITION_COLUMNS]
    return pa.schema(keep)


@dataclass(frozen=True)
class ExportResult:
    partitions: int
    rows: int


class ParquetExporter:
    """Rewrites dirty partitions of the tracking tables under one root.

    :param root: folder, fsspec URL (``s3://bucket/prefix``) or ``ObjectStoragePath``; default
        ``[every8d] parquet_root`` or ``$AIRFLOW_HOME/every8d/parquet``.
    """

    def __init__(self, root: Any = None) -> None:
        self.fs, self.base = resolve_root(root)

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def export(self, warehouse: Warehouse) -> ExportResult:
        """Rewrite every partition marked dirty, then the batches file."""
        PARQUET_DIRTY.ensure(warehouse)
        marks = warehouse.query_arrow(
            f"SELECT send_date, kind, marked_at FROM {PARQUET_DIRTY.name} ORDER BY send_date, kind"
        ).to_pylist()
        rows = 0
        for mark in marks:
            for spec in PARTITIONED_TABLES:
                rows += self.write_partition(warehouse, spec, mark["send_date"], mark["kind"])
            # Only this mark: a sync that re-marked the partition meanwhile keeps it dirty.
            warehouse.execute(
                f"DELETE FROM {PARQUET_DIRTY.name} WHERE send_date = ? AND kind = ? AND marked_at = ?",
                [mark["send_date"], mark["kind"], mark["marked_at"]],
            )
        self._write_file(
            warehouse,
            f"SELECT {', '.join(BATCHES.schema.names)} FROM {BATCHES.name} ORDER BY batch_id",
            [],
            self.path(BATCHES.name),
            file_schema(BATCHES),
        )
        if marks:
            log.info("rewrote %d Parquet partition(s) (%d row(s)) under %s", len(marks), rows, self.base)
        return ExportResult(len(marks), rows)

    def _stale(self, entry: dict) -> bool:
        if _modified_epoch(entry) is None:  # ``ls`` details differ by backend: ask for the full entry
            entry = self.fs.info(entry["name"])
        return _stale_entry(entry, time.time())

    def write_partition(self, warehouse: Warehouse, spec: TableSpec, send_date: date, kind: str) -> int:
        """Rewrite one (send date, kind) partition of ``spec``'s table from the warehouse; rows written."""
        schema = file_schema(spec)
        columns = ", ".join(f"t.{name}" for name in schema.names)
        sql = (
            f"SELECT {columns} FROM {spec.name} t JOIN {BATCHES.name} b ON b.batch_id = t.batch_id "
            f"WHERE {_SEND_DATE} = ? AND b.kind = ?"
        )
        folder = self.path(spec.name, f"send_date={send_date.isoformat()}", f"kind={kind}")
        return self._write_file(warehouse, sql, [send_date, kind], folder, schema)

    def _write_file(
        self, warehouse: Warehouse, sql: str, parameters: list, folder: str, schema: pa.Schema
    ) -> int:
        """Stream a query into ``folder/data.parquet`` atomically; remove every other file there."""
        self.fs.makedirs(folder, exist_ok=True)
        final = f"{folder}/{DATA_FILE}"
        temporary = f"{folder}/{TEMP_PREFIX}{uuid.uuid4().hex}{TEMP_SUFFIX}"
        rows = 0
        try:
            with (
                self.fs.open(temporary, "wb") as handle,
                pq.ParquetWriter(handle, schema, compression="snappy") as writer,
            ):
                for batch in warehouse.query_batches(sql, parameters):
                    if batch.num_rows:
                        writer.write_table(_conform(batch, schema))
                        rows += batch.num_rows
            if rows:
                self.fs.mv(temporary, final)
        finally:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)
        for entry in self.fs.ls(folder, detail=True):
            other = entry["name"]
            name = other.rstrip("/").rsplit("/", 1)[-1]
            if rows and name == DATA_FILE:
                continue
            if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                if not self._stale(entry):
                    continue  # another export may be writing it right now
                log.info("removing %s, left by an export that did not finish", other)
            elif name.startswith("."):
                continue
            self.fs.rm(other, recursive=True)
        if not rows and not self.fs.ls(folder, detail=False):
            self.fs.rmdir(folder)
        return rows


def _stale_entry(entry: dict, now: float) -> bool:
    modified = _modified_epoch(entry)
    return modified is None or now - modified > STALE_TEMP_SECONDS


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """``batch`` with exactly ``schema``'s columns and types (drivers name types their own way)."""
    arrays = [batch.column(name).cast(field.type) for name, field in zip(schema.names, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)
