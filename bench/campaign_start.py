"""Benchmark: how long a campaign waits to start while a status pass runs, under a real scheduler.

The components run as processes (as tests/topology does, with LocalExecutor):
``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` on a
Postgres metadata database, the warehouse in a Postgres database of its own
(2 status shards), ``parallelism`` 6 and the ``every8d_status`` pool of 2
slots, as docker-compose.yaml sizes them.  ``--batches`` open batches are
registered and every status request is slowed down (the sandbox's ``slow``
fault, ``--status-delay`` seconds each) so the pass lasts long enough.  Then:

1. ``every8d_delivery_status`` is unpaused through the REST API (its scheduled
   run starts) and the bench waits until its shard tasks run;
2. ``every8d_send_campaign`` is triggered through the REST API (as the UI does)
   with a small audience;
3. the start of its first task (``stage_audience``) and of its send task
   (``send_sms``, after ``choose_kind``, ``plan_sms`` and ``confirm_sms``) are
   read from the task instances, as seconds after the trigger.

``status_pass_running_at_send`` says whether a shard was still running when
the send task started (otherwise the figure proves nothing and the bench
fails).  The goal (issue 14): the campaign's task starts within 30 s.  There is
no naive baseline in this one: the thing measured is a wait, the scheduler's.
Last line: one JSON object.  Takes a few minutes (the cluster's start included).

    .venv/bin/python bench/campaign_start.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))

from status_cycle import make_batches, register_open  # noqa: E402  (bench/ is on sys.path as the script's folder)

PG = "postgres@127.0.0.1:5432"
GOAL_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_admin(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", options="-c statement_timeout=60000"
    )
    connection.autocommit = True
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class Components:
    """Airflow's components as processes, each leading its own session (stopped as a group)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.processes = env, logs, {}

    def start(self, name: str, *args: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115  (the child process writes it; closed when it is stopped)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def instances(client: requests.Session, api: str, dag_id: str, run_id: str) -> list[dict]:
    answer = client.get(f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", timeout=30)
    answer.raise_for_status()
    return answer.json()["task_instances"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000, help="open batches the status pass polls")
    parser.add_argument("--messages", type=int, default=100, help="messages per batch")
    parser.add_argument("--status-delay", type=float, default=3.0, help="seconds each status request takes")
    parser.add_argument("--recipients", type=int, default=200, help="the campaign's audience")
    args = parser.parse_args()

    from every8d.sandbox import SandboxServer
    from every8d.warehouse import open_warehouse

    tag = uuid.uuid4().hex[:8]
    meta, warehouse_db = f"every8d_bench_meta_{tag}", f"every8d_bench_wh_{tag}"
    pg_admin(f"CREATE DATABASE {meta}")
    pg_admin(f"CREATE DATABASE {warehouse_db}")
    folder = Path(tempfile.mkdtemp(prefix="every8d-bench-campaign-start-"))
    (folder / "logs").mkdir()
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    warehouse_conn = json.dumps(
        {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": 5432,
            "login": "postgres",
            "schema": warehouse_db,
        }
    )
    components = None
    try:
        with SandboxServer(
            frozen_clock=True, record=False, credit=args.batches * args.messages * 4
        ) as server:
            sandbox = server.client(timeout=600)
            started = time.perf_counter()
            ids = make_batches(sandbox, args.batches, args.messages)
            sandbox.advance(3600)
            os.environ["AIRFLOW_CONN_EVERY8D_WAREHOUSE"] = warehouse_conn
            with open_warehouse("airflow://every8d_warehouse") as warehouse:
                register_open(warehouse, ids, args.messages)
            sandbox.inject_fault("getDeliveryStatus", "slow", count=-1, delay=args.status_delay)
            print(
                f"sandbox: {args.batches} batches registered in {time.perf_counter() - started:.0f}s",
                file=sys.stderr,
            )
            audience = folder / "audience.csv"
            with open(audience, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["mobile", "name"])
                writer.writerows([f"0915{i:06d}", f"member{i}"] for i in range(args.recipients))

            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EVERY8D_"))},
                "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
                "AIRFLOW_HOME": str(folder / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "6",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{PG}/{meta}",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
                "AIRFLOW__API__BASE_URL": api,
                "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW_CONN_EVERY8D_DEFAULT": sandbox.connection_json(),
                "AIRFLOW_CONN_EVERY8D_WAREHOUSE": warehouse_conn,
                "AIRFLOW__EVERY8D__WAREHOUSE": "airflow://every8d_warehouse",
                "AIRFLOW__EVERY8D__PARQUET_ROOT": str(folder / "parquet"),
                "AIRFLOW__EVERY8D__STAGING_ROOT": str(folder / "staging"),
                "AIRFLOW__EVERY8D__STATUS_POOL": "every8d_status",
            }
            (folder / "airflow").mkdir()
            subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=env,
                check=True,
                capture_output=True,
                timeout=600,
            )
            subprocess.run(
                [sys.executable, "-m", "airflow", "pools", "set", "every8d_status", "2", "status sync"],
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
            components = Components(env, folder / "logs")
            components.start("api-server", "api-server", "--port", str(api_port), "--workers", "1")
            components.start("scheduler", "scheduler")
            components.start("dag-processor", "dag-processor")
            components.start("triggerer", "triggerer")

            def api_up() -> bool:
                try:
                    return requests.get(f"{api}/api/v2/monitor/health", timeout=5).status_code == 200
                except requests.RequestException:
                    return False

            wait_for("the api-server", api_up, 300)
            client = requests.Session()
            client.trust_env = False
            client.headers["Authorization"] = (
                "Bearer " + client.get(f"{api}/auth/token", timeout=30).json()["access_token"]
            )
            for dag_id in ("every8d_delivery_status", "every8d_send_campaign"):
                wait_for(
                    f"{dag_id} parsed",
                    lambda d=dag_id: client.get(f"{api}/api/v2/dags/{d}", timeout=30).ok,
                    300,
                )

            # 1. The status pass (unpausing starts the scheduled one; a manual run would wait behind it,
            #    max_active_runs=1), and its shards running.
            assert client.patch(
                f"{api}/api/v2/dags/every8d_delivery_status", json={"is_paused": False}, timeout=30
            ).ok

            def shard_instances() -> list[dict]:
                return [
                    ti
                    for ti in instances(client, api, "every8d_delivery_status", "~")
                    if ti["task_id"] == "sync_shard"
                ]

            running = wait_for(
                "the status shards to run",
                lambda: [ti for ti in shard_instances() if ti["state"] == "running"],
                300,
                every=0.5,
            )
            pass_started = min(parse_time(ti["start_date"]) for ti in running)
            status_run = running[0]["dag_run_id"]

            # 2. The campaign, as the UI triggers it.
            assert client.patch(
                f"{api}/api/v2/dags/every8d_send_campaign", json={"is_paused": False}, timeout=30
            ).ok
            conf = {"audience": str(audience), "message": "$name 您好", "dry_run": False, "max_points": None}
            triggered = datetime.now(UTC)
            answer = client.post(
                f"{api}/api/v2/dags/every8d_send_campaign/dagRuns",
                json={"logical_date": None, "conf": conf},
                timeout=30,
            )
            answer.raise_for_status()
            campaign_run = answer.json()["dag_run_id"]

            def started_at(task_id: str):
                def check():
                    for ti in instances(client, api, "every8d_send_campaign", campaign_run):
                        if ti["task_id"] == task_id and ti["start_date"]:
                            return parse_time(ti["start_date"])
                        if ti["task_id"] == task_id and ti["state"] in (
                            "upstream_failed",
                            "failed",
                            "skipped",
                        ):
                            raise SystemExit(f"{task_id} ended {ti['state']}; see {folder / 'logs'}")
                    return None

                return check

            first = wait_for("the campaign's first task", started_at("stage_audience"), 600, every=0.5)
            send = wait_for("the campaign's send task", started_at("send_sms"), 600, every=0.5)
            shards = [ti for ti in shard_instances() if ti["dag_run_id"] == status_run]
            overlap = any(
                ti["state"] == "running" or (parse_time(ti["end_date"]) or send) > send for ti in shards
            )
            wait_for(
                "the campaign run",
                lambda: (
                    client.get(
                        f"{api}/api/v2/dags/every8d_send_campaign/dagRuns/{campaign_run}", timeout=30
                    ).json()["state"]
                    in ("success", "failed")
                ),
                600,
                every=2,
            )
            campaign_state = client.get(
                f"{api}/api/v2/dags/every8d_send_campaign/dagRuns/{campaign_run}", timeout=30
            ).json()["state"]
    finally:
        if components is not None:
            components.stop()
        for database in (meta, warehouse_db):
            pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    first_s = (first - triggered).total_seconds()
    send_s = (send - triggered).total_seconds()
    load = os.getloadavg()[0]
    print(
        f"campaign triggered {(triggered - pass_started).total_seconds():.1f}s into a status pass of "
        f"{len(shards)} shard(s) over {args.batches} batches; first task started after {first_s:.1f}s, "
        f"send_sms after {send_s:.1f}s (goal <= {GOAL_SECONDS:.0f}s); status pass still running at the send: "
        f"{overlap}; campaign {campaign_state}; load average {load:.2f}",
        file=sys.stderr,
    )
    if not overlap:
        raise SystemExit("the status pass ended before the send started: raise --batches or --status-delay")
    print(
        json.dumps(
            {
                "bench": "campaign_start",
                "executor": "LocalExecutor",
                "parallelism": 6,
                "status_pool_slots": 2,
                "batches": args.batches,
                "status_delay_s": args.status_delay,
                "status_shards": len(shards),
                "first_task_start_s": round(first_s, 1),
                "send_task_start_s": round(send_s, 1),
                "goal_s": GOAL_SECONDS,
                "status_pass_running_at_send": overlap,
                "campaign_state": campaign_state,
                "load_average": round(load, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
