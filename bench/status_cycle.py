"""Benchmark: one full status pass over many open batches, in shards, versus a naive loop.

A sandbox gateway (its own process, answering every request after
``--latency-ms``, 50 by default, to stand in for a remote gateway) gets
``--batches`` batches of ``--messages`` messages (one sendSMS call each), its
clock is moved on so every status is final, and every page is read once,
untimed, so both sides meet a warm sandbox.  Then:

- project: what one run of ``every8d_delivery_status`` does, with its real
  task functions: ``plan_shards`` (in this process), then every shard in a
  child process of its own, all at once (as the pool lets the shard task
  instances run), each ``sync_status_shard`` (batches fetched 32 at a time,
  replies too, merged as they arrive into one DuckDB file, messages + history +
  batch bookkeeping, group commits), then ``export_parquet``.  ``seconds``
  runs from the plan to the end of the export, child start-up and imports
  included.
- naive: what a user would write: one request after another, ``pandas.read_csv``
  per page, times converted, ``concat``, ``to_parquet``, and an insert of the
  same rows into the same DuckDB tables (messages and history).

``peak_rss_mb`` is the largest peak RSS among the shard processes,
``baseline_rss_mb`` that process after its imports (Airflow's included).
``task_instances`` counts the pass's task instances (merge_pushes, plan_shards,
the shards, summarize, export_parquet).  Last line: one JSON object.

    .venv/bin/python bench/status_cycle.py            # 1,000 batches x 1,000 messages
    .venv/bin/python bench/status_cycle.py --quick    # 100 x 1,000
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
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))

from memory import peak_rss_mb, rss_mb  # noqa: E402  (bench/ is on sys.path as the script's folder)

FIXED_TASKS = 4  # merge_pushes, plan_shards, summarize, export_parquet
ENV_MEMORY_LIMIT = "AIRFLOW__EVERY8D__DUCKDB_MEMORY_LIMIT"
DUCKDB_MEMORY_LIMIT = "96MB"
#: One DuckDB thread: on 2 cores shared with 32 fetch threads and the sandbox, faster and ~15 MB less.
ENV_THREADS = "AIRFLOW__EVERY8D__DUCKDB_THREADS"
DUCKDB_THREADS = "1"


# -- children ---------------------------------------------------------------------------------------


def run_shard(shard: int, shards: int) -> dict:
    """One shard task instance, as the DAG's ``sync_shard`` task runs it."""
    import airflow.sdk  # noqa: F401  (a task process has the SDK loaded)
    import duckdb  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow

    import every8d.hooks.every8d
    import every8d.tracking.shards  # noqa: F401
    from every8d.pipelines import delivery_status as tasks

    baseline = rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    result = tasks.sync_status_shard({}, {"shard": shard, "shards": shards})
    # Where the peak comes from: Arrow's own pool (parsing, spools, staged groups) is one part.
    arrow_peak = pyarrow.default_memory_pool().max_memory() / 2**20
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        **result,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "arrow_peak_mb": arrow_peak,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_before,
    }


def run_naive(work: Path, base_url: str, uid: str, pwd: str, batch_ids: list[str], per_batch: int) -> dict:
    import io

    import duckdb
    import pandas as pd

    from every8d.warehouse import open_warehouse
    from every8d.warehouse.tables import ensure_tracking_tables

    target = work / "naive.duckdb"
    ensure_tracking_tables(open_warehouse(f"duckdb://{target}"))  # the same tables, created untimed
    session = requests.Session()
    url = f"{base_url}/API21/HTTP/getDeliveryStatus.ashx"
    pages = -(-per_batch // 1000)
    started = time.perf_counter()
    frames = []
    for batch_id in batch_ids:
        for number in range(1, pages + 1):
            answer = session.post(
                url, data={"UID": uid, "PWD": pwd, "BID": batch_id, "PNO": str(number)}, timeout=60
            )
            answer.raise_for_status()
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
            frame["batch_id"] = batch_id
            frame["seq"] = range(len(frame))
            frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.to_parquet(work / "naive.parquet", index=False)
    with duckdb.connect(str(target)) as con:
        con.register("incoming", table)
        con.execute(
            "INSERT INTO every8d_messages (batch_id, mobile, seq, kind, name, sent_at, received_at, points, "
            "status, status_group, is_final, first_seen_at, updated_at, source) "
            "SELECT batch_id, mobile, seq, 'sms', name, sent_at, received_at, points, status, "
            "CASE WHEN status = 100 THEN 'delivered' ELSE 'failed' END, TRUE, now(), now(), 'poll' "
            "FROM incoming"
        )
        con.execute(
            "INSERT INTO every8d_status_history (batch_id, mobile, seq, status, status_group, is_final, "
            "source, observed_at) "
            "SELECT batch_id, mobile, seq, status, CASE WHEN status = 100 THEN 'delivered' "
            "ELSE 'failed' END, TRUE, 'poll', now() FROM incoming"
        )
        rows = con.execute("SELECT count(*) FROM every8d_messages").fetchall()[0][0]
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


# -- the parent ----------------------------------------------------------------------------------------


def make_batches(sandbox, batches: int, per_batch: int) -> list[str]:
    """``batches`` batches of distinct numbers, one sendSMS call each, 8 calls at a time."""
    session = requests.Session()
    session.trust_env = False

    def send(index: int) -> str:
        first = index * per_batch
        destinations = ",".join(f"09{first + k:08d}" for k in range(per_batch))
        answer = session.post(
            sandbox.url("sendSMS"),
            data={"UID": sandbox.uid, "PWD": sandbox.pwd, "MSG": "bench", "DEST": destinations},
            timeout=600,
        )
        answer.raise_for_status()
        return answer.text.strip().split(",")[4]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(send, range(batches)))


