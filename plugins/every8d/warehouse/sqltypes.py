"""Arrow types as SQL column types, per dialect.

Tables are declared once as Arrow schemas; this is the one place that knows
how each Arrow type is spelled in DuckDB, Postgres or a generic SQL database.
"""

from __future__ import annotations

import re

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
    """``name`` checked and double-quoted (each part of ``schema.table``), so reserved words work too."""
    return ".".join(f'"{part}"' for part in check_identifier(name).split("."))


def sql_type(arrow_type: pa.DataType, dialect: str) -> str:
    """The column type for ``arrow_type`` in ``dialect`` (``duckdb``, ``postgres`` or other)."""
    postgres = dialect == "postgres"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "TEXT" if postgres else "VARCHAR"
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
        return "DOUBLE PRECISION" if postgres else "DOUBLE"
    if pa.types.is_decimal(arrow_type):
        return f"NUMERIC({arrow_type.precision}, {arrow_type.scale})" if postgres else (
            f"DECIMAL({arrow_type.precision}, {arrow_type.scale})"
        )
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "BYTEA" if postgres else "BLOB"
    raise TypeError(f"no SQL column type for Arrow type {arrow_type}")


def create_table_sql(
    name: str, schema: pa.Schema, primary_key: tuple[str, ...], dialect: str, *, temporary: bool = False
) -> str:
    """``CREATE [TEMP] TABLE IF NOT EXISTS`` for an Arrow schema (NOT NULL from ``nullable``)."""
    columns = []
    for field in schema:
        null = "" if field.nullable and field.name not in primary_key else " NOT NULL"
        columns.append(f"{quote(field.name)} {sql_type(field.type, dialect)}{null}")
    if primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(quote(k) for k in primary_key)})")
    temp = "TEMPORARY " if temporary else ""
    return f"CREATE {temp}TABLE IF NOT EXISTS {quote(name)} ({', '.join(columns)})"


def upsert_sql(
    name: str,
    columns: list[str],
    key: tuple[str, ...],
    update_columns: list[str],
    only_if: str | None,
    source: str,
) -> str:
    """``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE ... [WHERE only_if]`` (or ``DO NOTHING``).

    Spelled the same way by DuckDB and Postgres.  ``only_if`` names the
    existing row by the table's name and the incoming one as ``excluded``.
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
