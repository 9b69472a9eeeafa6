"""Any database behind an Airflow common-sql connection (Postgres and MySQL/MariaDB tested).

Rows move in bulk: Postgres gets ``COPY ... FROM STDIN`` fed with CSV that
Arrow writes column by column; other drivers get ``executemany`` in batches.
MySQL/MariaDB sessions run in UTC with ``ANSI_QUOTES`` and ``PIPES_AS_CONCAT``,
so the provider's SQL (double-quoted names, ``||``) means the same there; its
aware times travel as naive UTC and come back as UTC.
Results come back through a server-side cursor where the driver has one, and
are turned into Arrow one column at a time.  Nothing here logs row values,
which may be phone numbers.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from every8d.arrow_types import UTC_TIME
from every8d.warehouse.base import Warehouse, translate_placeholders
from every8d.warehouse.dialects import quote

log = logging.getLogger(__name__)

EXECUTEMANY_ROWS = 5_000
COPY_ROWS = 100_000

# Postgres type OIDs -> Arrow types, so results keep their types even when empty.
_POSTGRES_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    25: pa.string(),
    1042: pa.string(),
    1043: pa.string(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: UTC_TIME,
}
_NUMERIC_OID = 1700

# MySQL field types (mysqlclient and mysql-connector agree) -> Arrow types.  DATETIME holds UTC.
_MYSQL_TYPES: dict[int, pa.DataType] = {
    2: pa.int16(),
    3: pa.int32(),
    8: pa.int64(),
    4: pa.float32(),
    5: pa.float64(),
    10: pa.date32(),
    7: pa.timestamp("us", tz="UTC"),
    12: pa.timestamp("us", tz="UTC"),
    253: pa.string(),
    254: pa.string(),
    252: pa.string(),
}
_MYSQL_TINY, _MYSQL_NEWDECIMAL = 1, 246
#: sql_mode flags every MySQL/MariaDB session gets, so the shared SQL reads the same there.
MYSQL_SQL_MODE = "ANSI_QUOTES,PIPES_AS_CONCAT,STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION"


def _dialect_of(hook: Any) -> str:
    name = str(getattr(hook, "dialect_name", "") or hook.get_connection(hook.get_conn_id()).conn_type)
    if name.startswith("postgres"):
        return "postgres"
    return "mysql" if name in ("mysql", "mariadb") else name


def _mysql_column_type(description: Sequence[Any]) -> pa.DataType | None:
    type_code = description[1]
    if type_code == _MYSQL_TINY:  # BOOLEAN is TINYINT(1)
        return pa.bool_()
    if type_code == _MYSQL_NEWDECIMAL:  # the driver gives the display length: digits, sign and point
        length, scale = description[3] or description[2], description[5]
        if isinstance(length, int) and isinstance(scale, int):
            precision = length - 1 - (1 if scale else 0)
            if 0 < precision <= 38:
                return pa.decimal128(precision, scale)
        return None
    return _MYSQL_TYPES.get(type_code)


def _column_type(description: Sequence[Any], dialect: str) -> pa.DataType | None:
    type_code = description[1]
    if dialect == "mysql" and isinstance(type_code, int):
        return _mysql_column_type(description)
    if dialect != "postgres" or not isinstance(type_code, int):
        return None
    if type_code == _NUMERIC_OID:
        precision, scale = description[4], description[5]
        if isinstance(precision, int) and isinstance(scale, int) and 0 < precision <= 38:
            return pa.decimal128(precision, scale)
        return None
    return _POSTGRES_TYPES.get(type_code)


def _rows_to_batch(rows: list[tuple], names: list[str], types: list[pa.DataType | None]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    values: Sequence[Any]
    for values, arrow_type in zip(columns, types, strict=True):
        if arrow_type is not None and pa.types.is_boolean(arrow_type) and any(type(v) is int for v in values):
            values = [None if v is None else bool(v) for v in values]  # MySQL's BOOLEAN is TINYINT(1)
        array = (
            pa.array(values, type=arrow_type)
            if arrow_type is not None or values
            else pa.array(values, pa.null())
        )
        if pa.types.is_timestamp(array.type) and array.type.tz and array.type.tz != "UTC":
            array = array.cast(pa.timestamp(array.type.unit, tz="UTC"))
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=names)


class DbApiWarehouse(Warehouse):
    """A warehouse reached through an Airflow connection whose hook is a common-sql ``DbApiHook``.

    :param conn_id: the Airflow connection id (``postgres_default``, ...).
    """

    def __init__(self, conn_id: str) -> None:
        from airflow.providers.common.sql.hooks.sql import DbApiHook
        from airflow.sdk import BaseHook

        hook = BaseHook.get_connection(conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise ValueError(
                f"connection {conn_id!r} is not a SQL connection (its hook is {type(hook).__name__})"
            )
        self.conn_id = conn_id
        self.hook = hook
        self.dialect = _dialect_of(hook)
        self._placeholder = hook.placeholder
        self._active: Any = None
        self._depth = 0

    def __repr__(self) -> str:
        return f"DbApiWarehouse(airflow://{self.conn_id}, dialect={self.dialect!r})"

    # -- connections ------------------------------------------------------------------------

    def _begin(self) -> Any:
        connection = self.hook.get_conn()
        if self.dialect == "mysql":
            self.hook.set_autocommit(connection, False)  # mysqlclient: a method, not an attribute
        elif getattr(connection, "autocommit", False):
            connection.autocommit = False
        if self.dialect == "postgres":
            with connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
        elif self.dialect == "mysql":
            cursor = connection.cursor()
            try:
                cursor.execute(f"SET SESSION sql_mode = '{MYSQL_SQL_MODE}', time_zone = '+00:00'")
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            finally:
                cursor.close()
        return connection

    def _finish(self, connection: Any, *, commit: bool) -> None:
        try:
            connection.commit() if commit else connection.rollback()
        finally:
            connection.close()

    def _values(self, parameters: Sequence[Any]) -> tuple:
        """Parameters as the driver takes them: on MySQL aware times become naive UTC (no time zones)."""
        if self.dialect != "mysql":
            return tuple(parameters)
        return tuple(
            value.astimezone(UTC).replace(tzinfo=None)
            if isinstance(value, datetime) and value.tzinfo is not None
            else value
            for value in parameters
        )

    def _sql(self, sql: str, parameters: Sequence[Any] | None) -> str:
        if parameters is None:
            return sql
        return translate_placeholders(sql, self._placeholder, escape_percent=self._placeholder == "%s")

    # -- the interface ---------------------------------------------------------------------------

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> int:
        with self.transaction():
            cursor = self._active.cursor()
            try:
                if parameters is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(self._sql(sql, parameters), self._values(parameters))
                count = cursor.rowcount
            finally:
                cursor.close()
        return count if isinstance(count, int) else -1

    def query_batches(
        self, sql: str, parameters: Sequence[Any] | None = None, *, batch_size: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        with self.transaction():
            server_side = self.dialect == "postgres"
            cursor = (
                self._active.cursor(name=f"every8d_{uuid.uuid4().hex[:12]}")
                if server_side
                else self._active.cursor()
            )
            try:
                if parameters is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(self._sql(sql, parameters), self._values(parameters))
                rows = cursor.fetchmany(batch_size)
                description = cursor.description or []
                names = [column[0] for column in description]
                types = [_column_type(column, self.dialect) for column in description]
                yield _rows_to_batch(rows, names, types)
                while len(rows) == batch_size:
                    rows = cursor.fetchmany(batch_size)
                    if rows:
                        yield _rows_to_batch(rows, names, types)
            finally:
                cursor.close()

    def _copy(self, name: str, reader: pa.RecordBatchReader) -> int | None:
        """``COPY name FROM STDIN`` with Arrow-written CSV; None when the driver cannot COPY."""
        cursor = self._active.cursor()
        names = ", ".join(quote(c) for c in reader.schema.names)
        statement = f"COPY {quote(name)} ({names}) FROM STDIN WITH (FORMAT csv)"
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        written = 0
        try:
            if not hasattr(cursor, "copy") and not hasattr(cursor, "copy_expert"):
                return None
            for table in _chunks(reader, COPY_ROWS):
                buffer = io.BytesIO()
                pacsv.write_csv(table, buffer, options)
                if hasattr(cursor, "copy"):  # psycopg 3
                    with cursor.copy(statement) as copy:
                        copy.write(buffer.getvalue())
                else:  # psycopg2
                    buffer.seek(0)
                    cursor.copy_expert(statement, buffer)
                written += table.num_rows
        finally:
            cursor.close()
        return written

    def _executemany(self, name: str, reader: pa.RecordBatchReader) -> int:
        names = reader.schema.names
        marks = ", ".join([self._placeholder] * len(names))
        statement = f"INSERT INTO {quote(name)} ({', '.join(quote(c) for c in names)}) VALUES ({marks})"
        written = 0
        cursor = self._active.cursor()
        try:
            for table in _chunks(reader, EXECUTEMANY_ROWS):
                if self.dialect == "mysql":
                    table = _naive_utc(table)
                rows = list(zip(*(column.to_pylist() for column in table.columns), strict=True))
                cursor.executemany(statement, rows)
                written += len(rows)
        finally:
            cursor.close()
        return written

    def _load(self, name: str, reader: pa.RecordBatchReader) -> int:
        with self.transaction():
            if self.dialect == "postgres":
                written = self._copy(name, reader)
                if written is not None:
                    log.debug("copied %d row(s) into %s", written, name)
                    return written
            return self._executemany(name, reader)

    def _upsert_from(
        self, name: str, reader: pa.RecordBatchReader, sql_for_source: Callable[[str], str | tuple[str, ...]]
    ) -> int:
        return self.execute_over(reader, sql_for_source)

    def execute_over(
        self,
        reader: pa.RecordBatchReader | pa.Table,
        sql_for_source: Callable[[str], str | tuple[str, ...]],
        parameters: Sequence[Any] | None = None,
    ) -> int:
        """Copy ``reader`` into a temporary table, run the statement over it, drop the table."""
        if isinstance(reader, pa.Table):
            reader = reader.to_reader()
        staging = f"every8d_incoming_{uuid.uuid4().hex[:12]}"
        ddl = self.sql.create_table_sql(staging, reader.schema, (), temporary=True)
        with self.transaction():
            self.execute(ddl)
            try:
                self._load(staging, reader)
                statements = sql_for_source(staging)
                if isinstance(statements, str):
                    return self.execute(statements, parameters)
                counts = [self.execute(statement, parameters) for statement in statements]
                return -1 if -1 in counts else sum(counts)
            finally:
                self.execute(self.sql.drop_temporary_sql(staging))

    def close(self) -> None:
        """Nothing is held between operations."""


def _naive_utc(table: pa.Table) -> pa.Table:
    """``table`` with its aware timestamp columns as naive UTC (for drivers without time zones)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz:
            naive = pa.field(field.name, pa.timestamp(field.type.unit), field.nullable)
            table = table.set_column(index, naive, table.column(index).cast(pa.timestamp(field.type.unit)))
    return table


def _chunks(reader: pa.RecordBatchReader, rows: int) -> Iterator[pa.Table]:
    """Re-cut a stream of batches into tables of about ``rows`` rows."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending, reader.schema)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending, reader.schema)
