"""The production shape as real processes: a campaign through the REST API on a Celery cluster.

api-server, scheduler, dag-processor, triggerer and two Celery workers run as
processes (each in its own session), with Redis as the broker (its own DB
number), Postgres for the metadata and for the warehouse (databases of their
own), and the sandbox gateway pushing statuses to the api-server's push
endpoint.  The campaign is triggered the way the UI does (a JWT from
``/auth/token``, then ``POST /api/v2/dags/.../dagRuns``); the worker running
the send is killed with everything in its session (a node loss) in the middle
of the send.  Then: the task retried by itself and finished; the sandbox
holds each recipient once (0 duplicates, 0 lost); the status tables equal the
sandbox's own record; no process is left behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest
import requests

from every8d.sandbox import SandboxServer

REPO = Path(__file__).resolve().parents[2]
PG = "postgres@127.0.0.1:5432"
REDIS_DB = 14  # this test's own Redis database
RECIPIENTS = 3000
CHUNK = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def pg_admin(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


class Cluster:
    """The components as processes, each the leader of its own session."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "wb") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def session(self, leader: int) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == leader:
                    found.append(process)
            except (ProcessLookupError, psutil.Error, PermissionError):
                continue
        return found

    def kill_session(self, leader: int) -> int:
        """SIGKILL every process of a session (what losing the node does to a worker)."""
        victims = self.session(leader)
        for process in victims:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGKILL)
        return len(victims)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(deadline - time.monotonic(), 0.1))
        for process in self.processes.values():
            self.kill_session(process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)

    def log_tail(self, name: str, size: int = 3000) -> str:
        return (self.logs / f"{name}.log").read_bytes()[-size:].decode("utf-8", "replace")


def leftovers(home: str) -> list[str]:
    """Processes still running with this test's AIRFLOW_HOME."""
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if process.environ().get("AIRFLOW_HOME") == home:
                found.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except (psutil.Error, PermissionError):
            continue
    return found


