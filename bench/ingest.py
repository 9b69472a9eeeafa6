"""Benchmark: delivery-status pages into Parquet + DuckDB, versus a naive pandas loop.

A sandbox gateway gets one batch of N messages (one many-number ``sendSMS``
call, request log off), its clock is moved on so every status is final, and
its N/1000 status pages are read once over HTTP and kept on disk.  Both
pipelines then ingest the same page bodies, each in its own child process so
its peak memory is its own:

- project: ``wire.parse_status_page`` per page, each page spooled as it comes
  (``PageSpool``), merged into a fresh DuckDB warehouse (messages + history,
  one transaction), and the hive-partitioned Parquet export;
- naive: ``pandas.read_csv`` per page, times converted, ``concat``, ``to_parquet``.

The HTTP read is the sandbox's speed, the same for both, so it is reported
apart (``fetch_seconds``), with the project's full sync over HTTP
(``end_to_end_seconds``) for reference.  Last line: one JSON object.

    .venv/bin/python bench/ingest.py            # 1,000,000 rows, 1,000 pages
    .venv/bin/python bench/ingest.py --quick    # 100,000 rows
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))

PAGE = 1000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the two pipelines, each run in a child process ------------------------------------------------


def run_project(pages_dir: Path, work: Path, batch_id: str) -> dict:
    from every8d import wire
    from every8d.tracking.batches import register_batches
    from every8d.tracking.spool import PageSpool
    from every8d.tracking.sync import DueBatch, merge_spool
    from every8d.warehouse import open_warehouse
    from every8d.warehouse.parquet import ParquetExporter
    from every8d.warehouse.tables import ensure_tracking_tables

    sent_at = datetime(2026, 5, 1, 2, 0, tzinfo=timezone.utc)
    warehouse = open_warehouse(f"duckdb://{work / 'bench.duckdb'}")
    ensure_tracking_tables(warehouse)
    register_batches(warehouse, [{"batch_id": batch_id, "campaign_id": "bench", "kind": "sms", "sent_at": sent_at,
                                  "scheduled_at": None, "recipients": None, "points": None,
                                  "validity_minutes": 1440}])
    files = sorted(pages_dir.glob("page-*.txt"))
    started = time.perf_counter()

    def pages():
        for number, path in enumerate(files, start=1):
            yield number, wire.parse_status_page(path.read_text(encoding="utf-8"))

    spool = PageSpool(work / "spool.parquet").write(pages())
    batch = DueBatch(batch_id, "sms", sent_at, None, 1440)
    merge_spool(warehouse, batch, spool, now=sent_at + timedelta(hours=1))
    exported = ParquetExporter(work / "parquet").export(warehouse)
    seconds = time.perf_counter() - started
    rows = warehouse.query_arrow("SELECT count(*) AS n FROM every8d_messages").column("n")[0].as_py()
    return {"rows": rows, "seconds": seconds, "parquet_rows": exported.rows, "peak_rss_mb": peak_rss_mb()}


def run_naive(pages_dir: Path, work: Path) -> dict:
    import io

    import pandas as pd

    files = sorted(pages_dir.glob("page-*.txt"))
    started = time.perf_counter()
    frames = []
    for path in files:
        frame = pd.read_csv(
            io.StringIO(path.read_text(encoding="utf-8")), sep="\t", skiprows=1, header=None,
            names=["name", "mobile", "sent_at", "points", "status", "received_at"],
            dtype={"name": str, "mobile": str, "sent_at": str, "received_at": str}, keep_default_na=False,
        )
        for column in ("sent_at", "received_at"):
            frame[column] = (
                pd.to_datetime(frame[column], format="%Y/%m/%d %H:%M:%S", errors="coerce")
                .dt.tz_localize("Asia/Taipei").dt.tz_convert("UTC")
            )
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.to_parquet(work / "naive.parquet", index=False)
    seconds = time.perf_counter() - started
    return {"rows": len(table), "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


# -- the parent: sandbox, batch, pages, children ---------------------------------------------------------


def make_batch(sandbox, rows: int) -> str:
    """One batch of ``rows`` distinct numbers, sent in a single many-number sendSMS call."""
    destinations = ",".join(f"09{index:08d}" for index in range(rows))
    answer = requests.post(
        sandbox.url("sendSMS"),
        data={"UID": sandbox.uid, "PWD": sandbox.pwd, "MSG": "bench", "DEST": destinations}, timeout=600,
    )
    answer.raise_for_status()
    return answer.text.strip().split(",")[4]


def fetch_pages(sandbox, batch_id: str, rows: int, folder: Path) -> float:
    """Read every status page once over HTTP (through the hook) and keep the bodies on disk."""
    from every8d.hooks.every8d import Every8dHook
    from every8d import wire

    os.environ["AIRFLOW_CONN_EVERY8D_DEFAULT"] = sandbox.connection_json()
    hook = Every8dHook()
    started = time.perf_counter()
    for number in range(1, -(-rows // PAGE) + 1):
        text = hook._post(wire.DELIVERY_STATUS, {"BID": batch_id, "PNO": str(number)})
        (folder / f"page-{number:05d}.txt").write_text(text, encoding="utf-8")
    hook.close()
    return time.perf_counter() - started


def end_to_end(sandbox, batch_id: str, work: Path) -> float:
    """The project's whole sync of the batch over HTTP (pages fetched 2 at a time)."""
    from every8d.hooks.every8d import Every8dHook
    from every8d.tracking.batches import register_batches
    from every8d.tracking.sync import DueBatch, SyncOptions, sync_batch
    from every8d.warehouse import open_warehouse

    sent_at = datetime.now(timezone.utc)
    warehouse = open_warehouse(f"duckdb://{work / 'e2e.duckdb'}")
    register_batches(warehouse, [{"batch_id": batch_id, "campaign_id": "bench", "kind": "sms", "sent_at": sent_at,
                                  "scheduled_at": None, "recipients": None, "points": None,
                                  "validity_minutes": 1440}])
    started = time.perf_counter()
    sync_batch(warehouse, Every8dHook(), DueBatch(batch_id, "sms", sent_at, None, 1440), now=sent_at,
               options=SyncOptions(page_concurrency=2, poll_replies=False, spool_dir=work))
    return time.perf_counter() - started


