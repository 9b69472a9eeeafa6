"""Delivery status of every open EVERY8D batch, into the warehouse and Parquet.

Runs every 5 minutes and whenever a send registers new batches (the
``every8d_batches`` asset).  Each run merges push events, closes the batches
that pushes already made all final, cuts the batches that are due (young
batches every 5 minutes, hourly after an hour, daily after a day) into at most
``shards`` shards, polls each shard in one task (many batches at once, merged
as they arrive), then rewrites the Parquet partitions that changed.

Every decision uses the wall clock, not the run's ``run_after`` (a run that
starts late must not decide in the past); a rerun leaves the same rows.

The status tasks run with a low priority and in the pool named by
``[every8d] status_pool`` (docker-compose.yaml and docs/deploy.md use
``every8d_status``, created with ``airflow pools set every8d_status 2 "..."``),
so a campaign always finds a free slot while a pass runs.  Unset, they use
``default_pool``: a pool that does not exist would stall them silently (the
scheduler only logs "non-existent pool").

Where things go (params override environment variables):
``warehouse`` / ``[every8d] warehouse``, ``parquet_root`` / ``[every8d] parquet_root``
(``none`` to skip), ``parquet_conn_id`` / ``[every8d] parquet_conn_id``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, dag, task

from every8d import settings
from every8d.assets import BATCHES_ASSET
from every8d.hooks import DEFAULT_CONN_NAME

#: The pool of the status tasks: its slots bound what a status pass can take from ``parallelism``.
STATUS_POOL = settings.get("status_pool") or "default_pool"
#: Below the send campaign's tasks (priority 10): when slots are short, the campaign goes first.
STATUS_PRIORITY = 1


@dag(
    dag_id="every8d_delivery_status",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/5 * * * *", timezone="UTC"), assets=BATCHES_ASSET
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["every8d"],
    doc_md=__doc__,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "pool": STATUS_POOL,
        "priority_weight": STATUS_PRIORITY,
        "weight_rule": "absolute",
    },
    params={
        "warehouse": Param(
            None, type=["null", "string"], description="warehouse target; default [every8d] warehouse"
        ),
        "parquet_root": Param(
            None, type=["null", "string"], description="Parquet folder or URL; 'none' to skip"
        ),
        "parquet_conn_id": Param(
            None, type=["null", "string"], description="connection for an object-store root"
        ),
        "every8d_conn_id": Param(DEFAULT_CONN_NAME, type="string"),
        "max_batches": Param(10000, type="integer", minimum=1, description="batches polled per run at most"),
        "shards": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=32,
            description=(
                "task instances polling per run at most "
                "(default: 1 on DuckDB, 2 on Postgres; [every8d] status_shards)"
            ),
        ),
        "batch_concurrency": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=64,
            description="batches each shard fetches at once (default 32)",
        ),
        "merge_group": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="batches merged per transaction at most (default 256; 1 = per batch)",
        ),
        "page_concurrency": Param(
            None, type=["null", "integer"], minimum=1, description="status pages in flight"
        ),
        "with_record_ids": Param(None, type=["null", "boolean"], description="JSON status form with MR"),
    },
)
def every8d_delivery_status():
    @task
    def merge_pushes(params=None) -> dict:
        from every8d.pipelines import delivery_status as tasks

        return tasks.merge_pushes(params, None)

    @task
    def plan_shards(params=None) -> list[dict]:
        from every8d.pipelines import delivery_status as tasks

        return tasks.plan_shards(params)

    @task
    def sync_shard(shard: dict, params=None) -> dict:
        from every8d.pipelines import delivery_status as tasks

        return tasks.sync_status_shard(params, shard)

    @task
    def summarize(results: list[dict]) -> dict:
        """Totals for the run (a failed shard fails the run; export still runs)."""
        results = list(results)
        return {
            "shards": len(results),
            "batches": sum(r["polled"] for r in results),
            "changes": sum(r["history_rows"] for r in results),
            "closed": sum(r["closed"] for r in results),
        }

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def export_parquet(params=None) -> dict:
        from every8d.pipelines import delivery_status as tasks

        return tasks.export_parquet(params)

    shards = plan_shards()
    merge_pushes() >> shards
    synced = sync_shard.expand(shard=shards)
    # an XComArg: the decorators' types cannot say it resolves to the shards' results
    summarize(synced)  # type: ignore[arg-type]
    synced >> export_parquet()


every8d_delivery_status()
