"""The project DAGs run for real with ``dag.test()`` on a migrated metadata DB."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from every8d.hooks.every8d import Every8dHook
from every8d.tracking.sync import sync_batch
from every8d.warehouse import open_warehouse
from tests.tracking.helpers import numbers, sandbox_rows, send_batch, snapshot, table_rows

DAGS = Path(__file__).resolve().parents[2] / "dags"


def load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


@pytest.fixture
def places(tmp_path, monkeypatch, airflow_home, every8d_conn_env):
    """Warehouse and Parquet root for the DAGs, given the documented way: environment variables."""
    target = f"duckdb://{tmp_path / 'dag.duckdb'}"
    monkeypatch.setenv("AIRFLOW__EVERY8D__WAREHOUSE", target)
    monkeypatch.setenv("AIRFLOW__EVERY8D__PARQUET_ROOT", str(tmp_path / "parquet"))
    monkeypatch.setenv("AIRFLOW__EVERY8D__REPORT_DIR", str(tmp_path / "report"))
    return {"target": target, "parquet": tmp_path / "parquet", "report": tmp_path / "report"}


def test_the_delivery_status_dag_syncs_due_batches_into_tables_and_parquet(sandbox, places):
    warehouse = open_warehouse(places["target"])
    sms = send_batch(sandbox, warehouse, numbers(1200) + numbers(3))
    mms = send_batch(sandbox, warehouse, numbers(3, 5000), kind="mms", campaign="promo")
    sandbox.advance(3600)
    dag = load_dag("every8d_delivery_status")
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"

    run = dag.test()
    assert run.state == "success"
    assert table_rows(warehouse, sms.batch_id) == sandbox_rows(sandbox, sms.batch_id)
    assert table_rows(warehouse, mms.batch_id) == sandbox_rows(sandbox, mms.batch_id)
    states = warehouse.query_arrow(
        "SELECT batch_id, state FROM every8d_batches ORDER BY batch_id"
    ).to_pylist()
    assert {s["state"] for s in states} == {"closed"}
    messages = ds.dataset(places["parquet"] / "every8d_messages", format="parquet", partitioning="hive")
    assert messages.count_rows() == 1206
    kinds = sorted({str(k) for k in messages.to_table(columns=["kind"]).column("kind").to_pylist()})
    assert kinds == ["mms", "sms"]
    history = ds.dataset(places["parquet"] / "every8d_status_history", format="parquet", partitioning="hive")
    assert (
        history.count_rows()
        == warehouse.query_arrow("SELECT count(*) AS n FROM every8d_status_history").column("n")[0].as_py()
    )

    before = snapshot(warehouse)
    again = dag.test()  # nothing is due any more: the tables stay as they are
    assert again.state == "success"
    assert snapshot(warehouse) == before
    assert messages.count_rows() == 1206


def test_the_report_dag_writes_self_contained_html_per_campaign_and_an_overview(sandbox, places):
    warehouse = open_warehouse(places["target"])
    sandbox.set_outcomes({"0001": 103})
    batch = send_batch(sandbox, warehouse, numbers(20))
    sandbox.advance(3600)
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at + timedelta(hours=1))

    run = load_dag("every8d_analytics_report").test()
    assert run.state == "success"
    index = places["report"] / "index.html"
    page = index.read_text(encoding="utf-8")
    assert "spring" in page and "delivery rate" in page
    assert page.count("data:image/png;base64,") == 2  # over time, worst failure reasons
    campaign_pages = [p for p in places["report"].glob("*.html") if p.name != "index.html"]
    assert len(campaign_pages) == 1 and campaign_pages[0].name in page
    campaign = campaign_pages[0].read_text(encoding="utf-8")
    assert campaign.count("data:image/png;base64,") == 2  # time-to-deliver curve, failure reasons
    assert "points estimated before sending" in campaign and "Taipei" in campaign and "UTC" in campaign
    assert not list(places["report"].glob("*.png"))  # nothing beside the pages: they stand alone
