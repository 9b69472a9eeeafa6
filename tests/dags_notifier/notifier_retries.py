"""A task that fails twice (one retry) with the same alert wired in several times.

Each try must text each on-call number once, however many callbacks fire for it.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from every8d.notifications.every8d import Every8dNotifier

oncall = Every8dNotifier(recipient_list="oncall")
# The same people again under another notifier object (one number overlaps "oncall").
oncall_again = Every8dNotifier(phones=["+886912000001"])


@dag(schedule=None, catchup=False, on_failure_callback=Every8dNotifier(recipient_list="oncall"))
def every8d_notifier_retries():
    @task(
        retries=1,
        retry_delay=timedelta(seconds=0),
        on_retry_callback=[oncall, oncall, oncall_again],
        on_failure_callback=[oncall, oncall_again],
    )
    def extract():
        raise ValueError("row 17 is malformed")

    extract()


every8d_notifier_retries()
