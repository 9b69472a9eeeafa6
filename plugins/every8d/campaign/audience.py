"""Audiences become Arrow record batches once, at the edge, whatever they came from.

Sources: a pandas DataFrame or Arrow table (also from an upstream task's
XCom, or a callable returning one), a Parquet or CSV file or Parquet
directory at any ``ObjectStoragePath`` (``s3://`` and friends work with their
fsspec package installed), or a SQL query on any common-sql connection read
with a server-side cursor where the driver has one.  Only the columns the
campaign needs are read, batch by batch, so memory stays flat.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

DEFAULT_BATCH_ROWS = 50_000
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv")


class AudienceError(ValueError):
    """The audience cannot be read, or lacks a column the campaign needs."""


@dataclass(frozen=True)
class SqlAudience:
    """An audience read from a SQL query.

    :param sql: the query; its result columns are the audience's columns.
    :param conn_id: any connection whose hook is a common-sql ``DbApiHook`` (Postgres, DuckDB, ...).
    :param parameters: query parameters, in the driver's placeholder style.
    """

    sql: str
    conn_id: str
    parameters: Sequence[Any] | Mapping[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class ColumnMap:
    """Which audience column plays which part.

    :param mobile: the phone number column (required).
    :param name: recipient name sent to the gateway (shows in status listings), optional.
    :param record_key: your id for the recipient, kept in the ledger and rejects, optional.
    :param send_at: per-row send time, optional.
    :param template: with several templates, the column naming each row's template.
    """

    mobile: str = "mobile"
    name: str | None = None
    record_key: str | None = None
    send_at: str | None = None
    template: str | None = None

    def columns(self) -> list[str]:
        return [c for c in (self.mobile, self.name, self.record_key, self.send_at, self.template) if c]


def _require(available: Sequence[str], needed: Sequence[str], what: str) -> None:
    absent = [c for c in needed if c not in available]
    if absent:
        raise AudienceError(f"{what} has no column(s) {absent}; it has {sorted(available)}")


def _storage_path(source: Any) -> Any:
    from airflow.sdk import ObjectStoragePath

    return source if isinstance(source, ObjectStoragePath) else ObjectStoragePath(os.fspath(source))


def _file_format(name: str, declared: str | None) -> str:
    if declared:
        if declared not in ("parquet", "csv"):
            raise AudienceError(f"audience_format must be 'parquet' or 'csv', not {declared!r}")
        return declared
    lower = name.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES) or "." not in lower.rsplit("/", 1)[-1]:
        return "parquet"  # a directory of Parquet files has no suffix
    raise AudienceError(f"cannot tell the format of {name!r}: set audience_format='parquet' or 'csv'")


def _iter_table(
    table: pa.Table, columns: Sequence[str], batch_rows: int, what: str
) -> Iterator[pa.RecordBatch]:
    _require(table.column_names, columns, what)
    yield from table.select(list(columns)).to_batches(max_chunksize=batch_rows)


def _iter_parquet(path: Any, columns: Sequence[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A Parquet file row group by row group, or a directory of them as a dataset."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    local = path.protocol in ("", "file", "local")
    if not path.is_dir():
        with open(path.path, "rb") if local else path.open("rb") as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            _require(parquet.schema_arrow.names, columns, "the Parquet audience")
            yield from parquet.iter_batches(batch_size=batch_rows, columns=list(columns), use_threads=False)
        return
    filesystem = None if local else PyFileSystem(FSSpecHandler(path.fs))
    dataset = ds.dataset(path.path, filesystem=filesystem, format="parquet")
    _require(dataset.schema.names, columns, "the Parquet audience")
    yield from dataset.to_batches(
        columns=list(columns),
        batch_size=batch_rows,
        use_threads=False,
        batch_readahead=1,
        fragment_readahead=1,
    )


def _open_csv(path: Any, columns: Sequence[str] | None, batch_rows: int) -> Any:
    """A streaming CSV reader over ``path``; with ``columns``, those columns as nullable text."""
    import pyarrow.csv as pcsv

    name = path.name.lower()
    compression = "gzip" if name.endswith(".gz") else "bz2" if name.endswith(".bz2") else None
    handle = path.open("rb")
    stream = pa.CompressedInputStream(handle, compression) if compression else handle
    convert = pcsv.ConvertOptions()
    if columns is not None:
        convert = pcsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            include_columns=list(columns),
            strings_can_be_null=True,
        )
    return pcsv.open_csv(
        stream,
        read_options=pcsv.ReadOptions(block_size=8 << 20 if columns is not None else 1 << 16),
        parse_options=pcsv.ParseOptions(delimiter="\t" if ".tsv" in name else ","),
        convert_options=convert,
    ), handle


def _iter_csv(path: Any, columns: Sequence[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """CSV read as text (numbers keep their leading zeros); empty cells are null."""
    reader, handle = _open_csv(path, None, batch_rows)
    try:
        _require(reader.schema.names, columns, "the CSV audience")
    finally:
        handle.close()
    reader, handle = _open_csv(path, columns, batch_rows)
    try:
        for batch in reader:
            yield from pa.Table.from_batches([batch]).to_batches(max_chunksize=batch_rows)
    finally:
        handle.close()


def _iter_sql(source: SqlAudience, columns: Sequence[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Rows fetched ``batch_rows`` at a time; Postgres uses a server-side (named) cursor."""
    from contextlib import closing

    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(source.conn_id).get_hook()
    if not hasattr(hook, "get_conn") or not hasattr(hook, "run"):
        raise AudienceError(f"connection {source.conn_id!r} is not a SQL connection (no DbApiHook)")
    with closing(hook.get_conn()) as conn:
        try:
            cursor = conn.cursor(name="every8d_audience")  # psycopg2/psycopg: stream, do not buffer
            cursor.itersize = batch_rows
        except TypeError:
            cursor = conn.cursor()
        with closing(cursor):
            if source.parameters is None:
                cursor.execute(source.sql)
            else:
                cursor.execute(source.sql, source.parameters)
            rows = cursor.fetchmany(batch_rows)
            names = [d[0] for d in cursor.description or ()]
            _require(names, columns, "the SQL audience")
            positions = [names.index(c) for c in columns]
            while rows:
                yield pa.RecordBatch.from_arrays(
                    [pa.array([row[i] for row in rows]) for i in positions], names=list(columns)
                )
                rows = cursor.fetchmany(batch_rows)


