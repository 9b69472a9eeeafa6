"""Benchmark: status pushes into the receiver, durably recorded, versus a naive one-write-per-push receiver.

Both receivers run as their own process on a loopback port and get the same
gateway-shaped GETs (10% exact duplicates, shuffled) from 32 keep-alive
connections (``bench/loadgen.py``, a bare asyncio HTTP client, so
the client's CPU stays small on a two-core machine):

- project: ``python -m every8d.callbacks`` (the dedicated receiver of docker-compose.yaml and
  docs/deploy.md; its figures also as ``dedicated_receiver_*``) — validate, group-commit into the
  SQLite journal (``synchronous=FULL``: each 200 is fsync'ed), then
  ``flush_journal`` into a DuckDB warehouse;
- naive: the same validation, then one DuckDB ``INSERT ... ON CONFLICT DO
  NOTHING`` per push, the warehouse file opened per push (as any writer of a
  file shared with Airflow tasks must).  Timed on a smaller sample.

- api-server: the same receiver where it is deployed, mounted in ``airflow api-server``
  (1 worker, SQLite metadata in a temporary ``AIRFLOW_HOME``), once as installed and once
  with the tuned setting of docs/deploy.md (``AIRFLOW__LOGGING__NAMESPACE_LEVELS``
  ``http.access=WARNING``: the api-server's per-request access log line is the cost).
  ``--no-api-server`` skips it.

lost = event keys sent but not in ``every8d_push_events`` after the flush;
double_counted = rows beyond one per event key there.  Latencies are client
side, per request.  Shares the machine with whatever else runs on it.

    .venv/bin/python bench/pushes.py            # 50,000 pushes (naive: 3,000)
    .venv/bin/python bench/pushes.py --quick    # 10,000 pushes (naive: 1,000)
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))

CONCURRENCY = 32
DUPLICATES = 0.1


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# -- the naive receiver (runs in its own process) ------------------------------------------------
# (No ``from __future__ import annotations`` in this file: FastAPI must see the real ``Request`` class.)

NAIVE_DDL = """CREATE TABLE IF NOT EXISTS every8d_push_events (
    batch_id VARCHAR NOT NULL, mobile VARCHAR, mr VARCHAR, status INTEGER NOT NULL,
    reported_at TIMESTAMP WITH TIME ZONE, received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    reply_text VARCHAR, event_key VARCHAR PRIMARY KEY)"""


def naive_server(db: str, token: str) -> None:
    import duckdb
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from every8d.callbacks.params import PushRejected, parse_pairs, split_query, token_values
    from every8d.callbacks.server import bind, serve

    with duckdb.connect(db) as con:
        con.execute(NAIVE_DDL)
    app = FastAPI()

    @app.get("/every8d/push")
    def push(request: Request):
        try:
            pairs = split_query(request.scope["query_string"])
            if token_values(pairs) != [token.encode()]:
                return JSONResponse({"error": "unauthorized"}, 401)
            event = parse_pairs(pairs)
        except PushRejected as error:
            return JSONResponse(error.body(), error.status_code)
        with duckdb.connect(db) as con:
            con.execute(
                "INSERT INTO every8d_push_events VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    event.batch_id,
                    event.mobile,
                    event.mr or None,
                    event.status,
                    event.reported_at,
                    event.received_at,
                    event.text if event.is_reply else None,
                    event.key,
                ],
            )
        return JSONResponse({"status": "recorded"})

    sock, url = bind("127.0.0.1", 0)
    serve(app, sock, url)


# -- driving -----------------------------------------------------------------------------------------


def start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    from every8d.callbacks.server import READY_PREFIX

    process = subprocess.Popen(
        cmd,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT / "plugins")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ready = threading.Event()
    found: list[str] = []

    def pump() -> None:
        for line in process.stdout:
            if not found and line.startswith(READY_PREFIX):
                found.append(line[len(READY_PREFIX) :].strip())
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(60) or not found:
        process.kill()
        raise RuntimeError("receiver did not start")
    return process, found[0]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure(url: str, token: str, count: int, seed: int) -> tuple[dict, set[str]]:
    from loadgen import make_pushes, run_load  # bench/ is on sys.path as the script's folder

    warm, _ = make_pushes(300, 0.0, seed=seed + 1000, user_id="warm")
    run_load(url, token, [{**p, "BatchID": "warm-" + p["BatchID"]} for p in warm], CONCURRENCY)
    pushes, keys = make_pushes(count, DUPLICATES, seed=seed)
    result = run_load(url, token, pushes, CONCURRENCY)
    figures = {
        "pushes": result.sent,
        "seconds": round(result.seconds, 3),
        "pushes_per_s": round(result.per_second),
        "p50_ms": round(result.percentile_ms(0.50), 1),
        "p99_ms": round(result.percentile_ms(0.99), 1),
        "non_200": result.sent - result.statuses.get(200, 0),
        "errors": result.errors,
    }
    return figures, keys


def lost_and_double(db: str, keys: set[str]) -> tuple[int, int]:
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT event_key, count(*) FROM every8d_push_events WHERE batch_id LIKE 'load-%' GROUP BY 1"
        ).fetchall()
    stored = dict(rows)
    lost = len(keys - stored.keys())
    double = sum(n - 1 for n in stored.values()) + len(stored.keys() - keys)
    return lost, double


def run(count: int, naive_count: int, api_count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="every8d-bench-pushes-") as folder:
        result = _run(Path(folder), count, naive_count)
        if api_count:
            for name, extra in (
                ("api_server_default", {}),
                ("api_server", {"AIRFLOW__LOGGING__NAMESPACE_LEVELS": "http.access=WARNING"}),
            ):
                figures = run_api_server(Path(folder) / name, api_count, extra)
                result.update({f"{name}_{key}": value for key, value in figures.items()})
        return result


def run_api_server(work: Path, count: int, extra_env: dict[str, str]) -> dict:
    """The receiver mounted in ``airflow api-server --workers 1``, as deployed."""
    import signal
    import socket

    import requests

    from every8d.callbacks.flush import flush_journal

    work.mkdir(parents=True)
    (work / "dags").mkdir()
    token = secrets.token_urlsafe(32)
    journal = work / "journal.sqlite3"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "PYTHONPATH": str(ROOT / "plugins"),
        "AIRFLOW_HOME": str(work),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__EVERY8D__PUSH_TOKEN": token,
        "AIRFLOW__EVERY8D__PUSH_JOURNAL": str(journal),
        **extra_env,
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    log = open(work / "api-server.log", "wb")  # noqa: SIM115  (the child process writes it; closed when it is stopped)
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # the api-server answers unknown paths with its UI page: check the body
            try:
                answer = requests.get(base + "/every8d/health", timeout=5)
                if answer.ok and answer.headers.get("content-type", "").startswith("application/json"):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"api-server did not serve the receiver; see {work / 'api-server.log'}")
            time.sleep(1)
        figures, keys = measure(base + "/every8d/push", token, count, seed=3)
        rss = peak_rss_mb(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    warehouse = work / "warehouse.duckdb"
    flush_journal(f"duckdb://{warehouse}", journal_path=journal)
    lost, double = lost_and_double(str(warehouse), keys)
    return {
        "pushes": figures["pushes"],
        "pushes_per_s": figures["pushes_per_s"],
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "non_200": figures["non_200"],
        "lost": lost,
        "double_counted": double,
        "peak_rss_mb": rss,
    }


def _run(work: Path, count: int, naive_count: int) -> dict:
    from every8d.callbacks.flush import flush_journal

    token = secrets.token_urlsafe(32)
    journal = work / "journal.sqlite3"
    env = {"AIRFLOW__EVERY8D__PUSH_TOKEN": token, "AIRFLOW__EVERY8D__PUSH_JOURNAL": str(journal)}

    process, root = start([sys.executable, "-m", "every8d.callbacks", "--port", "0"], env)
    try:
        project, keys = measure(root + "/every8d/push", token, count, seed=1)
        receiver_rss = peak_rss_mb(process.pid)
    finally:
        stop(process)
    warehouse = work / "warehouse.duckdb"
    began = time.perf_counter()
    flushed = flush_journal(f"duckdb://{warehouse}", journal_path=journal)
    flush_seconds = time.perf_counter() - began
    lost, double = lost_and_double(str(warehouse), keys)

    naive_db = work / "naive.duckdb"
    process, root = start([sys.executable, __file__, "--naive-server", str(naive_db), token], {})
    try:
        naive, naive_keys = measure(root + "/every8d/push", token, naive_count, seed=2)
    finally:
        stop(process)
    naive_lost, naive_double = lost_and_double(str(naive_db), naive_keys)

    return {
        "bench": "pushes",
        **project,
        "lost": lost,
        "double_counted": double,
        "concurrency": CONCURRENCY,
        "duplicate_share": DUPLICATES,
        "journal_rows": flushed.read,
        "flush_seconds": round(flush_seconds, 3),
        "receiver_peak_rss_mb": receiver_rss,
        # The deployment for push load (docker-compose.yaml's every8d-receiver, docs/deploy.md): this
        # same process behind the public URL's /every8d/ (the proxy hop in front is not measured here).
        "dedicated_receiver_pushes_per_s": project["pushes_per_s"],
        "dedicated_receiver_p99_ms": project["p99_ms"],
        "dedicated_receiver_lost": lost,
        "dedicated_receiver_double_counted": double,
        "naive_pushes": naive["pushes"],
        "naive_pushes_per_s": naive["pushes_per_s"],
        "naive_non_200": naive["non_200"],
        "naive_p99_ms": naive["p99_ms"],
        "naive_lost": naive_lost,
        "naive_double_counted": naive_double,
        "speedup": round(project["pushes_per_s"] / max(naive["pushes_per_s"], 1), 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 pushes, under a minute")
    parser.add_argument("--pushes", type=int, default=None)
    parser.add_argument("--no-api-server", action="store_true", help="skip the api-server runs")
    parser.add_argument("--naive-server", nargs=2, metavar=("DB", "TOKEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        naive_server(*args.naive_server)
        return
    count = args.pushes or (10_000 if args.quick else 50_000)
    naive_count = 1_000 if args.quick else 3_000
    api_count = 0 if args.no_api_server else (2_000 if args.quick else 10_000)
    result = run(count, naive_count, api_count)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
