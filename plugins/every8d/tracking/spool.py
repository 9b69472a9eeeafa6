"""A batch's status pages, spooled to a local Arrow file as they arrive.

Memory stays flat however big the batch: parsed pages are appended to an Arrow IPC
stream (uncompressed: the spool lives for one sync and is read once, so
writing it must cost next to nothing) in record batches of up to
``BATCH_ROWS`` rows, and dropped.  Once the listing is complete, DuckDB (the
warehouse itself, or a local one for other warehouses) reads the file back
as a stream, numbers each number's messages (``seq``: the n-th line of that
number in the listing) and produces the rows in the ``every8d_status_staging``
shape, spilling to disk if it must.  The warehouse is not touched while
pages arrive, so no lock is held while the gateway is slow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from every8d.atomic import atomic_path
from every8d.client.results import StatusPage
from every8d.client.v21.status import DELIVERY_STATUS, STATUS_PAGE_SCHEMA
from every8d.errors import IncompleteListingError
from every8d.phones import normalize_observed
from every8d.warehouse.tables import STATUS_STAGING

#: The listing's rows with their place in it (``ordinal``: 0, 1, ... across all pages).
SPOOL_SCHEMA = pa.schema([pa.field("ordinal", pa.int64(), nullable=False), *STATUS_PAGE_SCHEMA])
LOCAL_MEMORY_LIMIT = "256MB"
#: Pages are gathered into record batches of about this many rows (DuckDB works in vectors of 2048).
BATCH_ROWS = 32_768


class PageSpool:
    """Status pages of one batch in an Arrow IPC stream file; ``total`` is the gateway's count line.

    :param path: the spool file (replaced if it exists: a rerun starts over).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.total = 0
        self.rows = 0
        self.pages = 0

    def write(self, chunks: Iterable[tuple[int, StatusPage]]) -> PageSpool:
        """Write ``(pages, rows)`` chunks of the listing as they arrive; the file appears only when complete.

        Complete means the chunks ended without an error and their rows add up to
        the count line; otherwise the partial file is removed and
        :class:`~every8d.errors.IncompleteListingError` (or the chunks' own error) is raised.
        """
        # Not synced to disk: the spool is scratch, read back within this sync; a crash loses its
        # folder and the retry fetches the batch again (one fsync per batch cost more than its parse).
        with atomic_path(self.path, durable=False) as partial:
            self._write(chunks, partial)
        return self

    def _write(self, chunks: Iterable[tuple[int, StatusPage]], partial: Path) -> None:
        pending: list[pa.Table] = []
        pending_rows = 0
        totals: set[int] = set()
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_stream(sink, SPOOL_SCHEMA) as writer:
            for pages, chunk in chunks:
                totals.add(chunk.total)
                self.total = max(self.total, chunk.total)
                if chunk.rows:
                    pending.append(_spool_rows(self.rows, chunk.table))
                    pending_rows += chunk.rows
                    if pending_rows >= BATCH_ROWS:
                        writer.write_batch(_one_batch(pending))
                        pending, pending_rows = [], 0
                self.rows += chunk.rows
                self.pages += pages
            if pending:
                writer.write_batch(_one_batch(pending))
        if len(totals) > 1 or self.rows != self.total:
            raise IncompleteListingError(
                DELIVERY_STATUS, f"{self.rows} row(s) spooled, the count line says {sorted(totals)}"
            )

    @contextmanager
    def reader(self) -> Iterator[pa.RecordBatchReader]:
        """The spooled rows as a stream (``SPOOL_SCHEMA``), read from disk batch by batch."""
        with pa.OSFile(str(self.path), "rb") as source:
            yield pa.ipc.open_stream(source)

    @staticmethod
    def staging_select(source: str, *, batch_column: str | None = None) -> str:
        """SELECT of the spooled rows (readable as ``source`` in DuckDB) in the staging shape.

        Parameters: batch id, observed time, source.  With ``batch_column`` the rows of many
        batches are read at once: the batch id is that column (no parameter), ``seq`` numbers a
        number's messages within its batch, in listing order.
        """
        batch_id = f"{batch_column} AS batch_id" if batch_column else "CAST(? AS VARCHAR) AS batch_id"
        partition = f"{batch_column}, mobile" if batch_column else "mobile"
        return f"""
            SELECT {batch_id},
                   mobile,
                   CAST(row_number() OVER (PARTITION BY {partition} ORDER BY ordinal) AS INTEGER) AS seq,
                   NULLIF(record_id, '') AS mr,
                   name, sent_at, received_at, points, status,
                   CAST(? AS TIMESTAMPTZ) AS observed_at,
                   CAST(? AS VARCHAR) AS source
            FROM {source}
        """

    def read_table(self) -> pa.Table:
        """The spooled rows, in memory (``SPOOL_SCHEMA``)."""
        with self.reader() as rows:
            return rows.read_all()

    @contextmanager
    def staged(
        self, batch_id: str, *, source: str, observed_at: datetime, batch_size: int = 100_000
    ) -> Iterator[pa.RecordBatchReader]:
        """The spooled rows as ``every8d_status_staging`` batches, ``seq`` numbered per mobile."""
        import duckdb

        config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": LOCAL_MEMORY_LIMIT}
        with duckdb.connect(":memory:", config=config) as local, self.reader() as spool:
            local.execute("SET TimeZone = 'UTC'")
            local.execute("SET temp_directory = ?", [str(self.path.parent / ".duckdb_tmp")])
            local.register("every8d_spool", spool)
            relation = local.sql(self.staging_select("every8d_spool"), params=[batch_id, observed_at, source])
            reader = relation.to_arrow_reader(batch_size)
            yield pa.RecordBatchReader.from_batches(
                STATUS_STAGING.schema, (_conform(b, STATUS_STAGING.schema) for b in reader)
            )


