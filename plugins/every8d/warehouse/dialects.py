"""How each warehouse engine spells SQL: one object per engine, the only place that knows.

The provider's SQL is written once, in the SQL that DuckDB and Postgres share;
where an engine spells something its own way (column types, upserts, casts,
row locks, "is distinct from", the server's clock, ``UPDATE`` from rows of
parameters, an idle-transaction timeout), the statement asks the warehouse's
:class:`Dialect` for the spelling.  Adding a warehouse is one subclass here
(plus its own view files in ``tracking/sql/<name>/`` if the views need other
spellings) and the session setup that reaches it (``warehouse/dbapi.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pyarrow as pa

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def check_identifier(name: str) -> str:
    """``name`` if it is a plain (optionally schema-qualified) SQL identifier; else ValueError.

    Table and column names are interpolated into SQL, so only snake_case-like
    names are accepted; values always travel as parameters.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def quote(name: str) -> str:
    """``name`` checked and double-quoted (each part of ``schema.table``), so reserved words work too.

    MySQL/MariaDB read double quotes as identifiers too: their sessions run with ``ANSI_QUOTES``.
    """
    return ".".join(f'"{part}"' for part in check_identifier(name).split("."))


class Dialect:
    """The spellings DuckDB and Postgres share; engines override what they spell otherwise."""

    name = "generic"
    #: ``CAST(? AS <timestamp>)`` for an aware UTC time.
    timestamp = "TIMESTAMP WITH TIME ZONE"
    #: ``CAST(x AS <text>)``.
    text = "VARCHAR"
    #: ``CAST(x AS <integer>)``.
    integer = "INTEGER"
    #: ``CAST(x AS <boolean>)`` (MySQL casts to a number: its BOOLEAN is TINYINT(1)).
    boolean = "BOOLEAN"
    #: Whether secondary indexes pay for themselves (DuckDB scans fast; its ART indexes cost on every open).
    secondary_indexes = True
    #: appended to a ``SELECT`` that must lock the rows it reads until the transaction ends.
    for_update = " FOR UPDATE"
    #: The server's clock, as an aware (UTC) time.
    now = "now()"
    #: How ``table_columns`` restricts an unqualified name to the current schema (empty: no need).
    current_schema = ""
    #: Whether the engine scans Arrow data in place (``execute_over`` without a copy).
    scans_arrow = False
    #: A query counting index ``?`` on table ``?`` (table, then index name), for engines without
    #: ``CREATE INDEX IF NOT EXISTS``; None where that statement exists.
    index_lookup_sql: str | None = None

    def __repr__(self) -> str:
        return f"<{self.name} dialect>"

    # -- column types ----------------------------------------------------------------------

    def string_type(self, in_key: bool) -> str:
        return "VARCHAR"

    def sql_type(self, arrow_type: pa.DataType, *, in_key: bool = False) -> str:
        """The column type for ``arrow_type`` (``in_key``: the column is part of a primary key)."""
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return self.string_type(in_key)
        if pa.types.is_boolean(arrow_type):
            return "BOOLEAN"
        if pa.types.is_int8(arrow_type) or pa.types.is_int16(arrow_type):
            return "SMALLINT"
        if pa.types.is_int32(arrow_type):
            return "INTEGER"
        if pa.types.is_int64(arrow_type):
            return "BIGINT"
        if pa.types.is_float32(arrow_type):
            return "REAL"
        if pa.types.is_float64(arrow_type):
            return self.double
        if pa.types.is_decimal(arrow_type):
            return f"{self.decimal}({arrow_type.precision}, {arrow_type.scale})"
        if pa.types.is_timestamp(arrow_type):
            return self.timestamp_type(bool(arrow_type.tz))
        if pa.types.is_date(arrow_type):
            return "DATE"
        if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
            return self.binary
        raise TypeError(f"no SQL column type for Arrow type {arrow_type}")

    double = "DOUBLE"
    decimal = "DECIMAL"
    binary = "BLOB"

    def timestamp_type(self, aware: bool) -> str:
        return "TIMESTAMP WITH TIME ZONE" if aware else "TIMESTAMP"

    def create_index_sql(self, name: str, table: str, columns: Sequence[str]) -> str:
        """``CREATE INDEX`` (``IF NOT EXISTS`` where the engine has it) on ``table (columns)``."""
        guard = "" if self.index_lookup_sql is not None else "IF NOT EXISTS "
        return f"CREATE INDEX {guard}{quote(name)} ON {quote(table)} ({', '.join(map(quote, columns))})"

    def create_table_sql(
        self, name: str, schema: pa.Schema, primary_key: tuple[str, ...], *, temporary: bool = False
    ) -> str:
        """``CREATE [TEMP] TABLE IF NOT EXISTS`` for an Arrow schema (NOT NULL from ``nullable``)."""
        columns = []
        for field in schema:
            in_key = field.name in primary_key
            null = "" if field.nullable and not in_key else " NOT NULL"
            columns.append(f"{quote(field.name)} {self.sql_type(field.type, in_key=in_key)}{null}")
        if primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(quote(k) for k in primary_key)})")
        temp = "TEMPORARY " if temporary else ""
        return f"CREATE {temp}TABLE IF NOT EXISTS {quote(name)} ({', '.join(columns)})"

    def drop_temporary_sql(self, name: str) -> str:
        """Drop a temporary table made by :meth:`create_table_sql` without ending the transaction."""
        return f"DROP TABLE IF EXISTS {quote(name)}"

    def add_column_sql(self, name: str, field: pa.Field) -> str:
        return f"ALTER TABLE {quote(name)} ADD COLUMN {quote(field.name)} {self.sql_type(field.type)}"

    # -- statements ----------------------------------------------------------------------

    def upsert_sql(
        self,
        name: str,
        columns: list[str],
        key: tuple[str, ...],
        update_columns: list[str],
        only_if: str | None,
        source: str,
    ) -> str | tuple[str, ...]:
        """``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE ... [WHERE only_if]`` (or ``DO NOTHING``).

        Engines that need several statements return them in order (their row counts add up).
        ``only_if`` names the existing row by the table's name and the incoming one as ``excluded``.
        """
        names = ", ".join(quote(c) for c in columns)
        sql = (
            f"INSERT INTO {quote(name)} ({names}) SELECT {names} FROM {source} "
            f"ON CONFLICT ({', '.join(quote(k) for k in key)}) "
        )
        if not update_columns:
            return sql + "DO NOTHING"
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in update_columns)
        sql += f"DO UPDATE SET {sets}"
        if only_if:
            sql += f" WHERE {only_if}"
        return sql

    def insert_new(self, insert: str) -> str:
        """``insert`` (an ``INSERT ... SELECT``) skipping rows whose key exists.

        Uses ``ON CONFLICT DO NOTHING``.
        """
        return f"{insert}\nON CONFLICT DO NOTHING"

    def plus_ms(self, moment: str) -> str:
        """``moment`` plus a parameter's worth of milliseconds."""
        return f"{moment} + CAST(? AS INTEGER) * INTERVAL '1 millisecond'"

    def distinct(self, left: str, right: str) -> str:
        """``left IS DISTINCT FROM right`` (null-safe inequality)."""
        return f"{left} IS DISTINCT FROM {right}"

    def not_distinct(self, left: str, right: str) -> str:
        """``left IS NOT DISTINCT FROM right`` (null-safe equality)."""
        return f"{left} IS NOT DISTINCT FROM {right}"

    #: Whether ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE`` exists (MySQL has no such WHERE).
    conflict_update = True

    def insert_or_update(self, insert: str, table: str, key: tuple[str, ...], columns: list[str]) -> str:
        """``insert`` (an ``INSERT ... SELECT``) updating ``columns`` of rows whose ``key`` exists."""
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns)
        return f"{insert}\nON CONFLICT ({', '.join(quote(k) for k in key)}) DO UPDATE SET {sets}"

    def conflict_update_sql(
        self,
        table: str,
        alias: str,
        columns: str,
        select: str,
        key: tuple[str, ...],
        sets: list[tuple[str, str]],
        where: str,
    ) -> str:
        """``INSERT INTO table AS alias (columns) select ON CONFLICT (key) DO UPDATE SET ... WHERE where``.

        Only where :attr:`conflict_update` holds; ``excluded`` names the incoming row.
        """
        assignments = ",\n    ".join(f"{c} = {v}" for c, v in sets)
        return (
            f"INSERT INTO {table} AS {alias} ({columns})\n{select}\n"
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET\n    {assignments}\nWHERE {where}"
        )

    def anti_join(self, select: str, alias: str, table: str, other: str, on: str) -> str:
        """``SELECT alias.* FROM (select) alias`` without the rows that match ``table other`` ``on``."""
        return (
            f"SELECT {alias}.* FROM ({select}) {alias}\n"
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} {other} WHERE {on})"
        )

    def update_from(
        self, table: str, alias: str, sets: list[tuple[str, str]], source: str, source_alias: str, where: str
    ) -> str:
        """``UPDATE table alias SET ... FROM (source) source_alias WHERE where`` (assignments in order)."""
        assignments = ",\n    ".join(f"{column} = {value}" for column, value in sets)
        return f"UPDATE {table} {alias} SET\n    {assignments}\nFROM ({source}) {source_alias}\nWHERE {where}"

    def update_from_values(
        self,
        table: str,
        alias: str,
        sets: list[tuple[str, str]],
        columns: list[tuple[str, str]],
        rows: int,
        where: str,
    ) -> str:
        """``UPDATE table alias`` from ``rows`` rows of parameters, one ``?`` per column and row, row by row.

        ``columns`` are ``(name, cast type)``; the rows are named ``v``.  Every parameter is in the
        rows (none in ``sets`` or ``where``), so the parameter order is the same on every engine.
        """
        row = "(" + ", ".join(f"CAST(? AS {kind})" for _, kind in columns) + ")"
        names = ", ".join(name for name, _ in columns)
        source = f"(VALUES {', '.join(row for _ in range(rows))}) AS v({names})"
        assignments = ",\n    ".join(f"{column} = {value}" for column, value in sets)
        return f"UPDATE {table} {alias} SET\n    {assignments}\nFROM {source}\nWHERE {where}"

    def lock_timeout_sql(self, ms: int) -> str | None:
        """A statement that ends this session if it idles in its transaction over ``ms``.

        None: no such thing.

        A runner frozen inside a fenced transaction would hold the campaign row's lock for good.
        """
        return None


