"""What every warehouse offers: Arrow in, Arrow out, SQL in between.

The status sync, the send ledger and the analytics talk to this interface
only, so the same code runs on a DuckDB file (the default), on Postgres, or on
any database Airflow's common-sql providers reach.  Implementations differ in
how they move rows (DuckDB scans Arrow directly; Postgres gets ``COPY``), not in
what the SQL means.
"""

from __future__ import annotations

import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeAlias, get_args

import pyarrow as pa

from every8d.warehouse.dialects import Dialect, check_identifier, dialect_for

#: How rows reach a table: ``append`` adds them, ``merge`` upserts on the table's key.
WriteDisposition = Literal["append", "merge"]
WRITE_DISPOSITIONS: tuple[str, ...] = get_args(WriteDisposition)

ArrowData: TypeAlias = pa.Table | pa.RecordBatch | pa.RecordBatchReader | Iterable[pa.RecordBatch]


def as_reader(data: ArrowData) -> pa.RecordBatchReader | None:
    """Any Arrow input as one stream of record batches; None when there is nothing to read."""
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches())
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(data.schema, [data])
    batches: Iterator[pa.RecordBatch] = iter(data)
    first = next(batches, None)
    if first is None:
        return None
    return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))


class CountingReader:
    """Wraps a reader and counts the rows that went through it (no copy)."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.schema = reader.schema
        self.rows = 0
        self._reader = reader

    def batches(self) -> Iterator[pa.RecordBatch]:
        for batch in self._reader:
            self.rows += batch.num_rows
            yield batch

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())


_QUOTED_OR_QMARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")


def translate_placeholders(sql: str, placeholder: str, *, escape_percent: bool) -> str:
    """Turn the ``?`` placeholders used throughout the provider into the driver's own.

    ``?`` inside quoted literals and identifiers is left alone; with
    pyformat drivers (``%s``) a literal ``%`` becomes ``%%``.
    """

    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return placeholder
        if token == "%":
            return "%%" if escape_percent else "%"
        return token.replace("%", "%%") if escape_percent and token.startswith("'") else token

    return _QUOTED_OR_QMARK.sub(swap, sql)


class Warehouse(ABC):
    """A SQL database the provider writes its tables to.

    Not thread-safe: give each thread its own (``open_warehouse`` is cheap).
    Every method outside :meth:`transaction` runs in a transaction of its own.

    :ivar dialect: ``duckdb``, ``postgres``, ``mysql`` or another SQLAlchemy dialect name.
    """

    dialect: str
    _active: Any = None  # the open connection of the current transaction
    _depth: int = 0  # how many nested ``transaction()`` blocks are open

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit on exit, roll back on an exception; nested calls join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        connection = self._begin()
        self._active, self._depth = connection, 1
        committed = False
        try:
            yield
            committed = True
        finally:
            self._active, self._depth = None, 0
            self._finish(connection, commit=committed)

    # -- what implementations provide ---------------------------------------------------

    @abstractmethod
    def _begin(self) -> Any:
        """Open (or reuse) a connection and start a transaction on it; return the connection."""

    @abstractmethod
    def _finish(self, connection: Any, *, commit: bool) -> None:
        """Commit or roll back the transaction on ``connection``, then release it."""

    @abstractmethod
    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> int:
        """Run one statement (``?`` placeholders); the affected row count where the driver tells it, else
        -1."""

    @abstractmethod
    def query_batches(
        self, sql: str, parameters: Sequence[Any] | None = None, *, batch_size: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """Stream a query's result as record batches (the connection stays open until exhausted)."""

    @property
    def sql(self) -> Dialect:
        """How this warehouse's engine spells SQL (:mod:`every8d.warehouse.dialects`)."""
        return dialect_for(self.dialect)

    @abstractmethod
    def execute_over(
        self,
        reader: pa.RecordBatchReader | pa.Table,
        sql_for_source: Any,
        parameters: Sequence[Any] | None = None,
    ) -> int:
        """Run one statement that reads ``reader`` (a stream, scanned once, or a table) under a temp name.

        ``sql_for_source(name)`` returns the statement; the affected row count where the driver tells it.
        """

    @contextmanager
    def arrow_view(self, name: str, table: pa.Table) -> Iterator[None]:
        """Inside a transaction, ``table`` readable as ``name`` (in place of a temporary table of
        that name) until the block ends; only where ``sql.scans_arrow``."""
        raise NotImplementedError(f"{type(self).__name__} cannot read Arrow data in place")
        yield

    @abstractmethod
    def _load(self, name: str, reader: pa.RecordBatchReader) -> int:
        """Bulk-insert ``reader`` into existing table ``name`` (columns by name); rows written."""

    @abstractmethod
    def _upsert_from(self, name: str, reader: pa.RecordBatchReader, sql_for_source: Any) -> int:
        """Stage ``reader`` where SQL can see it, then run ``sql_for_source(source_name)``; rows affected."""

    def table_columns(self, name: str) -> list[str]:
        """Column names of table ``name`` (empty when it does not exist), from ``information_schema``.

        An unqualified name on Postgres means the table in ``current_schema()``, as in any query.
        """
        schema, _, table = check_identifier(name).rpartition(".")
        sql = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
        parameters: list[Any] = [table]
        if schema:
            sql += " AND table_schema = ?"
            parameters.append(schema)
        elif self.sql.current_schema:
            sql += f" AND table_schema = {self.sql.current_schema}"
        result = self.query_arrow(sql + " ORDER BY ordinal_position", parameters)
        return [str(value) for value in result.column(0).to_pylist()]

    @abstractmethod
    def close(self) -> None:
        """Release connections; the warehouse may not be used afterwards."""

    # -- shared behaviour -------------------------------------------------------------------

    def query_arrow(self, sql: str, parameters: Sequence[Any] | None = None) -> pa.Table:
        """A query's whole result as one Arrow table (use :meth:`query_batches` for big results)."""
        batches = list(self.query_batches(sql, parameters))
        if not batches:
            raise RuntimeError("query_batches yielded no schema")  # implementations yield >= 1 batch
        return pa.Table.from_batches(batches)

    def ensure_table(self, name: str, schema: pa.Schema, primary_key: Sequence[str] = ()) -> None:
        """Create table ``name`` from an Arrow schema if missing; add columns the schema gained since.

        Added columns are nullable whatever the schema says, since existing rows have no value.
        Checked once per table and warehouse object: tables dropped behind its back are not recreated.
        """
        key = tuple(primary_key)
        ensured = self.__dict__.setdefault("_ensured", set())
        if (name, schema, key) in ensured:
            return
        missing_key = set(key) - set(schema.names)
        if missing_key:
            raise ValueError(f"primary key column(s) {sorted(missing_key)} not in the schema of {name}")
        try:
            self._ensure_table(name, schema, key)
        except Exception:
            # Another process may have created it at the same moment (Postgres then fails the
            # second CREATE ... IF NOT EXISTS): it exists now, so once more only adds columns.
            if self._depth or not self.table_columns(name):
                raise
            self._ensure_table(name, schema, key)
        ensured.add((name, schema, key))

    def ensure_index(self, name: str, table: str, columns: Sequence[str]) -> None:
        """Create index ``name`` on ``table (columns)`` if missing, where the dialect says indexes pay."""
        if not self.sql.secondary_indexes:
            return
        lookup = self.sql.index_lookup_sql
        if lookup is not None and self.query_arrow(lookup, [table, name]).column(0)[0].as_py():
            return
        self.execute(self.sql.create_index_sql(name, table, columns))

    def _ensure_table(self, name: str, schema: pa.Schema, key: tuple[str, ...]) -> None:
        with self.transaction():
            self.execute(self.sql.create_table_sql(name, schema, key))
            existing = {column.lower() for column in self.table_columns(name)}
            for field in schema:
                if field.name.lower() not in existing:
                    self.execute(self.sql.add_column_sql(name, field))

    def append(self, name: str, data: ArrowData) -> int:
        """Insert every row of ``data`` (a table, a batch, or an iterable of batches); rows written."""
        reader = as_reader(data)
        if reader is None:
            return 0
        check_identifier(name)
        with self.transaction():
            return self._load(name, reader)

    def upsert(
        self,
        name: str,
        data: ArrowData,
        key: Sequence[str],
        *,
        update_columns: Sequence[str] | None = None,
        only_if: str | None = None,
    ) -> int:
        """Insert rows, updating those whose ``key`` exists:
        ``ON CONFLICT (key) DO UPDATE ... WHERE only_if``.

        The table needs a primary key (or unique constraint) on ``key``, and
        ``data`` must not repeat a key.  ``update_columns`` defaults to every
        non-key column of ``data``; an empty list means ``DO NOTHING``.  Returns
        the rows inserted or updated where the driver reports it.
        """
        reader = as_reader(data)
        if reader is None:
            return 0
        key = tuple(key)
        columns = list(reader.schema.names)
        missing = [k for k in key if k not in columns]
        if missing:
            raise ValueError(f"upsert into {name}: key column(s) {missing} not in the data")
        if update_columns is None:
            update_columns = [c for c in columns if c not in key]
        unknown = [c for c in update_columns if c not in columns]
        if unknown:
            raise ValueError(f"upsert into {name}: update column(s) {unknown} not in the data")

        def statement(source: str) -> str | tuple[str, ...]:
            return self.sql.upsert_sql(name, columns, key, list(update_columns), only_if, source)

        with self.transaction():
            return self._upsert_from(name, reader, statement)

    def write(
        self, name: str, data: ArrowData, disposition: WriteDisposition, key: Sequence[str] = ()
    ) -> int:
        """Write with a named disposition: ``append`` or ``merge`` (upsert on ``key``)."""
        if disposition == "append":
            return self.append(name, data)
        if disposition == "merge":
            return self.upsert(name, data, key)
        raise ValueError(f"write disposition must be one of {WRITE_DISPOSITIONS}, not {disposition!r}")

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
