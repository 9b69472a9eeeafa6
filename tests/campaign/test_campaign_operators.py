"""The send and cancel operators in real DAG runs (dag.test) against the sandbox over HTTP."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from campaign_checks import TEMPLATES, assert_exactly_once, ledger_and_rejects, make_audience

from every8d.assets import BATCHES_ASSET

START = datetime(2026, 1, 1)
SEND_ENDPOINTS = {"sendSMS.ashx", "sendSMS4FilterMessage.ashx", "SendParamSMS.ashx", "sendMMS.ashx"}


def endpoints(sandbox) -> Counter:
    return Counter(r["path"].rsplit("/", 1)[-1] for r in sandbox.requests())


def sends(sandbox) -> int:
    return sum(n for name, n in endpoints(sandbox).items() if name in SEND_ENDPOINTS)


def send_dag(dag_id: str, **operator_kwargs):
    from airflow.sdk import DAG

    from every8d.operators.send import Every8dSendSmsOperator

    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        Every8dSendSmsOperator(task_id="send", **operator_kwargs)
    return dag


def no_phone_numbers(payload) -> bool:
    return not re.search(r"\+?\d{9,}", json.dumps(payload, default=str))


def test_ten_thousand_rows_several_templates_bad_numbers_duplicates_and_opt_outs(
    sandbox,
    every8d_conn_env,
    warehouse,
    run_dag,
    xcom_of,
    asset_events_of,
    tmp_path,
    capfd,
):
    from every8d.tracking.suppressions import add_suppressions

    audience = make_audience(10_000)
    audience_path = tmp_path / "audience.parquet"
    pq.write_table(pa.Table.from_pandas(audience), audience_path)
    opted_out = [f"+8869{10_000_000 + i:08d}" for i in (3, 300, 3000)]  # rows 4, 301 and 3001
    add_suppressions(warehouse, opted_out, "opt_out", "test")
    dag = send_dag(
        "campaign_10k",
        audience=str(audience_path),
        message=TEMPLATES,
        template_column="tier",
        name_column="name",
        record_key_column="customer_id",
        rejects_path=str(tmp_path / "rejects.parquet"),
        max_points="{{ 20000 }}",
    )
    dag_run = run_dag(dag)
    assert dag_run.state == "success"
    logs = "".join(capfd.readouterr())
    assert "summary" in logs and not re.search(r"\+886\d{9}|09\d{8}", logs)  # counts in the log, no numbers

    summary = xcom_of(dag_run, "send")
    campaign_id = summary["campaign_id"]
    assert campaign_id == f"campaign_10k.send.{dag_run.run_id}"
    states = assert_exactly_once(sandbox, warehouse, campaign_id, 10_000)
    assert states == {"sent": summary["sent"]}
    assert summary["recipients"] + summary["rejected"] == 10_000
    reasons = summary["rejected_by_reason"]
    assert reasons["suppressed"] == 3
    assert reasons["duplicate"] > 100 and reasons["invalid_number"] > 0 and reasons["not_mobile"] > 0
    assert reasons["international_not_allowed"] > 0 and reasons["missing_number"] > 0
    assert Decimal(summary["points_charged"]) == Decimal(summary["points_estimated"])
    assert no_phone_numbers(summary) and len(json.dumps(summary)) < 1500

    # many recipients per call: identical texts grouped, personalized ones 500 a call
    assert sends(sandbox) == summary["calls"] - 1 == summary["batches"]
    assert sends(sandbox) < summary["recipients"] / 100
    assert endpoints(sandbox)["getCredit.ashx"] == 1

    # rejects: the Parquet file and the table agree, each with its reason
    rejects_file = pq.read_table(tmp_path / "rejects.parquet")
    _, rejects = ledger_and_rejects(warehouse, campaign_id)
    assert rejects_file.column("row_number").to_pylist() == rejects.column("row_number").to_pylist()
    assert set(rejects_file.column("campaign_id").to_pylist()) == {campaign_id}

    # every batch registered for the status sync, and the asset event says so
    registered = (
        warehouse.query_arrow(
            "SELECT count(*) AS n FROM every8d_batches WHERE campaign_id = ?", [campaign_id]
        )
        .column("n")[0]
        .as_py()
    )
    assert registered == summary["batches"]
    assert asset_events_of(dag_run) == [
        (BATCHES_ASSET.name, {"campaign_id": campaign_id, "batches": summary["batches"]})
    ]


@pytest.mark.parametrize(("endpoint", "tier"), [("sendSMS", "promo"), ("SendParamSMS", "personal")])
def test_three_dropped_answers_are_resolved_in_the_same_try_without_texting_anyone_twice(
    sandbox,
    every8d_conn_env,
    warehouse,
    run_dag,
    xcom_of,
    task_instance_of,
    endpoint,
    tier,
):
    audience = make_audience(1_200, seed=3)
    sandbox.inject_fault(endpoint, "drop", count=3)  # executed by the gateway, then no answer, three times
    dag = send_dag(
        f"campaign_drop_{tier}",
        audience=lambda: audience,
        message=TEMPLATES,
        template_column="tier",
        name_column="name",
        chunk_size=60,
        retries=0,  # no retry to spend: the try itself must settle them
        settle_seconds=0,  # the sandbox executed the request before dropping it: nothing is still running
    )
    dag_run = run_dag(dag)
    assert dag_run.state == "success"
    assert task_instance_of(dag_run, "send").try_number == 1
    summary = xcom_of(dag_run, "send")
    states = assert_exactly_once(sandbox, warehouse, summary["campaign_id"], 1_200)
    # the dropped chunks' recipients got their text from the lost requests: the filter proves it
    assert 0 < states["sent_unconfirmed"] <= 3 * 60
    assert summary["sent_unconfirmed"] == states["sent_unconfirmed"] and summary["lost_answers"] == 3
    assert endpoints(sandbox)["sendSMS4FilterMessage.ashx"] >= 3


def test_a_gateway_that_keeps_losing_answers_fails_the_try_retryably(
    sandbox,
    every8d_conn_env,
    warehouse,
    run_dag,
    xcom_of,
    task_instance_of,
):
    sandbox.inject_fault("sendSMS", "drop", count=4)
    dag = send_dag(
        "campaign_lossy",
        audience=lambda: make_audience(600, seed=5),
        message="Flash sale today",
        chunk_size=50,
        concurrency=1,
        max_lost_answers=2,
        settle_seconds=0,
        retries=1,
        retry_delay=timedelta(0),
    )
    dag_run = run_dag(dag)
    assert dag_run.state == "success"
    assert task_instance_of(dag_run, "send").try_number == 2  # try 1 stopped after its third lost answer
    summary = xcom_of(dag_run, "send")
    assert_exactly_once(sandbox, warehouse, summary["campaign_id"], 600)


def test_budget_cap_refuses_before_any_send_and_does_not_retry(
    sandbox,
    every8d_conn_env,
    warehouse,
    run_dag,
    task_instance_of,
):
    dag = send_dag(
        "campaign_cap",
        audience=lambda: make_audience(300),
        message=TEMPLATES,
        template_column="tier",
        name_column="name",
        max_points=50,
        retries=2,
        retry_delay=timedelta(0),
    )
    dag_run = run_dag(dag)
    assert dag_run.state == "failed"
    assert task_instance_of(dag_run, "send").try_number == 1  # AirflowFailException: no pointless retries
    assert sends(sandbox) == 0
    assert sandbox.account()["credit"] == "100000.00"


def test_dry_run_returns_the_plan_and_sends_nothing(sandbox, every8d_conn_env, warehouse, run_dag, xcom_of):
    dag = send_dag(
        "campaign_dry",
        audience=lambda: make_audience(2_000),
        message=TEMPLATES,
        template_column="tier",
        name_column="name",
        estimate_only="{{ 'True' }}",
        max_points=100,
    )
    dag_run = run_dag(dag)
    assert dag_run.state == "success"
    plan = xcom_of(dag_run, "send")
    assert plan["dry_run"] is True and plan["over_max_points"] is True
    assert plan["recipients"] + plan["rejected"] == 2_000
    assert {t["template_id"] for t in plan["by_template"]} == set(TEMPLATES)
    assert sum(int(t["points"]) for t in plan["by_template"]) == int(plan["points_estimated"])
    assert plan["credit"] == "100000.00"
    assert endpoints(sandbox) == Counter({"getCredit.ashx": 1})
    assert warehouse.table_columns("every8d_send_ledger") == []  # a dry run writes no ledger at all


def test_a_scheduled_campaign_is_cancelled_and_refunded(
    sandbox, every8d_conn_env, warehouse, run_dag, xcom_of
):
    from airflow.sdk import DAG

    from every8d.operators.cancel import Every8dCancelCampaignOperator
    from every8d.operators.send import Every8dSendSmsOperator

    tomorrow = (sandbox.now() + timedelta(days=1)).isoformat()
    with DAG("campaign_cancel", schedule=None, start_date=START, catchup=False) as dag:
        send = Every8dSendSmsOperator(
            task_id="send",
            audience=lambda: make_audience(700),
            message=TEMPLATES,
            template_column="tier",
            name_column="name",
            schedule_at=tomorrow,
            campaign_id="spring-{{ run_id }}",
        )
        cancel = Every8dCancelCampaignOperator(
            task_id="cancel", campaign_id="{{ ti.xcom_pull(task_ids='send')['campaign_id'] }}"
        )
        send >> cancel
    dag_run = run_dag(dag)
    assert dag_run.state == "success"
    sent, cancelled = xcom_of(dag_run, "send"), xcom_of(dag_run, "cancel")
    assert cancelled["batches_cancelled"] == sent["batches"]
    assert cancelled["messages_cancelled"] == cancelled["recipients_marked"] == sent["sent"]
    assert Decimal(cancelled["points_refunded"]) == Decimal(sent["points_charged"])
    assert sandbox.account()["credit"] == "100000.00"
    assert {m["status"] for m in sandbox.messages()} == {303}
    ledger, _ = ledger_and_rejects(warehouse, sent["campaign_id"])
    assert set(ledger.column("state").to_pylist()) == {"cancelled"}
    refunded = (
        warehouse.query_arrow(
            "SELECT sum(refunded_points) AS r FROM every8d_send_ledger WHERE campaign_id = ?",
            [sent["campaign_id"]],
        )
        .column("r")[0]
        .as_py()
    )
    assert refunded == Decimal(sent["points_charged"])
    # cancelling again finds nothing left and changes nothing
    from every8d.hooks.every8d import Every8dHook
    from every8d.operators.cancel import cancel_campaign

    again = cancel_campaign(Every8dHook(), warehouse, sent["campaign_id"])
    assert again["batches_checked"] == 0 and again["points_refunded"] == "0"


def test_an_upstream_dataframe_never_reaches_the_rendered_fields(
    sandbox,
    every8d_conn_env,
    warehouse,
    run_dag,
    xcom_of,
    task_instance_of,
):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.sdk import DAG, task

    from every8d.operators.send import Every8dSendSmsOperator

    with DAG("campaign_xcom_frame", schedule=None, start_date=START, catchup=False) as dag:

        @task
        def extract():
            from campaign_checks import make_audience

            return make_audience(300)

        Every8dSendSmsOperator(
            task_id="send", audience=extract(), message=TEMPLATES, template_column="tier", name_column="name"
        )
    dag_run = run_dag(dag)
    assert dag_run.state == "success"
    summary = xcom_of(dag_run, "send")
    assert summary["recipients"] + summary["rejected"] == 300
    assert_exactly_once(sandbox, warehouse, summary["campaign_id"], 300)
    rendered = RenderedTaskInstanceFields.get_templated_fields(task_instance_of(dag_run, "send"))
    assert rendered["audience"] == "<DataFrame with 300 rows>"
    assert no_phone_numbers(rendered)


def test_bad_settings_fail_at_once_with_a_clear_message(
    sandbox, every8d_conn_env, warehouse, run_dag, task_instance_of, capfd
):
    dag = send_dag(
        "campaign_bad_template",
        audience=lambda: make_audience(50),
        message="Hi ${first_name}",
        retries=3,
        retry_delay=timedelta(0),
    )
    dag_run = run_dag(dag)
    assert dag_run.state == "failed"
    assert task_instance_of(dag_run, "send").try_number == 1
    output = "".join(capfd.readouterr())
    assert (
        "no column(s) ['first_name']" in output and "'customer_id'" in output
    )  # the missing and known columns
    assert sends(sandbox) == 0


def test_estimate_only_leaves_base_operator_dry_run_callable_and_dry_run_still_works_deprecated():
    from every8d.operators.send import Every8dSendSmsOperator

    operator = Every8dSendSmsOperator(task_id="send", audience="people.parquet", message="hi")
    # BaseOperator.dry_run(): logs the template fields; the old attribute made this a TypeError
    operator.dry_run()
    assert operator.estimate_only is False
    with pytest.warns(DeprecationWarning, match="estimate_only"):
        old = Every8dSendSmsOperator(task_id="old", audience="people.parquet", message="hi", dry_run=True)
    assert old.estimate_only is True and callable(old.dry_run)


def hello_dag(dag_id: str, *, retries: int):
    """A 50-recipient "hello" campaign retried at once: which errors burn retries, which do not."""
    return send_dag(
        dag_id, audience=lambda: make_audience(50), message="hello", retries=retries, retry_delay=timedelta(0)
    )


def test_a_wrong_password_fails_the_task_without_burning_retries(
    sandbox, every8d_conn_env, warehouse, run_dag, task_instance_of, monkeypatch
):
    connection = json.loads(sandbox.connection_json())
    connection["password"] = "wrong"
    monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_DEFAULT", json.dumps(connection))
    dag = hello_dag("campaign_bad_password", retries=2)
    dag_run = run_dag(dag)
    assert dag_run.state == "failed"
    assert task_instance_of(dag_run, "send").try_number == 1  # AirflowFailException: a retry cannot fix it
    assert sends(sandbox) == 0


def test_unreadable_credit_answers_are_retried_by_the_task_not_fatal(
    sandbox, every8d_conn_env, warehouse, run_dag, task_instance_of
):
    """Three garbage answers in a row exhaust the run's own rereads; a read is still safe to repeat,
    so the try fails retry-safe and the retry sends the campaign (a terminal error would stop it for good)."""
    sandbox.inject_fault("getCredit", "garbage", count=3)
    dag_run = run_dag(hello_dag("campaign_garbled_credit", retries=1))
    assert dag_run.state == "success" and task_instance_of(dag_run, "send").try_number == 2
    assert sends(sandbox) == 1


def test_every_chunk_refused_fails_at_once_but_a_transient_error_is_retried(
    sandbox,
    every8d_conn_env,
    warehouse,
    run_dag,
    task_instance_of,
):
    sandbox.inject_fault("sendSMS", "error", code=-24, count=-1)  # "empty content": a refusal, terminal
    dag_run = run_dag(hello_dag("campaign_refused", retries=2))
    assert dag_run.state == "failed" and task_instance_of(dag_run, "send").try_number == 1
    sandbox.clear_faults()
    sandbox.inject_fault("getCredit", "reset", count=-1)  # the credit read keeps failing: transient
    dag_run = run_dag(hello_dag("campaign_transient", retries=1))
    assert dag_run.state == "failed" and task_instance_of(dag_run, "send").try_number == 2  # it was retried
    sandbox.clear_faults()
    assert sends(sandbox) == 1  # only the refused request; nothing was sent past the failing credit read