def occurrences(keys: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each row, which occurrence of its key it is (1, 2, ...) in the order ``order`` gives
    (the rows' ranks): ``row_number() OVER (PARTITION BY key ORDER BY order)``, in numpy."""
    rows = np.lexsort((order, keys))  # by key, then order
    ranked = keys[rows]
    position = np.arange(len(rows))
    first = np.ones(len(rows), dtype=bool)
    first[1:] = ranked[1:] != ranked[:-1]
    run_start = np.maximum.accumulate(np.where(first, position, 0))
    seq = np.empty(len(rows), dtype=np.int32)
    seq[rows] = position - run_start + 1
    return seq


def staged_rows(
    spooled: Sequence[pa.Table], batch_ids: Sequence[str], *, source: str, observed_at: datetime
) -> pa.Table:
    """Many batches' spooled rows (``SPOOL_SCHEMA`` tables, one per batch id) in the
    ``every8d_status_staging`` shape, in memory: the rows :meth:`PageSpool.staging_select` makes,
    ``seq`` numbered by :func:`occurrences`.  A few calls for the whole group, not per batch
    (each call hands the GIL over, slow while fetch threads parse pages)."""
    table = pa.concat_tables(spooled) if spooled else SPOOL_SCHEMA.empty_table()
    count = table.num_rows
    batch = np.repeat(np.arange(len(spooled), dtype=np.int64), [t.num_rows for t in spooled])
    mobile = table.column("mobile").combine_chunks()
    codes = pc.dictionary_encode(mobile).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    keys = batch * (int(codes.max(initial=0)) + 1) + codes  # (batch, number) as one integer
    ordinal = table.column("ordinal").to_numpy()
    record_id = table.column("record_id")
    schema = STATUS_STAGING.schema
    columns = {
        "batch_id": pa.DictionaryArray.from_arrays(pa.array(batch), pa.array(batch_ids, pa.string())).cast(
            pa.string()
        ),
        "mobile": mobile,
        "seq": pa.array(occurrences(keys, ordinal)),
        "mr": pc.if_else(pc.equal(record_id, ""), pa.scalar(None, pa.string()), record_id),
        "observed_at": pa.repeat(pa.scalar(observed_at, schema.field("observed_at").type), count),
        "source": pa.repeat(pa.scalar(source, pa.string()), count),
    }
    arrays = [columns[f.name] if f.name in columns else table.column(f.name) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _spool_rows(first_ordinal: int, table: pa.Table) -> pa.Table:
    mobiles = normalize_observed(table.column("mobile"))
    table = table.set_column(
        table.schema.get_field_index("mobile"), STATUS_PAGE_SCHEMA.field("mobile"), mobiles
    )
    ordinals = pa.array(np.arange(first_ordinal, first_ordinal + table.num_rows, dtype=np.int64))
    return pa.Table.from_arrays([ordinals, *table.columns], schema=SPOOL_SCHEMA)


def _one_batch(tables: list[pa.Table]) -> pa.RecordBatch:
    """Pages gathered into one record batch (one copy of a few MB)."""
    return pa.concat_tables(tables).combine_chunks().to_batches()[0]


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema``'s types (DuckDB names the UTC zone its own way)."""
    arrays = [batch.column(name).cast(field.type) for name, field in zip(schema.names, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
