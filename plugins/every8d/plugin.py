"""Airflow plugin entry point of the provider (``airflow.plugins``).

It makes Airflow load this package when the api-server, scheduler and workers
start, and is where the inbound status/reply push endpoint registers as a
FastAPI app once it exists.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class Every8dPlugin(AirflowPlugin):
    """EVERY8D provider plugin."""

    name = "every8d"
