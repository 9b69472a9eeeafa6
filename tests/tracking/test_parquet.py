"""The Parquet copy: hive partitions by send date and kind, rewritten whole and atomically."""

from __future__ import annotations

from datetime import timedelta

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from every8d.hooks.every8d import Every8dHook
from every8d.tracking.sync import sync_batch
from every8d.warehouse.parquet import ParquetExporter
from tests.tracking.helpers import numbers, send_batch

pytestmark = pytest.mark.usefixtures("every8d_conn_env")


def test_export_rewrites_only_changed_partitions_and_matches_the_tables(sandbox, warehouse, tmp_path):
    batch = send_batch(sandbox, warehouse, numbers(1500))
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at)
    exporter = ParquetExporter(tmp_path / "lake")
    first = exporter.export(warehouse)
    assert (first.partitions, first.rows) == (1, 3000)  # 1500 messages + 1500 history rows
    folder = tmp_path / "lake" / "every8d_messages" / f"send_date={batch.sent_at.date().isoformat()}" / "kind=sms"
    assert [p.name for p in folder.iterdir()] == ["data.parquet"]
    (folder / "part-old.parquet").write_bytes(b"stale")  # left by another writer: replaced with the partition
    assert exporter.export(warehouse).partitions == 0  # nothing changed since

    sandbox.advance(3600)
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at + timedelta(hours=1))
    assert exporter.export(warehouse).partitions == 1
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]
    messages = ds.dataset(tmp_path / "lake" / "every8d_messages", format="parquet", partitioning="hive").to_table()
    table = warehouse.query_arrow("SELECT mobile, seq, status FROM every8d_messages")
    assert sorted(zip(*[messages.column(c).to_pylist() for c in ("mobile", "seq", "status")])) == sorted(
        zip(*[table.column(c).to_pylist() for c in ("mobile", "seq", "status")])
    )
    assert "kind" not in pq.read_schema(folder / "data.parquet").names  # a hive key, not a file column
    batches = pq.read_table(tmp_path / "lake" / "every8d_batches" / "data.parquet")
    assert batches.column("state").to_pylist() == ["closed"]


def test_a_partition_stays_dirty_until_it_is_exported(sandbox, warehouse, tmp_path):
    batch = send_batch(sandbox, warehouse, numbers(10))
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at)
    # The export did not run (the task crashed): the mark survives for the next run.
    marks = warehouse.query_arrow("SELECT send_date, kind FROM every8d_parquet_dirty").to_pylist()
    assert marks == [{"send_date": batch.sent_at.date(), "kind": "sms"}]
    assert ParquetExporter(tmp_path / "lake").export(warehouse).rows == 20
    assert warehouse.query_arrow("SELECT count(*) AS n FROM every8d_parquet_dirty").column("n")[0].as_py() == 0
