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
    folder = (
        tmp_path / "lake" / "every8d_messages" / f"send_date={batch.sent_at.date().isoformat()}" / "kind=sms"
    )
    assert [p.name for p in folder.iterdir()] == ["data.parquet"]
    (folder / "part-old.parquet").write_bytes(b"stale")  # left by another writer: replaced with the partition
    assert exporter.export(warehouse).partitions == 0  # nothing changed since

    sandbox.advance(3600)
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at + timedelta(hours=1))
    assert exporter.export(warehouse).partitions == 1
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]
    messages = ds.dataset(
        tmp_path / "lake" / "every8d_messages", format="parquet", partitioning="hive"
    ).to_table()
    table = warehouse.query_arrow("SELECT mobile, seq, status FROM every8d_messages")
    assert sorted(
        zip(*[messages.column(c).to_pylist() for c in ("mobile", "seq", "status")], strict=True)
    ) == sorted(zip(*[table.column(c).to_pylist() for c in ("mobile", "seq", "status")], strict=True))
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
    assert (
        warehouse.query_arrow("SELECT count(*) AS n FROM every8d_parquet_dirty").column("n")[0].as_py() == 0
    )


_KILLED_EXPORT = """
import sys, time
from every8d.warehouse import open_warehouse
from every8d.warehouse.parquet import ParquetExporter

warehouse = open_warehouse(sys.argv[1])
query_batches = warehouse.query_batches

def slow(sql, parameters=None, **options):
    for batch in query_batches(sql, parameters, **options):
        yield batch
        if "FROM every8d_messages t" in sql:  # a partition's rows: its temporary file is open, half written
            print("WRITING", flush=True)
            time.sleep(600)

warehouse.query_batches = slow
ParquetExporter(sys.argv[2]).export(warehouse)
"""


def test_an_export_killed_midway_leaves_no_temporary_file_a_later_run_keeps(sandbox, duckdb_target, tmp_path):
    """Issue 12, point 16: SIGKILL a real export while it writes; a later export removes what it left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from every8d.warehouse import open_warehouse

    warehouse = open_warehouse(duckdb_target)
    batch = send_batch(sandbox, warehouse, numbers(20))
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at)
    warehouse.close()  # DuckDB: one writing process at a time
    lake = tmp_path / "lake"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_EXPORT, duckdb_target, str(lake)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "WRITING"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    folder = lake / "every8d_messages" / f"send_date={batch.sent_at.date().isoformat()}" / "kind=sms"
    [left] = list(folder.iterdir())
    assert left.name.startswith(".data.parquet.") and left.name.endswith(".tmp")

    warehouse = open_warehouse(duckdb_target)
    exporter = ParquetExporter(lake)
    assert exporter.export(warehouse).partitions == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["data.parquet", left.name]
    )  # young: maybe live
    hours_ago = time.time() - 2 * 3600
    os.utime(left, (hours_ago, hours_ago))  # the killed export's file, two hours on
    sandbox.advance(3600)
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at + timedelta(hours=1))
    assert exporter.export(warehouse).partitions == 1
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]
    warehouse.close()
