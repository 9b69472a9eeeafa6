"""The default warehouse: one DuckDB file, opened per operation.

DuckDB lets one process write a file at a time, and Airflow runs tasks in
separate processes.  So the file is opened for each operation (or each
transaction) and closed right after, never held across a network call, and a
lock held by another process is waited for briefly instead of failing the task.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from every8d.warehouse.base import CountingReader, Warehouse
from every8d.warehouse.dialects import quote

log = logging.getLogger(__name__)

MEMORY = ":memory:"
DEFAULT_LOCK_TIMEOUT = 60.0


def _is_lock_conflict(error: Exception) -> bool:
    text = str(error).lower()
    return "lock" in text and ("conflict" in text or "could not set" in text)


class DuckDbWarehouse(Warehouse):
    """A DuckDB database file (or ``:memory:``, kept open since it would vanish otherwise).

    :param path: the database file (its folder is created), or ``:memory:``.
    :param lock_timeout: seconds to keep retrying while another process holds the file.
    :param memory_limit: DuckDB's ``memory_limit`` for each connection, e.g. ``"512MB"``.
    :param threads: DuckDB's ``threads`` for each connection (None: DuckDB's default, one per core).
    """

    dialect = "duckdb"

    def __init__(
        self,
        path: str | Path,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = str(path)
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit
        self.threads = threads
        self._in_memory = self.path == MEMORY
        if not self._in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._kept: duckdb.DuckDBPyConnection | None = self._open() if self._in_memory else None
        self._active: duckdb.DuckDBPyConnection | None = None
        self._depth = 0

    def __repr__(self) -> str:
        return f"DuckDbWarehouse({self.path!r})"

    # -- connections -------------------------------------------------------------------

    def _open(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": self.memory_limit} if self.memory_limit else {}
        )
        if self.threads:
            config["threads"] = int(self.threads)
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.05
        while True:
            try:
                connection = duckdb.connect(self.path, config=config)
            except duckdb.IOException as error:
                if not _is_lock_conflict(error) or time.monotonic() >= deadline:
                    raise
                log.info("DuckDB file %s is locked by another process; retrying in %.2fs", self.path, pause)
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            # After connecting, so that the bundled ICU extension is loaded: UTC in, UTC out.
            connection.execute("SET TimeZone = 'UTC'")
            # Bulk inserts then run on every thread within the memory limit; every query that
            # cares about order says ORDER BY.
            connection.execute("SET preserve_insertion_order = false")
            return connection

    def _begin(self) -> duckdb.DuckDBPyConnection:
        connection = self._kept or self._open()
        connection.execute("BEGIN TRANSACTION")
        return connection

    def _finish(self, connection: duckdb.DuckDBPyConnection, *, commit: bool) -> None:
        try:
            connection.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            if connection is not self._kept:
                connection.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open connection of the current transaction (only valid inside :meth:`transaction`)."""
        if self._active is None:
            raise RuntimeError("no open transaction: use `with warehouse.transaction():`")
        return self._active

    def _with_view(self, reader: pa.RecordBatchReader | pa.Table, run: Callable[[str], int]) -> int:
        view = f"every8d_incoming_{uuid.uuid4().hex[:12]}"
        if isinstance(reader, pa.Table):
            # Scanned by DuckDB itself, in parallel and without the GIL (a Python stream of
            # batches takes the GIL for each batch: slow while other threads parse pages).
            self.connection.register(view, reader)
            rows = reader.num_rows
        else:
            counted = CountingReader(reader)
            self.connection.register(view, counted.reader())
        try:
            affected = run(view)
        finally:
            self.connection.unregister(view)
        if affected >= 0:
            return affected
        return rows if isinstance(reader, pa.Table) else counted.rows

    # -- the interface ------------------------------------------------------------------------

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> int:
        with self.transaction():
            result = (
                self.connection.execute(sql, parameters)
                if parameters is not None
                else (self.connection.execute(sql))
            )
            description = result.description or []
            rows = result.fetchall()
        if len(description) == 1 and description[0][0] == "Count" and len(rows) == 1:
            return int(rows[0][0])
        return -1

    def query_batches(
        self, sql: str, parameters: Sequence[Any] | None = None, *, batch_size: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        with self.transaction():
            relation = (
                self.connection.sql(sql, params=parameters)
                if parameters is not None
                else (self.connection.sql(sql))
            )
            reader = relation.to_arrow_reader(batch_size)
            yielded = False
            for batch in reader:
                yielded = True
                yield batch
            if not yielded:
                yield pa.RecordBatch.from_pylist([], schema=reader.schema)

    def execute_over(
        self,
        reader: pa.RecordBatchReader | pa.Table,
        sql_for_source: Callable[[str], str],
        parameters: Sequence[Any] | None = None,
    ) -> int:
        """Run one statement that reads ``reader`` (a stream, scanned once) under a temporary name."""
        with self.transaction():
            return self._with_view(reader, lambda view: self.execute(sql_for_source(view), parameters))

    @contextmanager
    def arrow_view(self, name: str, table: pa.Table) -> Iterator[None]:
        """``table`` as the view ``name`` (no copy; it hides a table of that name) for the block."""
        with self.transaction():
            self.connection.execute(f"DROP TABLE IF EXISTS temp.{quote(name)}")  # an empty staging table
            self.connection.register(name, table)
            try:
                yield
            finally:
                self.connection.unregister(name)

    def _load(self, name: str, reader: pa.RecordBatchReader) -> int:
        names = ", ".join(quote(c) for c in reader.schema.names)
        return self._with_view(
            reader,
            lambda view: self.execute(f"INSERT INTO {quote(name)} ({names}) SELECT {names} FROM {view}"),
        )

    def _upsert_from(
        self, name: str, reader: pa.RecordBatchReader, sql_for_source: Callable[[str], str]
    ) -> int:
        return self._with_view(reader, lambda view: self.execute(sql_for_source(view)))

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()
            self._kept = None