def wait_for(what: str, check, timeout: float, every: float = 1.0, cluster: Cluster | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    tails = (
        ""
        if cluster is None
        else "\n".join(f"--- {name}\n{cluster.log_tail(name)}" for name in cluster.processes)
    )
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def topology(tmp_path):
    pytest.importorskip(
        "airflow.providers.celery", reason="the celery extra (apache-airflow-providers-celery)"
    )
    if not reachable("127.0.0.1", 5432) or not reachable("127.0.0.1", 6379):
        pytest.fail("this test needs Postgres on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")
    tag = uuid.uuid4().hex[:8]
    meta, warehouse = f"every8d_topo_meta_{tag}", f"every8d_topo_wh_{tag}"
    pg_admin(f"CREATE DATABASE {meta}")
    pg_admin(f"CREATE DATABASE {warehouse}")
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
    home = tmp_path / "airflow"
    home.mkdir()
    (tmp_path / "logs").mkdir()
    api = free_port()
    token = "topo-" + uuid.uuid4().hex
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EVERY8D_"))},
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "6",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{PG}/{meta}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG}/{meta}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api}",
        "AIRFLOW__API__PORT": str(api),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW_CONN_EVERY8D_WAREHOUSE": json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": 5432,
                "login": "postgres",
                "schema": warehouse,
            }
        ),
        "AIRFLOW__EVERY8D__WAREHOUSE": "airflow://every8d_warehouse",
        "AIRFLOW__EVERY8D__PARQUET_ROOT": str(tmp_path / "parquet"),
        "AIRFLOW__EVERY8D__STAGING_ROOT": str(tmp_path / "staging"),
        "AIRFLOW__EVERY8D__PUSH_TOKEN": token,
        "AIRFLOW__EVERY8D__STATUS_POOL": "every8d_status",
        "AIRFLOW__EVERY8D__PUSH_JOURNAL": str(tmp_path / "push-journal.sqlite3"),
    }
    cluster = Cluster(env, tmp_path / "logs")
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    pools = subprocess.run(
        [sys.executable, "-m", "airflow", "pools", "set", "every8d_status", "2", "status sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pools.returncode == 0, pools.stderr[-3000:]
    try:
        yield {
            "cluster": cluster,
            "env": env,
            "api": f"http://127.0.0.1:{api}",
            "token": token,
            "home": str(home),
            "warehouse": warehouse,
            "tmp": tmp_path,
        }
    finally:
        cluster.stop()
        left = leftovers(str(home))
        for line in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
        for database in (meta, warehouse):
            pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        assert not left, f"processes left behind: {left}"


def rest(base: str):
    session = requests.Session()
    session.trust_env = False
    token = session.get(f"{base}/auth/token", timeout=30).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


@pytest.mark.timeout(900)
def test_a_campaign_survives_a_killed_worker_on_a_celery_cluster(topology, monkeypatch):
    cluster, env, api = topology["cluster"], topology["env"], topology["api"]
    with SandboxServer(latency_ms=250) as server:  # slow enough to kill the send in the middle
        sandbox = server.client(timeout=120)
        conn = sandbox.connection_json()
        cluster.env["AIRFLOW_CONN_EVERY8D_DEFAULT"] = conn
        sandbox.set_push(f"{api}/every8d/push?token={topology['token']}")
        audience = topology["tmp"] / "audience.csv"
        with open(audience, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["mobile", "name"])
            writer.writerows([f"0913{i:06d}", f"member{i}"] for i in range(RECIPIENTS))

        cluster.start("api-server", "api-server", "--port", api.rsplit(":", 1)[1], "--workers", "1")
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        cluster.start("triggerer", "triggerer")
        workers = {
            name: cluster.start(
                name,
                "celery",
                "worker",
                "--concurrency",
                "2",
                "--celery-hostname",
                f"{name}@%h",
                env={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
            )
            for name in ("w1", "w2")
        }

        def api_up():
            try:
                return requests.get(f"{api}/api/v2/monitor/health", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for("the api-server", api_up, 180, cluster=cluster)
        client = rest(api)
        for dag_id in ("every8d_send_campaign", "every8d_delivery_status"):
            wait_for(
                f"{dag_id} parsed",
                lambda d=dag_id: client.get(f"{api}/api/v2/dags/{d}", timeout=30).ok,
                180,
                cluster=cluster,
            )
            assert client.patch(f"{api}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30).ok

        conf = {
            "audience": str(audience),
            "message": "$name 您好，本週會員日",
            "dry_run": False,
            "max_points": None,
            "chunk_size": CHUNK,
            "concurrency": 1,
        }
        answer = client.post(
            f"{api}/api/v2/dags/every8d_send_campaign/dagRuns",
            json={"logical_date": None, "conf": conf},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        run_id = answer.json()["dag_run_id"]
        instances = f"{api}/api/v2/dags/every8d_send_campaign/dagRuns/{run_id}/taskInstances"

        def send_instance():
            for ti in client.get(instances, timeout=30).json()["task_instances"]:
                if ti["task_id"] == "send_sms":
                    return ti
            return None

        def sends_seen() -> int:
            return sum(1 for r in sandbox.requests() if "sendparamsms" in r["path"].lower())

        wait_for("the send to be a few chunks in", lambda: sends_seen() >= 5, 300, every=0.5, cluster=cluster)
        running = send_instance()
        assert running and running["state"] == "running" and running["pid"], running
        owner = next(
            name
            for name, process in workers.items()
            if any(p.pid == running["pid"] for p in cluster.session(process.pid))
        )
        killed = cluster.kill_session(workers[owner].pid)
        assert killed >= 2  # the worker and at least the task's processes
        sent_before_kill = sends_seen()
        assert sent_before_kill < RECIPIENTS // CHUNK, "the send finished before the kill"

        def campaign_done():
            state = client.get(f"{api}/api/v2/dags/every8d_send_campaign/dagRuns/{run_id}", timeout=30).json()
            return state["state"] if state["state"] in ("success", "failed") else None

        assert wait_for("the campaign run", campaign_done, 600, every=2, cluster=cluster) == "success", (
            cluster.log_tail("scheduler")
        )
        send = send_instance()
        assert send["state"] == "success" and send["try_number"] >= 2, send  # retried by itself

        # 0 duplicates, 0 lost at the gateway.
        messages = [m for b in sandbox.batches() for m in sandbox.messages(b["batch_id"])]
        counts = Counter(m["mobile"] for m in messages)
        assert len(counts) == RECIPIENTS and max(counts.values()) == 1

        # The status sync ran from the asset event; once every push is in, one more pass closes all.
        wait_for(
            "every status final and pushed",
            lambda: (
                sandbox.drain_pushes(30)
                and all(
                    m["status"] not in (0,)
                    for b in sandbox.batches()
                    for m in sandbox.messages(b["batch_id"])
                )
            ),
            240,
            every=3,
        )
        status_runs = client.get(f"{api}/api/v2/dags/every8d_delivery_status/dagRuns", timeout=30).json()
        assert any(r["run_type"] == "asset_triggered" for r in status_runs["dag_runs"]), status_runs
        answer = client.post(
            f"{api}/api/v2/dags/every8d_delivery_status/dagRuns", json={"logical_date": None}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        status_run = answer.json()["dag_run_id"]

        def status_done():
            state = client.get(
                f"{api}/api/v2/dags/every8d_delivery_status/dagRuns/{status_run}", timeout=30
            ).json()["state"]
            return state if state in ("success", "failed") else None

        assert wait_for("the status run", status_done, 300, every=2, cluster=cluster) == "success"

        monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_WAREHOUSE", env["AIRFLOW_CONN_EVERY8D_WAREHOUSE"])
        from every8d.warehouse import open_warehouse

        with open_warehouse("airflow://every8d_warehouse") as warehouse:
            ours = warehouse.query_arrow(
                "SELECT batch_id, mobile, status FROM every8d_messages ORDER BY batch_id, mobile"
            ).to_pylist()
            batches = {
                r["batch_id"]: r["state"]
                for r in warehouse.query_arrow("SELECT batch_id, state FROM every8d_batches").to_pylist()
            }
        assert set(batches.values()) == {"closed"}, batches
        everything = messages_of(sandbox)
        theirs = sorted(
            (m["batch_id"], m["mobile"], m["status"]) for m in everything if m["batch_id"] in batches
        )
        assert [(r["batch_id"], r["mobile"], r["status"]) for r in ours] == theirs
        # Every batch the gateway issued is tracked, including the one of the chunk in flight when the
        # worker died: the retry resolved it through the filter ("already sent") and the status DAG's push
        # step adopted its batch from the pushes (by Mr), so its statuses are in the tables too.
        unknown = {m["batch_id"] for m in everything} - set(batches)
        assert not unknown, f"{len(unknown)} batch(es) the gateway issued are not tracked"
        with open_warehouse("airflow://every8d_warehouse") as warehouse:
            adopted = warehouse.query_arrow("SELECT count(*) AS n FROM every8d_send_adopted_batches").column(
                "n"
            )
            awaiting = warehouse.query_arrow(
                "SELECT count(*) AS n FROM every8d_send_chunks WHERE state = 'awaiting_batch'"
            ).column("n")
        assert awaiting[0].as_py() == 0
        print(f"batches adopted from pushes: {adopted[0].as_py()}")


def messages_of(sandbox) -> list[dict]:
    return [
        dict(m, batch_id=b["batch_id"]) for b in sandbox.batches() for m in sandbox.messages(b["batch_id"])
    ]