def child(phase: str, pages_dir: Path, work: Path, batch_id: str) -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--pages", str(pages_dir), "--work", str(work),
               "--batch-id", batch_id]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    env.setdefault("EVERY8D_DUCKDB_MEMORY_LIMIT", "256MB")  # DuckDB would take 80% of RAM otherwise
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, help="rows (a multiple of 1000 is best)")
    parser.add_argument("--phase", choices=["project", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--batch-id", help=argparse.SUPPRESS)
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the full sync over HTTP")
    args = parser.parse_args()

    if args.phase == "project":
        print(json.dumps(run_project(args.pages, args.work, args.batch_id)))
        return
    if args.phase == "naive":
        print(json.dumps(run_naive(args.pages, args.work)))
        return

    from every8d.sandbox import SandboxServer

    rows = args.rows or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="every8d-bench-ingest-") as folder, SandboxServer(
        frozen_clock=True, record=False, credit=rows * 2
    ) as server:
        base = Path(folder)
        pages_dir, project_dir, naive_dir = base / "pages", base / "project", base / "naive"
        for path in (pages_dir, project_dir, naive_dir):
            path.mkdir()
        sandbox = server.client(timeout=600)  # moving the clock of a 1M batch takes a while
        started = time.perf_counter()
        batch_id = make_batch(sandbox, rows)
        print(f"sandbox batch of {rows} messages in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        sandbox.advance(3600)
        fetch_seconds = fetch_pages(sandbox, batch_id, rows, pages_dir)
        print(f"fetched {-(-rows // PAGE)} pages in {fetch_seconds:.1f}s", file=sys.stderr)

        project = child("project", pages_dir, project_dir, batch_id)
        naive = child("naive", pages_dir, naive_dir, batch_id)
        if project["rows"] != rows or naive["rows"] != rows:
            raise SystemExit(f"row counts differ: project {project['rows']}, naive {naive['rows']}, want {rows}")
        e2e = None if args.no_end_to_end else end_to_end(sandbox, batch_id, base)

    result = {
        "bench": "ingest",
        "rows": rows,
        "pages": -(-rows // PAGE),
        "seconds": round(project["seconds"], 3),
        "naive_seconds": round(naive["seconds"], 3),
        "speedup": round(naive["seconds"] / project["seconds"], 2),
        "rows_per_s": round(rows / project["seconds"]),
        "naive_rows_per_s": round(rows / naive["seconds"]),
        "peak_rss_mb": round(project["peak_rss_mb"], 1),
        "naive_peak_rss_mb": round(naive["peak_rss_mb"], 1),
        "fetch_seconds": round(fetch_seconds, 3),
        "end_to_end_seconds": None if e2e is None else round(e2e, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
