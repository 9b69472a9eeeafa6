"""Five mapped tries fail at once: the DAG's rate limit lets only two alerts through."""

from __future__ import annotations

from airflow.sdk import dag, task

from every8d.notifications.every8d import Every8dNotifier


@dag(schedule=None, catchup=False)
def every8d_notifier_rate_limit():
    @task(on_failure_callback=Every8dNotifier(phones="0912000004", rate_limit=2, rate_window=3600))
    def shard(number: int):
        raise RuntimeError(f"shard {number} failed")

    shard.expand(number=[0, 1, 2, 3, 4])


every8d_notifier_rate_limit()
