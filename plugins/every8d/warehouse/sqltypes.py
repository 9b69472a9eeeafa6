"""Arrow types as SQL column types, per dialect: the functions of :mod:`every8d.warehouse.dialects`.

Kept for the callers that name a dialect by its string; the spellings live on the dialect objects.
"""

from __future__ import annotations

import pyarrow as pa

from every8d.warehouse.dialects import check_identifier, dialect_for, quote

__all__ = ["check_identifier", "create_table_sql", "quote", "sql_type", "upsert_sql"]


def sql_type(arrow_type: pa.DataType, dialect: str) -> str:
    """The column type for ``arrow_type`` in ``dialect`` (``duckdb``, ``postgres``, ``mysql`` or other)."""
    return dialect_for(dialect).sql_type(arrow_type)


def create_table_sql(
    name: str, schema: pa.Schema, primary_key: tuple[str, ...], dialect: str, *, temporary: bool = False
) -> str:
    """``CREATE [TEMP] TABLE IF NOT EXISTS`` for an Arrow schema (NOT NULL from ``nullable``)."""
    return dialect_for(dialect).create_table_sql(name, schema, primary_key, temporary=temporary)


def upsert_sql(
    name: str,
    columns: list[str],
    key: tuple[str, ...],
    update_columns: list[str],
    only_if: str | None,
    source: str,
    dialect: str = "duckdb",
) -> str | tuple[str, ...]:
    """The dialect's upsert of ``source`` into ``name`` (see :meth:`Dialect.upsert_sql`)."""
    return dialect_for(dialect).upsert_sql(name, columns, key, update_columns, only_if, source)
