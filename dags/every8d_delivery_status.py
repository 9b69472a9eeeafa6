"""Delivery status of every open EVERY8D batch, into the warehouse and Parquet.

Runs every 5 minutes and whenever a send registers new batches (the
``every8d_batches`` asset).  Each run merges push events, polls the batches
that are due (young batches every 5 minutes, hourly after an hour, daily
after a day; a batch closes when every message is final or its validity
window has passed), then rewrites the Parquet partitions that changed.

Where things go (params override environment variables):
``warehouse`` / ``EVERY8D_WAREHOUSE``, ``parquet_root`` / ``EVERY8D_PARQUET_ROOT``
(``none`` to skip), ``parquet_conn_id`` / ``EVERY8D_PARQUET_CONN_ID``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, dag, get_current_context, task

from every8d.assets import BATCHES_ASSET

MAX_PARALLEL_BATCHES = 4


def _run_time() -> datetime:
    """The run's own time, so that rerunning a run (after a crash, or by hand) writes the same rows."""
    return get_current_context()["dag_run"].run_after


@dag(
    dag_id="every8d_delivery_status",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/5 * * * *", timezone="UTC"), assets=BATCHES_ASSET
    ),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["every8d"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "warehouse": Param(None, type=["null", "string"], description="warehouse target; default EVERY8D_WAREHOUSE"),
        "parquet_root": Param(None, type=["null", "string"], description="Parquet folder or URL; 'none' to skip"),
        "parquet_conn_id": Param(None, type=["null", "string"], description="connection for an object-store root"),
        "every8d_conn_id": Param("every8d_default", type="string"),
        "max_batches": Param(500, type="integer", minimum=1, description="batches polled per run at most"),
        "page_concurrency": Param(None, type=["null", "integer"], minimum=1, description="status pages in flight"),
        "with_record_ids": Param(None, type=["null", "boolean"], description="JSON status form with MR"),
    },
)
def every8d_delivery_status():
    @task
    def merge_pushes(params=None) -> dict:
        from every8d.tracking import tasks

        return tasks.merge_pushes(params, _run_time())

    @task
    def find_due_batches(params=None) -> list[dict]:
        from every8d.tracking import tasks

        return tasks.find_due_batches(params, _run_time())

    @task(max_active_tis_per_dagrun=MAX_PARALLEL_BATCHES)
    def sync_batch(batch: dict, params=None) -> dict:
        from every8d.tracking import tasks

        return tasks.sync_one_batch(params, batch, _run_time())

    @task
    def summarize(results: list[dict]) -> dict:
        """Totals for the run; fails the run when a batch failed (export still runs)."""
        results = list(results)
        return {
            "batches": len(results),
            "changes": sum(r["history_rows"] for r in results),
            "closed": sum(1 for r in results if r["closed_reason"]),
        }

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def export_parquet(params=None) -> dict:
        from every8d.tracking import tasks

        return tasks.export_parquet(params)

    due = find_due_batches()
    merge_pushes() >> due
    synced = sync_batch.expand(batch=due)
    summarize(synced)
    synced >> export_parquet()


every8d_delivery_status()
