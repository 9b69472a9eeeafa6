"""every8d_send_campaign, the DAG behind the UI form: validation, dry run, send, budget cap.

Run the way the UI's trigger runs it: ``airflow dags test`` with a conf,
against the sandbox over HTTP, on the session's migrated metadata DB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

DAG_ID = "every8d_send_campaign"


@pytest.fixture
def run_campaign(airflow_home, every8d_conn_env, tmp_path):
    env = {
        **os.environ,
        "AIRFLOW_CONN_EVERY8D_DEFAULT": every8d_conn_env.connection_json(),
        "AIRFLOW__EVERY8D__WAREHOUSE": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "AIRFLOW__EVERY8D__STAGING_ROOT": str(tmp_path / "staging"),
    }

    def run(conf: dict) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "-c", json.dumps(conf)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )

    return run


def batches_events() -> int:
    """How many ``every8d_batches`` asset events the metadata DB holds (they start the status sync)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "every8d_batches")
        )


def send_requests(sandbox) -> list[dict]:
    return [r for r in sandbox.requests() if "send" in r["path"].lower()]


@pytest.fixture(scope="module")
def campaign_dag(airflow_home):
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=Path(__file__).resolve().parents[2] / "dags" / f"{DAG_ID}.py")
    assert not bag.import_errors
    return bag.dags[DAG_ID]


def test_the_send_is_the_third_task_to_start(campaign_dag):
    """Every task before the send pays a task's start-up, so only two stand in line before it."""

    def tasks_before(task_id: str) -> int:
        upstream = campaign_dag.get_task(task_id).upstream_task_ids
        return max((1 + tasks_before(u) for u in upstream), default=0)

    assert {name: tasks_before(f"send_{name}") for name in ("sms", "mms")} == {"sms": 2, "mms": 2}
    # the dry-run check stands beside the plan and in front of the send
    assert campaign_dag.get_task("send_sms").upstream_task_ids == {"plan_sms", "confirm_sms"}
    assert campaign_dag.get_task("plan_sms").upstream_task_ids == {"stage_audience", "choose_kind"}


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        pytest.param({"message": ""}, "message", id="empty-message"),
        pytest.param({"audience": "members.txt"}, "audience", id="not-csv-parquet-or-sql"),
        pytest.param({"send_at": "tomorrow morning"}, "send_at", id="bad-time"),
        pytest.param({"send_at": "2026-12-01T09:30:00"}, "send_at", id="time-without-offset"),
        pytest.param({"max_points": 0}, "max_points", id="zero-budget"),
        pytest.param({"kind": "fax"}, "kind", id="unknown-kind"),
        pytest.param({"mms_image": "cat.bmp"}, "mms_image", id="unsupported-image"),
    ],
)
def test_form_schema_refuses_bad_input(campaign_dag, conf, field):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(campaign_dag.params)
    with pytest.raises(ParamValidationError, match=field):
        params.update(conf)  # a ParamsDict validates each value as it is set
        params.validate()


def test_form_schema_accepts_good_input(campaign_dag):
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(campaign_dag.params)
    params.update(
        {
            "audience": "SELECT mobile, name FROM members",
            "send_at": "2026-12-01T09:30:00+08:00",
            "kind": "mms",
            "mms_image": "s3://bucket/promo.PNG",
            "max_points": 120.5,
        }
    )
    assert params.validate()["kind"] == "mms"


def test_trigger_with_bad_input_is_refused_by_the_cli(run_campaign, sandbox):
    result = run_campaign({"message": ""})
    assert result.returncode != 0
    assert "ParamValidationError" in result.stdout + result.stderr
    assert sandbox.requests() == []


def test_dry_run_plans_without_sending(run_campaign, sandbox):
    events = batches_events()
    result = run_campaign({"dry_run": True})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"dry_run": true' in result.stdout
    assert '"recipients": 2961' in result.stdout
    assert send_requests(sandbox) == []
    assert sandbox.messages() == []
    assert batches_events() == events  # nothing registered: no status run started


def test_send_reaches_every_valid_member_once(run_campaign, sandbox):
    events = batches_events()
    result = run_campaign({"dry_run": False})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    messages = sandbox.messages()
    assert len(messages) == 2961
    assert max(Counter(m["mobile"] for m in messages).values()) == 1
    assert all("會員點數為" in m["text"] for m in messages)
    assert batches_events() == events + 1  # one event starts the status sync


def test_budget_cap_stops_before_the_first_send(run_campaign, sandbox):
    result = run_campaign({"dry_run": False, "max_points": 100})
    assert result.returncode != 0
    assert "max_points" in result.stdout + result.stderr
    assert send_requests(sandbox) == []


def test_missing_template_column_fails_before_sending(run_campaign, sandbox):
    result = run_campaign({"dry_run": False, "message": "Hi $nickname"})
    assert result.returncode != 0
    assert "nickname" in result.stdout + result.stderr
    assert send_requests(sandbox) == []
