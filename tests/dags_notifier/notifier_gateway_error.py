"""Alerts that the gateway refuses must not change any task's outcome."""

from __future__ import annotations

from airflow.sdk import dag, task

from every8d.notifications.every8d import Every8dNotifier

alert = Every8dNotifier(
    phones="0912000003", message="{{ alert.event }} {{ alert.dag_id }}.{{ alert.task_id }}"
)


@dag(schedule=None, catchup=False)
def every8d_notifier_gateway_error():
    @task(on_success_callback=alert)
    def load():
        return 1

    @task(on_failure_callback=alert)
    def publish():
        raise RuntimeError("publish failed")

    load()
    publish()


every8d_notifier_gateway_error()
