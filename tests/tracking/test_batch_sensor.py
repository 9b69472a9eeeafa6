"""The batch sensor and its deferrable trigger against the sandbox gateway."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from every8d.triggers.batch import Every8dBatchTrigger
from tests.metadata_db import copy_metadata_db
from tests.tracking.helpers import numbers, send_batch

TEST_DAGS = Path(__file__).resolve().parents[1] / "dags_tracking"


@pytest.fixture
def warehouse_for_sends(duckdb_target):
    from every8d.warehouse import open_warehouse

    return open_warehouse(duckdb_target)


def test_the_trigger_fires_only_once_every_message_is_final(every8d_conn_env, warehouse_for_sends):
    sandbox = every8d_conn_env
    sms = send_batch(sandbox, warehouse_for_sends, numbers(1500))
    mms = send_batch(sandbox, warehouse_for_sends, numbers(2), kind="mms")
    trigger = Every8dBatchTrigger(
        [{"batch_id": sms.batch_id}, {"batch_id": mms.batch_id, "mms": True}], poll_interval=0.05
    )
    path, kwargs = trigger.serialize()
    assert path == "every8d.triggers.batch.Every8dBatchTrigger"
    stored = json.dumps(kwargs)
    assert sandbox.pwd not in stored and sandbox.uid not in stored  # only the connection id is stored

    async def scenario():
        events = trigger.run()
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.6)
        assert not first.done()  # statuses are still 0: nothing fires
        await asyncio.to_thread(sandbox.advance, 3600)
        return await asyncio.wait_for(first, 20)

    event = asyncio.run(scenario())
    assert event.payload["status"] == "success"
    assert event.payload["batches"][sms.batch_id] == {"total": 1500, "listed": 1500, "final_count": 1500}
    assert event.payload["batches"][mms.batch_id]["final_count"] == 2


def test_the_trigger_reports_a_refused_batch(every8d_conn_env):
    sandbox = every8d_conn_env
    sandbox.inject_fault("getDeliveryStatus", "error", code=-100)
    trigger = Every8dBatchTrigger([{"batch_id": "no-such-batch"}], poll_interval=0.05)

    async def first_event():
        return await asyncio.wait_for(trigger.run().__anext__(), 20)

    event = asyncio.run(first_event())
    assert event.payload["status"] == "error" and "-100" in event.payload["message"]


def test_the_sensor_defers_and_completes_in_a_dag_run(
    airflow_home, every8d_conn_env, warehouse_for_sends, tmp_path
):
    """``airflow dags test`` (dag.test) on a copy of the metadata DB whose dags folder holds the test DAG."""
    sandbox = every8d_conn_env
    batch = send_batch(sandbox, warehouse_for_sends, numbers(5))
    sandbox.clear_requests()
    copy_metadata_db(airflow_home / "airflow.db", tmp_path / "airflow.db")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(TEST_DAGS),
    }
    dag_run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow",
            "dags",
            "test",
            "every8d_test_wait_for_batch",
            "-c",
            json.dumps({"batch_id": batch.batch_id}),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Let the messages become final only once the sensor has looked (and found them pending).
        deadline = time.monotonic() + 120
        while not [r for r in sandbox.requests() if r["endpoint"] == "getDeliveryStatus"]:
            if dag_run.poll() is not None:
                pytest.fail(f"the DAG run ended before the sensor polled:\n{dag_run.stdout.read()[-3000:]}")
            assert time.monotonic() < deadline, "the sensor never polled"
            time.sleep(0.1)
        sandbox.advance(3600)
        output, _ = dag_run.communicate(timeout=120)
    finally:
        if dag_run.poll() is None:
            dag_run.kill()
    assert dag_run.returncode == 0, output[-3000:]
    with sqlite3.connect(tmp_path / "airflow.db") as db:
        [(state,)] = db.execute(
            "SELECT state FROM task_instance WHERE dag_id = 'every8d_test_wait_for_batch'"
        ).fetchall()
    assert state == "success"
    polls = [r for r in sandbox.requests() if r["endpoint"] == "getDeliveryStatus"]
    assert len(polls) >= 2 and all(batch.batch_id in r["body"] for r in polls)  # poked, deferred, fired
    assert sandbox.pwd not in output


def test_the_sensor_waits_for_a_whole_campaign(every8d_conn_env, warehouse_for_sends, duckdb_target):
    from every8d.sensors.batch import Every8dBatchSensor

    sandbox = every8d_conn_env
    first = send_batch(sandbox, warehouse_for_sends, numbers(3), campaign="autumn")
    second = send_batch(sandbox, warehouse_for_sends, numbers(2, 100), kind="mms", campaign="autumn")
    sensor = Every8dBatchSensor(task_id="wait", campaign_id="autumn", warehouse=duckdb_target)
    assert sorted(b["batch_id"] for b in sensor.batches()) == sorted([first.batch_id, second.batch_id])
    assert sensor.poke({}) is False
    sandbox.advance(3600)
    assert sensor.poke({}) is True
    with pytest.raises(ValueError):
        Every8dBatchSensor(task_id="both", batch_id="b", campaign_id="c")