def register_open(warehouse, batch_ids: list[str], per_batch: int) -> None:
    """Register ``batch_ids`` as the bench campaign's open SMS batches, sent an hour ago."""
    from every8d.tracking.batches import register_batches

    sent_at = datetime.now(UTC) - timedelta(hours=1)
    batch = {"campaign_id": "bench", "kind": "sms", "sent_at": sent_at, "recipients": per_batch}
    register_batches(warehouse, [{"batch_id": b, **batch} for b in batch_ids])


def warm_up(sandbox, batch_ids: list[str], per_batch: int) -> None:
    session = requests.Session()
    session.trust_env = False
    pages = -(-per_batch // 1000)

    def read(batch_id: str) -> None:
        for number in range(1, pages + 1):
            session.post(
                sandbox.url("getDeliveryStatus"),
                data={"UID": sandbox.uid, "PWD": sandbox.pwd, "BID": batch_id, "PNO": str(number)},
                timeout=60,
            ).raise_for_status()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(read, batch_ids))


def child(arguments: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins"), **env},
    )


def result_of(process: subprocess.Popen, what: str) -> dict:
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{what} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 batches instead of 1,000")
    parser.add_argument("--batches", type=int)
    parser.add_argument("--messages", type=int, default=1000, help="messages per batch")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the sandbox's delay per request")
    parser.add_argument("--shards", type=int, help="task instances polling (default: what plan_shards picks)")
    parser.add_argument("--skip-naive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["shard", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--of", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "shard":
        print(json.dumps(run_shard(args.shard, args.of)))
        return
    if args.phase == "naive":
        ids = json.loads((args.work / "batches.json").read_text())
        print(
            json.dumps(
                run_naive(
                    args.work,
                    args.base_url,
                    os.environ["EVERY8D_BENCH_UID"],
                    os.environ["EVERY8D_BENCH_PWD"],
                    ids,
                    args.messages,
                )
            )
        )
        return

    from every8d.pipelines import delivery_status as tasks
    from every8d.sandbox import SandboxServer
    from every8d.warehouse import open_warehouse

    batches = args.batches or (100 if args.quick else 1000)
    messages = batches * args.messages
    memory_limit = os.environ.get(ENV_MEMORY_LIMIT) or DUCKDB_MEMORY_LIMIT
    threads = os.environ.get(ENV_THREADS) or DUCKDB_THREADS
    with (
        tempfile.TemporaryDirectory(prefix="every8d-bench-cycle-") as folder,
        SandboxServer(
            frozen_clock=True, record=False, credit=messages * 2, latency_ms=args.latency_ms
        ) as server,
    ):
        work = Path(folder)
        sandbox = server.client(timeout=600)
        started = time.perf_counter()
        ids = make_batches(sandbox, batches, args.messages)
        sandbox.advance(3600)
        warm_up(sandbox, ids, args.messages)
        print(
            f"sandbox: {batches} batches x {args.messages} messages made and read once in "
            f"{time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
        target = f"duckdb://{work / 'every8d.duckdb'}"
        env = {
            "AIRFLOW_CONN_EVERY8D_DEFAULT": sandbox.connection_json(),
            "AIRFLOW__EVERY8D__WAREHOUSE": target,
            "AIRFLOW__EVERY8D__PARQUET_ROOT": str(work / "parquet"),
            ENV_MEMORY_LIMIT: memory_limit,
            ENV_THREADS: threads,
        }
        if args.shards:
            env["AIRFLOW__EVERY8D__STATUS_SHARDS"] = str(args.shards)
        os.environ.update(env)
        register_open(open_warehouse(target), ids, args.messages)

        started = time.perf_counter()
        tasks.merge_pushes({}, None)
        plan = tasks.plan_shards({})
        spawned = time.perf_counter()
        children = [
            child(["--phase", "shard", "--shard", str(p["shard"]), "--of", str(p["shards"])], env)
            for p in plan
        ]
        shards = [result_of(process, f"shard {n}") for n, process in enumerate(children)]
        shards_done = time.perf_counter()
        exported = tasks.export_parquet({})
        seconds = time.perf_counter() - started
        phases = {  # where the seconds go
            "plan_seconds": round(spawned - started, 2),
            "shard_process_seconds": round(shards_done - spawned, 2),
            "shard_sync_seconds": round(max(s["seconds"] for s in shards), 2),
            "fetch_seconds_summed": round(sum(s["fetch_seconds"] for s in shards), 2),
            "shard_cpu_seconds": round(sum(s["cpu_seconds"] for s in shards), 2),
            "export_seconds": round(time.perf_counter() - shards_done, 2),
            **{  # the merging thread's seconds by phase, summed over merges and shards
                f"merge_{name}_seconds": round(sum(s["phases"].get(name, 0.0) for s in shards), 2)
                for name in sorted({name for s in shards for name in s["phases"]})
            },
        }
        with open_warehouse(target) as warehouse:
            rows = warehouse.query_arrow("SELECT count(*) AS n FROM every8d_messages").column("n")[0].as_py()
            still_open = (
                warehouse.query_arrow("SELECT count(*) AS n FROM every8d_batches WHERE state = 'open'")
                .column("n")[0]
                .as_py()
            )
        if rows != messages or still_open:
            raise SystemExit(
                f"project: {rows} message rows (want {messages}), {still_open} batches still open"
            )
        print(
            f"project: {seconds:.1f}s for {batches} batches in {len(plan)} shard(s) "
            f"({sum(s['merges'] for s in shards)} merges, "
            f"{sum(s['merge_seconds'] for s in shards):.1f}s merging), "
            f"Parquet {exported['rows']} rows; shard peak RSS {max(s['peak_rss_mb'] for s in shards):.0f} MB "
            f"(after imports {max(s['baseline_rss_mb'] for s in shards):.0f} MB)",
            file=sys.stderr,
        )

        naive = {"seconds": float("nan"), "peak_rss_mb": float("nan"), "rows": messages}
        if not args.skip_naive:
            (work / "naive").mkdir()
            (work / "naive" / "batches.json").write_text(json.dumps(ids))
            naive = result_of(
                child(
                    [
                        "--phase",
                        "naive",
                        "--work",
                        str(work / "naive"),
                        "--messages",
                        str(args.messages),
                        "--base-url",
                        server.base_url,
                    ],
                    {"EVERY8D_BENCH_UID": sandbox.uid, "EVERY8D_BENCH_PWD": sandbox.pwd},
                ),
                "naive",
            )
            if naive["rows"] != messages:
                raise SystemExit(f"naive: {naive['rows']} rows, want {messages}")
            print(
                f"naive:   {naive['seconds']:.1f}s, peak RSS {naive['peak_rss_mb']:.0f} MB", file=sys.stderr
            )

    peak = max(s["peak_rss_mb"] for s in shards)
    baseline = max(s["baseline_rss_mb"] for s in shards)
    speedup = naive["seconds"] / seconds
    load = os.getloadavg()[0]
    print(
        f"goal (<= 300 s, <= 10 task instances, speedup >= 5, peak RSS <= baseline + 150 MB): "
        f"{seconds:.1f}s, "
        f"{FIXED_TASKS + len(plan)} task instances, speedup {speedup:.2f}, {peak:.0f} MB peak over "
        f"{baseline:.0f} MB baseline; load average {load:.2f}",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "bench": "status_cycle",
                "batches": batches,
                "messages": messages,
                "latency_ms": args.latency_ms,
                "seconds": round(seconds, 2),
                "naive_seconds": round(naive["seconds"], 2),
                "speedup": round(speedup, 2),
                "peak_rss_mb": round(peak, 1),
                "baseline_rss_mb": round(baseline, 1),
                "task_instances": FIXED_TASKS + len(plan),
                "shards": len(plan),
                "merges": sum(s["merges"] for s in shards),
                "merge_seconds": round(sum(s["merge_seconds"] for s in shards), 2),
                "naive_peak_rss_mb": round(naive["peak_rss_mb"], 1),
                "arrow_peak_mb": round(max(s["arrow_peak_mb"] for s in shards), 1),
                **phases,
                "duckdb_memory_limit": memory_limit,
                "duckdb_threads": threads,
                "load_average": round(load, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