def iter_audience(
    source: Any,
    columns: Sequence[str],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    file_format: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the audience as record batches holding exactly ``columns`` (in that order).

    :param source: DataFrame, Arrow table or record batch reader, a callable returning one,
        a path (``str``, ``os.PathLike`` or ``ObjectStoragePath``), or :class:`SqlAudience`.
    :raises AudienceError: unknown source type or a missing column, before any row is used.
    """
    columns = list(dict.fromkeys(columns))
    if isinstance(source, SqlAudience):
        yield from _iter_sql(source, columns, batch_rows)
        return
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        table = source if isinstance(source, pa.Table) else pa.Table.from_batches([source])
        yield from _iter_table(table, columns, batch_rows, "the audience table")
        return
    if isinstance(source, pa.RecordBatchReader):
        _require(source.schema.names, columns, "the audience reader")
        for batch in source:
            yield from _iter_table(pa.Table.from_batches([batch]), columns, batch_rows, "the audience reader")
        return
    module = type(source).__module__ or ""
    if module.startswith("pandas") and hasattr(source, "columns"):
        _require([str(c) for c in source.columns], columns, "the audience DataFrame")
        for start in range(0, len(source), batch_rows):
            part = source.iloc[start : start + batch_rows][columns]
            yield from pa.Table.from_pandas(part, preserve_index=False).to_batches(max_chunksize=batch_rows)
        return
    if isinstance(source, (str, os.PathLike)) or type(source).__name__ == "ObjectStoragePath":
        path = _storage_path(source)
        if _file_format(str(source), file_format) == "csv":
            yield from _iter_csv(path, columns, batch_rows)
        else:
            yield from _iter_parquet(path, columns, batch_rows)
        return
    if callable(source):
        yield from iter_audience(source(), columns, batch_rows=batch_rows, file_format=file_format)
        return
    raise AudienceError(
        f"cannot read an audience from a {type(source).__name__}: give a DataFrame, an Arrow table, "
        "a Parquet/CSV path, a SqlAudience, or a callable returning one of these"
    )