class DuckDbDialect(Dialect):
    name = "duckdb"
    for_update = ""  # one writer per file: the transaction holds the whole database
    scans_arrow = True
    secondary_indexes = False

    def anti_join(self, select: str, alias: str, table: str, other: str, on: str) -> str:
        return f"SELECT {alias}.* FROM ({select}) {alias}\nANTI JOIN {table} {other} ON {on}"


class PostgresDialect(Dialect):
    name = "postgres"
    current_schema = "current_schema()"
    double = "DOUBLE PRECISION"
    decimal = "NUMERIC"
    binary = "BYTEA"

    def string_type(self, in_key: bool) -> str:
        return "TEXT"

    def lock_timeout_sql(self, ms: int) -> str | None:
        return f"SET LOCAL idle_in_transaction_session_timeout = {int(ms)}"


#: Longest key text column on MySQL/MariaDB (a campaign id's limit): three of them in one key
#: (utf8mb4, 4 bytes a character) stay below InnoDB's 3072-byte key.
MYSQL_KEY_CHARS = 250


class MySqlDialect(Dialect):
    """MySQL and MariaDB, with sessions in ``ANSI_QUOTES,PIPES_AS_CONCAT`` and UTC.

    No time zone type: aware times are stored as UTC ``DATETIME(6)`` and read back as UTC.
    No ``ON CONFLICT``: ``ON DUPLICATE KEY UPDATE`` instead.  Text keys need a length.
    """

    name = "mysql"
    now = "NOW(6)"  # the session's time zone is UTC
    current_schema = "DATABASE()"  # information_schema spans every database of the server
    timestamp = "DATETIME(6)"
    text = "CHAR"
    integer = "SIGNED"
    boolean = "SIGNED"
    binary = "LONGBLOB"
    # MariaDB has CREATE INDEX IF NOT EXISTS, MySQL 8 does not: look it up on both.
    index_lookup_sql = (
        "SELECT count(*) AS n FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?"
    )

    def string_type(self, in_key: bool) -> str:
        return f"VARCHAR({MYSQL_KEY_CHARS})" if in_key else "TEXT"

    def timestamp_type(self, aware: bool) -> str:
        return "DATETIME(6)"

    def plus_ms(self, moment: str) -> str:
        return f"{moment} + INTERVAL (? * 1000) MICROSECOND"

    def lock_timeout_sql(self, ms: int) -> str | None:
        # MariaDB (10.3+) runs what stands in /*M!100300 ... */, MySQL reads it as a comment: MySQL has
        # no such timeout, so there only a user variable is set (a frozen runner's lock then waits for
        # innodb_lock_wait_timeout).  A warehouse transaction has its own connection, so the session
        # setting ends with it.
        seconds = max(1, math.ceil(ms / 1000))
        return f"SET @every8d_fenced = 1 /*M!100300 , SESSION idle_transaction_timeout = {seconds} */"

    def drop_temporary_sql(self, name: str) -> str:
        # A plain DROP TABLE commits the open transaction (and releases its row locks) on MySQL.
        return f"DROP TEMPORARY TABLE IF EXISTS {quote(name)}"

    def upsert_sql(
        self,
        name: str,
        columns: list[str],
        key: tuple[str, ...],
        update_columns: list[str],
        only_if: str | None,
        source: str,
    ) -> tuple[str, ...]:
        """``UPDATE ... JOIN`` the existing keys (``WHERE only_if``), then ``INSERT`` the new ones.

        Two statements, not ``ON DUPLICATE KEY UPDATE``: that counts an update twice and applies
        its assignments one after the other, so a condition could not see the row as it was.
        """
        names = ", ".join(quote(c) for c in columns)
        table = quote(name)
        on = " AND ".join(f"{table}.{quote(k)} = excluded.{quote(k)}" for k in key)
        insert = (
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {source} excluded "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {on})"
        )
        if not update_columns:
            return (insert,)
        sets = ", ".join(f"{table}.{quote(c)} = excluded.{quote(c)}" for c in update_columns)
        update = f"UPDATE {table} JOIN {source} excluded ON {on} SET {sets}"
        if only_if:
            update += f" WHERE {only_if}"
        return update, insert

    conflict_update = False

    def insert_or_update(self, insert: str, table: str, key: tuple[str, ...], columns: list[str]) -> str:
        sets = ", ".join(f"{quote(table)}.{quote(c)} = VALUES({quote(c)})" for c in columns)
        return f"{insert}\nON DUPLICATE KEY UPDATE {sets}"

    def update_from(
        self, table: str, alias: str, sets: list[tuple[str, str]], source: str, source_alias: str, where: str
    ) -> str:
        """``UPDATE table alias JOIN (source) ON where SET alias.column = ...``, applied left to right."""
        assignments = ",\n    ".join(f"{alias}.{column} = {value}" for column, value in sets)
        return f"UPDATE {table} {alias} JOIN ({source}) {source_alias} ON {where}\nSET {assignments}"

    def update_from_values(
        self,
        table: str,
        alias: str,
        sets: list[tuple[str, str]],
        columns: list[tuple[str, str]],
        rows: int,
        where: str,
    ) -> str:
        """``UPDATE table alias JOIN (SELECT ... UNION ALL SELECT ...) v ON where SET ...``.

        MariaDB's ``VALUES`` table constructor takes no ``AS v(columns)``: the rows are selects.
        """
        row = "SELECT " + ", ".join(f"CAST(? AS {kind}) AS {name}" for name, kind in columns)
        source = "\nUNION ALL ".join(row for _ in range(rows))
        return self.update_from(table, alias, sets, source, "v", where)

    def insert_new(self, insert: str) -> str:
        """A no-op update of the first column, not ``INSERT IGNORE`` (which would hide other errors too)."""
        first = re.search(
            r"INSERT\s+INTO\s+\"?([A-Za-z_][A-Za-z0-9_.]*)\"?\s*\(\s*\"?([A-Za-z_][A-Za-z0-9_]*)",
            insert,
            re.IGNORECASE,
        )
        if first is None:
            raise ValueError("insert_new needs INSERT INTO table (columns ...) SELECT ...")
        column = f"{quote(first.group(1))}.{quote(first.group(2))}"  # qualified: the SELECT may have it too
        return f"{insert}\nON DUPLICATE KEY UPDATE {column} = {column}"

    def distinct(self, left: str, right: str) -> str:
        return f"NOT ({left} <=> {right})"

    def not_distinct(self, left: str, right: str) -> str:
        return f"({left} <=> {right})"


_DIALECTS: dict[str, Dialect] = {d.name: d for d in (DuckDbDialect(), PostgresDialect(), MySqlDialect())}
_GENERIC = Dialect()
_ALIASES = {"postgresql": "postgres", "mariadb": "mysql"}


def dialect_for(name: str) -> Dialect:
    """The dialect object of an engine name (``duckdb``, ``postgres``, ``mysql``...; generic otherwise)."""
    name = _ALIASES.get(name, name)
    return _DIALECTS.get(name, _GENERIC)
