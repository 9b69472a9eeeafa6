"""Test DAG: the batch sensor, deferred, for the batch id given in the run's conf."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG

from every8d.sensors.batch import Every8dBatchSensor

with DAG(
    "every8d_test_wait_for_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    params={"batch_id": "", "mms": False},
):
    Every8dBatchSensor(task_id="wait", batch_id="{{ params.batch_id }}", poke_interval=0.2, timeout=60)
