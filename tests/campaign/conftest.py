"""Fixtures for the campaign tests: a DuckDB warehouse per test and a way to dag.test() a DAG built here."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def warehouse_target(tmp_path, monkeypatch) -> str:
    """A fresh DuckDB warehouse file, also set as ``AIRFLOW__EVERY8D__WAREHOUSE`` for operators."""
    target = f"duckdb://{tmp_path / 'warehouse.duckdb'}"
    monkeypatch.setenv("AIRFLOW__EVERY8D__WAREHOUSE", target)
    return target


@pytest.fixture
def warehouse(warehouse_target) -> Iterator:
    from every8d.warehouse import open_warehouse

    wh = open_warehouse(warehouse_target)
    yield wh
    wh.close()


@pytest.fixture
def run_dag(airflow_home) -> Callable:
    """Serialize a DAG defined in a test (DESIGN.md: dag.test() needs it in the DB), then dag.test() it."""

    def run(dag, **kwargs):
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=os.devnull)
        bag.bag_dag(dag)
        sync_bag_to_db(bag, "dags-folder", None)
        return dag.test(**kwargs)

    return run


@pytest.fixture
def xcom_of() -> Callable:
    """The return value a task of a finished dag.test() run pushed."""

    def get(dag_run, task_id: str):
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(
                XComModel.get_many(
                    run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value"
                )
            ).first()
            return None if row is None else XComModel.deserialize_value(row)

    return get


@pytest.fixture
def asset_events_of() -> Callable:
    """Asset events a dag.test() run emitted: (asset name, extra) pairs."""

    def get(dag_run):
        from airflow.models.asset import AssetEvent
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            events = session.scalars(
                select(AssetEvent).where(
                    AssetEvent.source_dag_id == dag_run.dag_id, AssetEvent.source_run_id == dag_run.run_id
                )
            ).all()
            return [(event.asset.name, dict(event.extra or {})) for event in events]

    return get


@pytest.fixture
def task_instance_of() -> Callable:
    def get(dag_run, task_id: str):
        return next(ti for ti in dag_run.get_task_instances() if ti.task_id == task_id)

    return get


@pytest.fixture
def pushes(sandbox, tmp_path):
    """The sandbox's status pushes delivered over loopback and flushed into the warehouse on demand."""
    from campaign_checks import PushCapture

    capture = PushCapture(sandbox, tmp_path / "push-journal.sqlite3")
    yield capture
    capture.close()
