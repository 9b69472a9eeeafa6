"""Every8dNotifier end to end: real DAG runs (``airflow dags test``, i.e. ``dag.test()``),
the sandbox gateway over HTTP, the SQLite and Postgres ledgers, Airflow's own deadline-callback runners.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from every8d.notifications.alert import Alert, alert_from_context, fit_message, trim
from every8d.notifications.every8d import Every8dNotifier
from every8d.notifications.ledger import AlertLedger
from every8d.pricing import sms_length
from tests.metadata_db import copy_metadata_db

DAGS = Path(__file__).parent / "dags_notifier"
ONCALL = {"oncall": ["0912000001", "+886912000002"]}
NOTIFIER = "every8d.notifications.every8d.Every8dNotifier"


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dag_home(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the migrated metadata DB whose dags folder is ``tests/dags_notifier``.

    A copy, so that syncing these test DAGs never touches the project DAGs in the shared DB.
    """
    home = tmp_path_factory.mktemp("notifier-airflow-home")
    copy_metadata_db(airflow_home / "airflow.db", home / "airflow.db")
    return home


def run_dag(home: Path, dag_id: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", dag_id],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def task_rows(home: Path, dag_id: str) -> list[tuple]:
    with sqlite3.connect(home / "airflow.db") as db:
        return db.execute(
            "SELECT task_id, map_index, try_number, state, run_id FROM task_instance WHERE dag_id = ? "
            "ORDER BY task_id, map_index",
            (dag_id,),
        ).fetchall()


def sends(sandbox) -> list[dict]:
    return [r for r in sandbox.requests() if r["endpoint"] == "sendSMS"]


# -- DAG runs ------------------------------------------------------------------------------------


def test_a_failing_task_texts_each_recipient_once_per_try(dag_home, sandbox, tmp_path, monkeypatch):
    ledger = tmp_path / "alerts.sqlite3"
    env = {
        "AIRFLOW_CONN_EVERY8D_DEFAULT": sandbox.connection_json(),
        "AIRFLOW_VAR_EVERY8D_RECIPIENTS": json.dumps(ONCALL),
        "AIRFLOW__EVERY8D__ALERT_LEDGER": str(ledger),
    }
    result = run_dag(dag_home, "every8d_notifier_retries", **env)
    log = result.stdout + result.stderr

    assert result.returncode == 1, log[-3000:]  # the run fails because its task does
    [(task_id, map_index, try_number, state, run_id)] = task_rows(dag_home, "every8d_notifier_retries")
    assert (task_id, try_number, state) == ("extract", 2, "failed")

    # The retry callback fires three notifiers, the failure callback two, plus the DAG's own:
    # still one SMS per recipient per try, and one for the failed run.
    messages = sandbox.messages()
    assert Counter(m["mobile"] for m in messages) == {"+886912000001": 3, "+886912000002": 3}
    texts = sorted({m["text"] for m in messages})
    assert len(texts) == 3
    assert any(t.startswith("UP FOR RETRY every8d_notifier_retries.extract try 1: ValueError") for t in texts)
    assert any(t.startswith("FAILED every8d_notifier_retries.extract try 2: ValueError") for t in texts)
    assert any(t.startswith("FAILED every8d_notifier_retries: task failure") for t in texts)
    assert all(sms_length(t) <= 70 for t in texts)
    assert len(sends(sandbox)) == 3
    assert {row["outcome"] for row in AlertLedger(str(ledger)).entries()} == {"sent"}
    assert "+886912000001" not in log and "0912000001" not in log  # numbers stay out of the logs

    # The DAG processor re-runs a failure callback in its own process when a worker dies:
    # the same try, seen from another process, is not texted again.
    monkeypatch.setenv("AIRFLOW_VAR_EVERY8D_RECIPIENTS", json.dumps(ONCALL))
    monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_DEFAULT", sandbox.connection_json())
    ti = SimpleNamespace(
        dag_id="every8d_notifier_retries",
        task_id=task_id,
        run_id=run_id,
        try_number=try_number,
        map_index=map_index,
        state="failed",
        log_url="",
    )
    Every8dNotifier(recipient_list="oncall", ledger=str(ledger))({"ti": ti, "run_id": run_id})
    assert len(sandbox.messages()) == 6
    assert len(sends(sandbox)) == 3


def test_a_gateway_error_in_the_notifier_does_not_change_task_outcomes(dag_home, sandbox, tmp_path):
    sandbox.inject_fault("sendSMS", "error", count=2)  # -99 for both alerts
    ledger = tmp_path / "alerts.sqlite3"
    result = run_dag(
        dag_home,
        "every8d_notifier_gateway_error",
        AIRFLOW_CONN_EVERY8D_DEFAULT=sandbox.connection_json(),
        AIRFLOW__EVERY8D__ALERT_LEDGER=str(ledger),
    )
    log = result.stdout + result.stderr

    assert result.returncode == 1, log[-3000:]  # `publish` fails by design; nothing else does
    states = {task: state for task, _, _, state, _ in task_rows(dag_home, "every8d_notifier_gateway_error")}
    assert states == {"load": "success", "publish": "failed"}
    assert len(sends(sandbox)) == 2
    assert sandbox.messages() == []
    assert (
        log.count("gateway code -99 (unknown error on the gateway: contact the vendor) on sendSMS.ashx") == 2
    )
    assert "Failed to send notification" not in log  # BaseNotifier's re-raise path was never taken
    assert [row["outcome"] for row in AlertLedger(str(ledger)).entries()] == ["failed", "failed"]


def test_the_rate_limit_caps_alerts_per_dag(dag_home, sandbox, tmp_path, monkeypatch):
    ledger = tmp_path / "alerts.sqlite3"
    result = run_dag(
        dag_home,
        "every8d_notifier_rate_limit",
        AIRFLOW_CONN_EVERY8D_DEFAULT=sandbox.connection_json(),
        AIRFLOW__EVERY8D__ALERT_LEDGER=str(ledger),
    )
    log = result.stdout + result.stderr

    assert result.returncode == 1, log[-3000:]
    assert [state for *_, state, _ in task_rows(dag_home, "every8d_notifier_rate_limit")] == ["failed"] * 5
    assert len(sandbox.messages()) == 2  # five failed tries, limit 2 per hour
    assert log.count("suppressed: DAG every8d_notifier_rate_limit already sent 2 alert(s)") == 3
    assert Counter(row["outcome"] for row in AlertLedger(str(ledger)).entries()) == {
        "sent": 2,
        "rate_limited": 3,
    }

    # The limit is per DAG: another DAG still gets its alert through the same ledger.
    monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_DEFAULT", sandbox.connection_json())
    ti = SimpleNamespace(
        dag_id="another_dag", task_id="t", run_id="r", try_number=1, map_index=-1, state="failed"
    )
    Every8dNotifier(phones="0912000004", rate_limit=2, ledger=str(ledger))({"ti": ti, "run_id": "r"})
    assert len(sandbox.messages()) == 3


# -- deadline alerts, through Airflow's own callback runners ------------------------------------------


def deadline_context(deadline_id: str) -> dict:
    """What the scheduler hands a missed deadline's callback (``Deadline.handle_miss``)."""
    return {
        "dag_run": {
            "dag_id": "nightly_load",
            "dag_run_id": "scheduled__2026-01-01T00:00:00+00:00",
            "state": "running",
        },
        "deadline": {"id": deadline_id, "deadline_time": "2026-01-01T01:00:00+00:00"},
    }


def test_deadline_alerts_run_in_the_triggerer_and_the_executor(every8d_conn_env, tmp_path, monkeypatch):
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback
    from airflow.triggers.callback import CallbackTrigger

    sandbox = every8d_conn_env
    monkeypatch.setenv("AIRFLOW_VAR_EVERY8D_RECIPIENTS", json.dumps(ONCALL))
    kwargs = {"recipient_list": "oncall", "ledger": str(tmp_path / "alerts.sqlite3"), "rate_window": 600}

    async def trigger_events():
        trigger = CallbackTrigger(NOTIFIER, {**kwargs, "context": deadline_context("d-1")})
        return [event.payload async for event in trigger.run()]

    assert asyncio.run(trigger_events())[-1]["state"] == "success"  # AsyncCallback
    ok, error = execute_callback(
        NOTIFIER, {**kwargs, "context": deadline_context("d-2")}, "", None, structlog.get_logger()
    )
    assert (ok, error) == (True, None)  # SyncCallback
    ok, _ = execute_callback(
        NOTIFIER, {**kwargs, "context": deadline_context("d-2")}, "", None, structlog.get_logger()
    )
    assert ok  # the same missed deadline again: no second SMS

    texts = [m["text"] for m in sandbox.messages()]
    assert len(texts) == 4  # two deadlines, two recipients each
    assert len(set(texts)) == 1
    assert texts[0].startswith("DEADLINE MISSED nightly_load: due 2026-01-01T01:00:00+00:00 | sch")


# -- behaviour of one call ------------------------------------------------------------------------------


def task_context(**ti_fields) -> dict:
    fields = {
        "dag_id": "d",
        "task_id": "t",
        "run_id": "r1",
        "try_number": 1,
        "map_index": -1,
        "state": "failed",
        "log_url": "",
    }
    fields.update(ti_fields)
    return {
        "ti": SimpleNamespace(**fields),
        "run_id": fields["run_id"],
        "exception": KeyError("missing column"),
    }


def test_templates_render_per_call_and_long_alerts_are_opt_in(every8d_conn_env, tmp_path):
    sandbox = every8d_conn_env
    ledger = str(tmp_path / "alerts.sqlite3")
    short = Every8dNotifier(
        phones="0912000005",
        ledger=ledger,
        message="{{ alert.task_id }} try {{ alert.try_number }} " + "x" * 100,
    )
    long = Every8dNotifier(
        phones="0912000005", ledger=ledger, allow_long=True, message="{{ alert.dag_id }} " + "y" * 100
    )
    short(task_context(try_number=1))
    short(task_context(try_number=2))  # the same object renders again, not the text of try 1
    long(task_context(try_number=3))

    texts = [m["text"] for m in sandbox.messages()]
    assert texts[0].startswith("t try 1 x") and sms_length(texts[0]) == 70 and texts[0].endswith("…")
    assert texts[1].startswith("t try 2 x")
    assert texts[2] == "d " + "y" * 100
    assert [Decimal(m["points"]) for m in sandbox.messages()] == [1, 1, 2]


def test_bad_recipients_are_logged_not_raised(every8d_conn_env, tmp_path, monkeypatch, capsys):
    sandbox = every8d_conn_env
    monkeypatch.setenv("AIRFLOW_VAR_EVERY8D_RECIPIENTS", json.dumps(ONCALL))
    notifier = Every8dNotifier(recipient_list="nobody", ledger=str(tmp_path / "a.sqlite3"))
    notifier(task_context())  # returns normally
    assert sandbox.requests() == []
    assert "recipient list 'nobody' is not in Variable 'every8d_recipients'" in capsys.readouterr().out

    broken = Every8dNotifier(
        phones="0912000006", message="{{ alert.no_such_field.x }}", ledger=str(tmp_path / "a.sqlite3")
    )
    broken(task_context())
    assert sandbox.requests() == []
    assert "could not be prepared" in capsys.readouterr().out


def test_a_send_with_unknown_outcome_is_not_repeated(every8d_conn_env, tmp_path, capsys):
    sandbox = every8d_conn_env
    sandbox.inject_fault("sendSMS", "drop")  # executed, then the connection closes without an answer
    ledger = str(tmp_path / "a.sqlite3")
    notifier = Every8dNotifier(phones="0912000007", ledger=ledger)
    notifier(task_context())
    notifier(task_context())
    assert len(sends(sandbox)) == 1 and len(sandbox.messages()) == 1
    assert "outcome unknown" in capsys.readouterr().out
    assert [row["outcome"] for row in AlertLedger(ledger).entries()] == ["unknown"]


def test_notifier_arguments_are_checked_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="needs phones"):
        Every8dNotifier()
    with pytest.raises(ValueError, match="rate_limit"):
        Every8dNotifier(phones="0912000001", rate_limit=0)


