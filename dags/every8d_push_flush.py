"""Move status and reply pushes from the push receiver's journal into the warehouse.

The receiver (``/every8d/push`` on the api-server, or standalone) answers the
gateway only once a push is in its local journal.  Every 5 minutes this DAG
writes journaled pushes to ``every8d_push_events`` (plus ``every8d_replies``
and opt-outs to ``every8d_suppressions``); ``every8d_delivery_status`` merges
them into the message tables.  It must run where the journal file is (the
api-server's machine or a shared volume): see docs/pushes.md.

Params override the options: ``warehouse`` / ``[every8d] warehouse``,
``journal`` / ``[every8d] push_journal``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, task


@dag(
    dag_id="every8d_push_flush",
    schedule=CronTriggerTimetable("*/5 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["every8d"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "warehouse": Param(
            None, type=["null", "string"], description="warehouse target; default [every8d] warehouse"
        ),
        "journal": Param(
            None, type=["null", "string"], description="journal file; default [every8d] push_journal"
        ),
    },
)
def every8d_push_flush():
    @task
    def flush(params=None) -> dict:
        """Journal to warehouse; idempotent, so a retry or an overlapping run writes nothing twice."""
        from dataclasses import asdict

        from every8d.callbacks.flush import flush_journal

        params = params or {}
        return asdict(flush_journal(params.get("warehouse"), journal_path=params.get("journal")))

    flush()


every8d_push_flush()
