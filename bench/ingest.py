"""Benchmark: delivery-status pages from the sandbox into Parquet + DuckDB, versus a naive pandas loop.

A sandbox gateway (its own process) gets one batch of N messages (one
many-number ``sendSMS`` call, request log off), its clock is moved on so
every status is final, and every status page is read once, untimed, so that
both sides meet a warm sandbox (a page's lines are formatted once and then
served from the sandbox's cache).  Then each pipeline runs in a child process
of its own, so each one's peak memory is its own, and both read the N/1000
pages over HTTP:

- project: the real sync path, ``sync_batch`` through ``Every8dHook`` (pages
  fetched ``--concurrency`` at a time, parsed 32 pages per call with
  ``wire.parse_status_pages``, spooled as they arrive, merged into a fresh
  DuckDB warehouse, messages + history, one transaction), then the
  hive-partitioned Parquet export;
- naive: one ``requests`` call after another, ``pandas.read_csv`` per page,
  times converted, ``concat``, ``to_parquet`` (``naive_seconds``), then one insert of
  the same rows into the same DuckDB tables, messages and history
  (``naive_same_sinks_seconds``, ``speedup_same_sinks``: the same sinks as the project);
- floor: the project's final rows, already in memory, written once into a
  fresh DuckDB file and once as Parquet: what storing these rows in these
  sinks costs at the least on this machine, whatever the pipeline.  The naive
  loop writes one Parquet file and no warehouse, so ``speedup_ceiling``
  (naive over floor) bounds the speedup any pipeline could show here.

``seconds`` and ``naive_seconds`` include the HTTP reads; ``peak_rss_mb`` is
the project child's peak RSS (``baseline_rss_mb``: the same process after its
imports, Airflow's included, before any page).  DuckDB's memory is capped at
``AIRFLOW__EVERY8D__DUCKDB_MEMORY_LIMIT`` (96MB unless set).  Last line: one JSON object.

    .venv/bin/python bench/ingest.py            # 1,000,000 rows, 1,000 pages
    .venv/bin/python bench/ingest.py --quick    # 100,000 rows
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))

from memory import peak_rss_mb, rss_mb  # noqa: E402  (bench/ is on sys.path as the script's folder)

PAGE = 1000
#: DuckDB's own budget in the project child (the rest of the process is Python, Airflow and Arrow).
DUCKDB_MEMORY_LIMIT = "96MB"
ENV_MEMORY_LIMIT = "AIRFLOW__EVERY8D__DUCKDB_MEMORY_LIMIT"


# -- the two pipelines, each run in a child process ------------------------------------------------


def run_project(work: Path, batch_id: str, concurrency: int) -> dict:
    from every8d.hooks.every8d import Every8dHook
    from every8d.tracking.batches import register_batches
    from every8d.tracking.sync import DueBatch, SyncOptions, sync_batch
    from every8d.warehouse import open_warehouse
    from every8d.warehouse.parquet import ParquetExporter
    from every8d.warehouse.tables import ensure_tracking_tables

    sent_at = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    warehouse = open_warehouse(f"duckdb://{work / 'bench.duckdb'}")
    ensure_tracking_tables(warehouse)
    register_batches(
        warehouse,
        [
            {
                "batch_id": batch_id,
                "campaign_id": "bench",
                "kind": "sms",
                "sent_at": sent_at,
                "scheduled_at": None,
                "recipients": None,
                "points": None,
                "validity_minutes": 1440,
            }
        ],
    )
    hook = Every8dHook(pool_size=concurrency)
    baseline = rss_mb()
    started = time.perf_counter()
    result = sync_batch(
        warehouse,
        hook,
        DueBatch(batch_id, "sms", sent_at, None, 1440),
        now=sent_at + timedelta(hours=1),
        options=SyncOptions(page_concurrency=concurrency, poll_replies=False, spool_dir=work),
    )
    synced = time.perf_counter() - started
    exported = ParquetExporter(work / "parquet").export(warehouse)
    seconds = time.perf_counter() - started
    hook.close()
    rows = warehouse.query_arrow("SELECT count(*) AS n FROM every8d_messages").column("n")[0].as_py()
    return {
        "rows": rows,
        "pages": result.pages,
        "seconds": seconds,
        "sync_seconds": synced,
        "fetch_seconds": result.fetch_seconds,
        "merge_seconds": result.merge_seconds,
        "parquet_rows": exported.rows,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
    }


def run_floor(project_work: Path, work: Path) -> dict:
    """The least any pipeline with these sinks pays: the project's own final rows (messages and
    history, read untimed from its DuckDB file into memory) written once into a fresh DuckDB file
    with ``CREATE TABLE AS`` and once as Parquet, with no HTTP, parsing or merge logic at all."""
    import duckdb
    import pyarrow.parquet as pq

    memory_limit = os.environ.get(ENV_MEMORY_LIMIT) or DUCKDB_MEMORY_LIMIT
    with duckdb.connect(str(project_work / "bench.duckdb"), read_only=True) as source:
        tables = {
            name: source.sql(f"SELECT * FROM {name}").to_arrow_table()
            for name in ("every8d_messages", "every8d_status_history")
        }
    started = time.perf_counter()
    with duckdb.connect(str(work / "floor.duckdb"), config={"memory_limit": memory_limit}) as target:
        target.execute("SET preserve_insertion_order = false")
        for name, table in tables.items():
            target.register("incoming", table)
            target.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            target.unregister("incoming")
    stored = time.perf_counter()
    for name, table in tables.items():
        pq.write_table(table, work / f"{name}.parquet", compression="snappy", row_group_size=65_536)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "duckdb_seconds": stored - started,
        "parquet_seconds": seconds - (stored - started),
    }


def run_naive(work: Path, base_url: str, uid: str, pwd: str, batch_id: str, pages: int) -> dict:
    import io

    import pandas as pd

    session = requests.Session()  # as the hook's: environment proxies honoured
    url = f"{base_url}/API21/HTTP/getDeliveryStatus.ashx"
    started = time.perf_counter()
    http = 0.0
    frames = []
    for number in range(1, pages + 1):
        asked = time.perf_counter()
        form = {"UID": uid, "PWD": pwd, "BID": batch_id, "PNO": str(number)}
        answer = session.post(url, data=form, timeout=60)
        answer.raise_for_status()
        http += time.perf_counter() - asked
        frame = pd.read_csv(
            io.StringIO(answer.text),
            sep="\t",
            skiprows=1,
            header=None,
            names=["name", "mobile", "sent_at", "points", "status", "received_at"],
            dtype={"name": str, "mobile": str, "sent_at": str, "received_at": str},
            keep_default_na=False,
        )
        for column in ("sent_at", "received_at"):
            frame[column] = (
                pd.to_datetime(frame[column], format="%Y/%m/%d %H:%M:%S", errors="coerce")
                .dt.tz_localize("Asia/Taipei")
                .dt.tz_convert("UTC")
            )
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.to_parquet(work / "naive.parquet", index=False)
    seconds = time.perf_counter() - started
    # The same sinks as the project: the same rows also inserted into the same DuckDB tables.
    import duckdb

    from every8d.warehouse import open_warehouse
    from every8d.warehouse.tables import ensure_tracking_tables

    target = work / "naive.duckdb"
    ensure_tracking_tables(open_warehouse(f"duckdb://{target}"))  # created untimed
    inserting = time.perf_counter()
    table["batch_id"] = batch_id
    table["seq"] = 1
    group = "CASE WHEN status = 100 THEN 'delivered' ELSE 'failed' END"
    with duckdb.connect(str(target)) as con:
        con.register("incoming", table)
        con.execute(
            "INSERT INTO every8d_messages (batch_id, mobile, seq, kind, name, sent_at, received_at, points, "
            "status, status_group, is_final, first_seen_at, updated_at, source) "
            "SELECT batch_id, mobile, seq, 'sms', name, "
            f"sent_at, received_at, points, status, {group}, TRUE, now(), now(), 'poll' FROM incoming"
        )
        con.execute(
            "INSERT INTO every8d_status_history (batch_id, mobile, seq, status, status_group, is_final, "
            "source, observed_at) "
            f"SELECT batch_id, mobile, seq, status, {group}, TRUE, 'poll', now() FROM incoming"
        )
    same_sinks = seconds + time.perf_counter() - inserting
    return {
        "rows": len(table),
        "seconds": seconds,
        "same_sinks_seconds": same_sinks,
        "http_seconds": http,
        "peak_rss_mb": peak_rss_mb(),
    }


# -- the parent: sandbox, batch, warm-up, children ---------------------------------------------------------


def make_batch(sandbox, rows: int) -> str:
    """One batch of ``rows`` distinct numbers, sent in a single many-number sendSMS call."""
    destinations = ",".join(f"09{index:08d}" for index in range(rows))
    answer = requests.post(
        sandbox.url("sendSMS"),
        data={"UID": sandbox.uid, "PWD": sandbox.pwd, "MSG": "bench", "DEST": destinations},
        timeout=600,
    )
    answer.raise_for_status()
    return answer.text.strip().split(",")[4]


def warm_up(sandbox, batch_id: str, pages: int) -> float:
    """Read every page once (untimed for both sides): the sandbox formats each line once, then caches it."""
    session = requests.Session()
    session.trust_env = False
    url = sandbox.url("getDeliveryStatus")

    def read(number: int) -> int:
        answer = session.post(
            url,
            data={"UID": sandbox.uid, "PWD": sandbox.pwd, "BID": batch_id, "PNO": str(number)},
            timeout=60,
        )
        answer.raise_for_status()
        return len(answer.content)

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        sum(pool.map(read, range(1, pages + 1)))
    return time.perf_counter() - started


def child(arguments: list[str], env: dict[str, str]) -> dict:
    command = [sys.executable, __file__, *arguments]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins"), **env},
    )
    if done.returncode != 0:
        raise SystemExit(f"{arguments[1]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, help="rows (a multiple of 1000 is best)")
    parser.add_argument("--concurrency", type=int, default=2, help="status pages the project fetches at once")
    parser.add_argument("--phase", choices=["project", "naive", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--project-work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--batch-id", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    pages = -(-rows // PAGE)

    if args.phase == "project":
        print(json.dumps(run_project(args.work, args.batch_id, args.concurrency)))
        return
    if args.phase == "floor":
        print(json.dumps(run_floor(args.project_work, args.work)))
        return
    if args.phase == "naive":
        uid, pwd = os.environ["EVERY8D_BENCH_UID"], os.environ["EVERY8D_BENCH_PWD"]
        print(json.dumps(run_naive(args.work, args.base_url, uid, pwd, args.batch_id, pages)))
        return

    from every8d.sandbox import SandboxServer

    memory_limit = os.environ.get(ENV_MEMORY_LIMIT) or DUCKDB_MEMORY_LIMIT

    with (
        tempfile.TemporaryDirectory(prefix="every8d-bench-ingest-") as folder,
        SandboxServer(frozen_clock=True, record=False, credit=rows * 2) as server,
    ):
        base = Path(folder)
        project_dir, naive_dir, floor_dir = base / "project", base / "naive", base / "floor"
        for path in (project_dir, naive_dir, floor_dir):
            path.mkdir()
        sandbox = server.client(timeout=600)  # moving the clock of a 1M batch takes a while
        started = time.perf_counter()
        batch_id = make_batch(sandbox, rows)
        sandbox.advance(3600)
        print(f"sandbox batch of {rows} messages in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        cold = warm_up(sandbox, batch_id, pages)
        print(f"warm-up: {pages} pages read once in {cold:.1f}s (cold sandbox, 2 at a time)", file=sys.stderr)

        common = ["--batch-id", batch_id, "--rows", str(rows), "--concurrency", str(args.concurrency)]
        project = child(
            ["--phase", "project", "--work", str(project_dir), *common],
            {"AIRFLOW_CONN_EVERY8D_DEFAULT": sandbox.connection_json(), ENV_MEMORY_LIMIT: memory_limit},
        )
        naive = child(
            ["--phase", "naive", "--work", str(naive_dir), *common, "--base-url", server.base_url],
            {"EVERY8D_BENCH_UID": sandbox.uid, "EVERY8D_BENCH_PWD": sandbox.pwd},
        )
        floor = child(
            ["--phase", "floor", "--work", str(floor_dir), "--project-work", str(project_dir), *common],
            {ENV_MEMORY_LIMIT: memory_limit},
        )
        if project["rows"] != rows or naive["rows"] != rows:
            raise SystemExit(
                f"row counts differ: project {project['rows']}, naive {naive['rows']}, want {rows}"
            )

    print(
        f"project: {project['seconds']:.2f}s = {project['sync_seconds']:.2f}s sync "
        f"({project['fetch_seconds']:.2f}s "
        f"reading, parsing and spooling pages over HTTP, "
        f"{project['merge_seconds']:.2f}s merging into DuckDB) "
        f"+ {project['seconds'] - project['sync_seconds']:.2f}s Parquet export; peak RSS "
        f"{project['peak_rss_mb']:.0f} MB, of which {project['baseline_rss_mb']:.0f} MB "
        f"is the process after its "
        f"imports (Airflow SDK, pyarrow, pandas, DuckDB)\n"
        f"naive:   {naive['seconds']:.2f}s, of which {naive['http_seconds']:.2f}s in HTTP calls; peak RSS "
        f"{naive['peak_rss_mb']:.0f} MB\n"
        f"both sides read every page over HTTP from the same warm sandbox\n"
        f"floor:   {floor['seconds']:.2f}s just to store the final rows once in DuckDB "
        f"({floor['duckdb_seconds']:.2f}s, "
        f"CREATE TABLE AS from memory) and once as Parquet ({floor['parquet_seconds']:.2f}s), "
        f"no HTTP, no parsing: "
        f"no pipeline with these sinks can beat {naive['seconds'] / floor['seconds']:.2f}x "
        f"the naive loop here",
        file=sys.stderr,
    )
    speedup = naive["seconds"] / project["seconds"]
    met = speedup >= 5 and project["peak_rss_mb"] <= 300
    print(
        f"issue 4 goal (speedup >= 5, peak RSS <= 300 MB): speedup {speedup:.2f}, peak RSS "
        f"{project['peak_rss_mb']:.0f} MB: {'met' if met else 'NOT met'}",
        file=sys.stderr,
    )
    result = {
        "bench": "ingest",
        "rows": rows,
        "pages": pages,
        "seconds": round(project["seconds"], 3),
        "naive_seconds": round(naive["seconds"], 3),
        # The naive loop filling the same sinks as the project (Parquet and the same DuckDB tables).
        "naive_same_sinks_seconds": round(naive["same_sinks_seconds"], 3),
        "speedup_same_sinks": round(naive["same_sinks_seconds"] / project["seconds"], 2),
        "speedup": round(speedup, 2),
        "rows_per_s": round(rows / project["seconds"]),
        "naive_rows_per_s": round(rows / naive["seconds"]),
        "peak_rss_mb": round(project["peak_rss_mb"], 1),
        "baseline_rss_mb": round(project["baseline_rss_mb"], 1),
        "naive_peak_rss_mb": round(naive["peak_rss_mb"], 1),
        "naive_http_seconds": round(naive["http_seconds"], 3),
        "sync_seconds": round(project["sync_seconds"], 3),
        "fetch_seconds": project["fetch_seconds"],
        "merge_seconds": project["merge_seconds"],
        "export_seconds": round(project["seconds"] - project["sync_seconds"], 3),
        "floor_seconds": round(floor["seconds"], 3),
        "speedup_ceiling": round(naive["seconds"] / floor["seconds"], 2),
        "concurrency": args.concurrency,
        "duckdb_memory_limit": memory_limit,
        "http_included": True,
        "sandbox_warm_up_seconds": round(cold, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
