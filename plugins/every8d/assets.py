"""Assets the provider's DAGs exchange (light: DAG files import this at parse time)."""

from __future__ import annotations

from airflow.sdk import Asset

#: Updated whenever a send registers new batches; the status sync DAG is scheduled on it.
BATCHES_ASSET = Asset(name="every8d_batches", uri="every8d://batches")