# -- the ledger --------------------------------------------------------------------------------------


CLAIM_SCRIPT = """
import sys, time
from every8d.notifications.ledger import AlertLedger
target, worker, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
ledger = AlertLedger(target)
time.sleep(max(0.0, start_at - time.time()))
shared = ledger.admit("same-alert", "dag_a", ["+886912000001"], limit=None, window_seconds=60)
own = ledger.admit("alert-" + worker, "dag_b", ["+886912000001"], limit=3, window_seconds=60)
print(len(shared.numbers), len(own.numbers))
"""


def test_concurrent_claims_from_several_processes_let_exactly_one_send(tmp_path):
    target = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    start_at = str(time.time() + 1.5)  # every process claims at the same moment
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM_SCRIPT, target, str(i), start_at], stdout=subprocess.PIPE, text=True
        )
        for i in range(8)
    ]
    results = [tuple(map(int, worker.communicate(timeout=60)[0].split())) for worker in workers]
    assert sum(shared for shared, _ in results) == 1  # one alert, eight callbacks: one SMS
    assert sum(own for _, own in results) == 3  # eight alerts of one DAG, limit 3: three SMS


def test_postgres_ledger_claims_and_limits(postgres_database, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_LEDGER_PG", postgres_database)
    ledger = AlertLedger("airflow://alert_ledger_pg")
    first = ledger.admit(
        "a1", "dag", ["+886912000001", "+886912000002"], limit=1, window_seconds=60, now=1000
    )
    again = ledger.admit(
        "a1", "dag", ["+886912000001", "+886912000003"], limit=1, window_seconds=60, now=1001
    )
    over = ledger.admit("a2", "dag", ["+886912000001"], limit=1, window_seconds=60, now=1002)
    later = ledger.admit("a3", "dag", ["+886912000001"], limit=1, window_seconds=60, now=1100)
    assert first.numbers == ["+886912000001", "+886912000002"]
    assert (again.numbers, again.already) == (["+886912000003"], 2)  # same alert, a new recipient: allowed
    assert over.rate_limited and over.numbers == []
    assert later.numbers == ["+886912000001"]  # the window moved on
    stored = {row["recipient"] for row in ledger.entries()}
    assert not any("886912" in value for value in stored)  # digests, not numbers


# -- pure parts --------------------------------------------------------------------------------------


@given(st.text(max_size=400), st.integers(min_value=2, max_value=400))
def test_trim_keeps_a_prefix_within_the_gateway_count(text, limit):
    cut = trim(text, limit)
    if sms_length(text) <= limit:
        assert cut == text
    else:
        assert sms_length(cut) <= limit
        assert cut.endswith("…") and text.startswith(cut[:-1])


def test_fit_message_caps_long_alerts_at_five_points():
    assert sms_length(fit_message("z" * 1000)) == 70
    assert sms_length(fit_message("z" * 1000, allow_long=True)) == 333


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        pytest.param(
            {"dag": SimpleNamespace(dag_id="d"), "run_id": "r", "reason": "task_failure"},
            Alert(scope="dag", event="failed", dag_id="d", run_id="r", attempt="0", reason="task failure"),
            id="dag-failure",
        ),
        pytest.param(
            {
                "dag": SimpleNamespace(dag_id="d"),
                "run_id": "r",
                "reason": "success",
                "dag_run": SimpleNamespace(clear_number=2),
            },
            Alert(scope="dag", event="success", dag_id="d", run_id="r", attempt="2", reason="success"),
            id="dag-success-after-clear",
        ),
        pytest.param(
            task_context(try_number=3, map_index=4, state="up_for_retry"),
            Alert(
                scope="task",
                event="up_for_retry",
                dag_id="d",
                run_id="r1",
                task_id="t",
                map_index=4,
                try_number=3,
                attempt="3",
                exception="KeyError: 'missing column'",
            ),
            id="mapped-task-retry",
        ),
    ],
)
def test_alert_from_context(context, expected):
    assert alert_from_context(context) == expected


def test_each_try_and_each_clear_is_a_different_alert():
    first = alert_from_context(task_context(try_number=1))
    assert first.key == alert_from_context(task_context(try_number=1)).key
    assert first.key != alert_from_context(task_context(try_number=2)).key
    run = {"dag": SimpleNamespace(dag_id="d"), "run_id": "r", "reason": "task_failure"}
    cleared = {**run, "dag_run": SimpleNamespace(clear_number=1)}
    assert alert_from_context(run).key != alert_from_context(cleared).key
