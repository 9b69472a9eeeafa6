"""Exactly once against real runner processes: SIGKILL and SIGSTOP at each step, two runners at once,
a send still executing after the read timeout, cut answers, scheduled sends, credit that just covers it;
the ledger on Postgres and on MariaDB (row locks) with one representative process case each.

Every test ends with the same promises (``assert_invariants``): no (number, text) pair twice at the
gateway, no planned recipient without a message, no message or batch id the ledger does not know,
every recipient in a final state.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from campaign_checks import assert_invariants, check_invariants, clean_audience, make_audience
from runner_processes import Runner, wait_stopped, wait_until
from warehouse_fixtures import mariadb_database, mariadb_target_for  # noqa: F401

from every8d.campaign.ledger import SEND_TABLES, SendLedger

PROMO = "Spring sale: 20% off everything this week. Reply N to opt out."


@pytest.fixture
def audience(tmp_path):
    """400 rows of three templates (shared-text and personalized chunks), bad numbers and duplicates."""
    path = tmp_path / "audience.parquet"
    pq.write_table(pa.Table.from_pandas(make_audience(400, seed=5)), path)
    return path


@pytest.fixture
def promo_audience(tmp_path):
    """300 valid recipients of one text (1 point each)."""
    path = tmp_path / "promo.parquet"
    pq.write_table(pa.Table.from_pandas(clean_audience(300, seed=9)), path)
    return path


def drop_first_answers(sandbox, count=1):
    for endpoint in ("sendSMS", "SendParamSMS"):
        sandbox.inject_fault(endpoint, "drop", count=count)


KILL_STEPS = [
    pytest.param("plan", "after", 1, id="while-planning"),
    pytest.param("budget", "after", 1, id="planned-nothing-claimed"),
    pytest.param("stamp", "after", 1, id="stamped-not-written"),
    pytest.param("request", "after", 1, id="answered-not-recorded"),
    pytest.param("request", "after", 5, id="mid-campaign"),
    pytest.param("record", "after", 1, id="first-wave-recorded"),
    pytest.param("resend", "before", 1, id="resolving-a-lost-answer"),
    pytest.param("release", "before", 1, id="done-lease-held"),
]


@pytest.mark.parametrize(("step", "when", "nth"), KILL_STEPS)
def test_a_runner_killed_at_any_step_then_rerun_keeps_every_promise(
    sandbox, every8d_conn_env, warehouse_target, warehouse, audience, pushes, step, when, nth
):
    if step == "resend":
        drop_first_answers(sandbox)
    first = Runner(
        warehouse_target, audience, settings={"signal_at": {"step": step, "when": when, "nth": nth}}
    )
    assert first.wait() == -signal.SIGKILL, first.output[-3000:]
    sandbox.clear_faults()
    second = Runner(warehouse_target, audience)  # waits out the dead runner's lease, then takes over
    assert second.wait() == 0, second.output[-3000:]
    summary = second.result()["summary"]
    assert summary["duplicates"] == summary["stale_batches"] == 0
    assert_invariants(
        sandbox, warehouse, "camp", pushes=pushes
    )  # every batch issued is recorded, adopted or not
    assert summary["recipients"] + summary["rejected"] == 400


FREEZE_STEPS = [
    pytest.param("plan", "after", 1, id="while-planning"),
    pytest.param("stamp", "after", 2, id="stamped-not-written"),
    pytest.param("request", "after", 3, id="answered-not-recorded"),
    pytest.param("record", "after", 1, id="first-wave-recorded"),
]


@pytest.mark.parametrize(("step", "when", "nth"), FREEZE_STEPS)
def test_a_frozen_runner_wakes_after_its_retry_finished_and_sends_nothing(
    sandbox, every8d_conn_env, warehouse_target, warehouse, audience, step, when, nth
):
    frozen = Runner(
        warehouse_target,
        audience,
        settings={  # one request at a time: it freezes holding one answer
            "options": {"concurrency": 1},
            "signal_at": {"step": step, "when": when, "nth": nth, "signal": "STOP"},
        },
    )
    wait_stopped(frozen.pid)
    retry = Runner(warehouse_target, audience)
    assert retry.wait() == 0, retry.output[-3000:]
    messages_before = len(sandbox.messages())
    frozen.signal(signal.SIGCONT)
    assert frozen.wait() == 3, frozen.output[-3000:]
    woke = frozen.result()
    assert woke["error"] == "LeaseLostError", woke
    assert len(sandbox.messages()) == messages_before  # the woken runner sent nothing
    figures = assert_invariants(sandbox, warehouse, "camp")
    assert woke["summary"]["duplicates"] == 0 and figures["duplicates"] == 0
    if step == "request":  # it held an answer when it froze: kept as an extra batch, not lost
        assert woke["summary"]["stale_batches"] == 1
        stale = warehouse.query_arrow(
            "SELECT batch_id, duplicates FROM every8d_send_stale_batches"
        ).to_pylist()
        assert [s["duplicates"] for s in stale] == [0]
        assert stale[0]["batch_id"] in {b["batch_id"] for b in sandbox.batches()}


def test_a_runner_frozen_just_before_writing_its_request_reports_the_duplicates_it_caused(
    sandbox,
    every8d_conn_env,
    warehouse_target,
    warehouse,
    promo_audience,
):
    """The one window fencing cannot close: frozen after the last check, before the socket write.

    The gateway has no fencing token, so the woken runner's request goes out.  The promise here is
    that it is never silent: its batch is kept, and the duplicates are counted and reported.
    """
    frozen = Runner(
        warehouse_target,
        promo_audience,
        settings={
            "spec": {"message": PROMO},
            "options": {"concurrency": 1},
            "signal_at": {"step": "request", "when": "before", "nth": 1, "signal": "STOP"},
        },
    )
    wait_stopped(frozen.pid)
    retry = Runner(warehouse_target, promo_audience, settings={"spec": {"message": PROMO}})
    assert retry.wait() == 0, retry.output[-3000:]
    frozen.signal(signal.SIGCONT)
    assert frozen.wait() == 3
    woke = frozen.result()
    figures = check_invariants(sandbox, warehouse, "camp")
    assert woke["error"] == "LeaseLostError" and "duplicate" in woke["message"]
    assert woke["summary"]["duplicates"] == figures["duplicates"] == 50  # one chunk, counted and reported
    assert woke["summary"]["stale_batches"] == 1
    assert figures["lost"] == figures["open"] == figures["unknown"] == 0


def test_two_runners_started_together_text_everyone_once(
    sandbox, every8d_conn_env, warehouse_target, warehouse, audience
):
    for endpoint in ("sendSMS", "SendParamSMS"):  # slow answers keep both runners busy at the same time
        sandbox.inject_fault(endpoint, "slow", delay=0.2, count=-1, execute=True)
    runners = [Runner(warehouse_target, audience), Runner(warehouse_target, audience)]
    assert [r.wait() for r in runners] == [0, 0], [r.output[-2000:] for r in runners]
    summaries = [r.result()["summary"] for r in runners]
    assert sorted(s["calls"] > 0 for s in summaries) == [False, True]  # one sent, the other found it done
    assert_invariants(sandbox, warehouse, "camp")


def test_a_send_still_executing_after_the_read_timeout_is_resolved_not_resent(
    sandbox,
    every8d_conn_env,
    warehouse_target,
    warehouse,
    promo_audience,
):
    # not executed until 2 s after it arrived: the client gave up after 1 s
    sandbox.inject_fault("sendSMS", "slow", delay=2.0, count=1, execute=False)
    runner = Runner(
        warehouse_target,
        promo_audience,
        settings={"spec": {"message": PROMO}, "options": {"settle_seconds": None}},
    )
    assert runner.wait() == 0, runner.output[-3000:]
    summary = runner.result()["summary"]
    figures = assert_invariants(sandbox, warehouse, "camp")
    assert summary["lost_answers"] == 1 and figures["states"] == {"sent": 250, "sent_unconfirmed": 50}


def test_a_cut_send_answer_is_in_doubt_and_never_recorded_with_a_bogus_batch_id(
    sandbox,
    every8d_conn_env,
    warehouse_target,
    warehouse,
    promo_audience,
):
    sandbox.inject_fault("sendSMS", "cut", at=-8, count=1)  # "...,0,cfa91f2": a prefix of the batch id
    runner = Runner(warehouse_target, promo_audience, settings={"spec": {"message": PROMO}})
    assert runner.wait() == 0, runner.output[-3000:]
    figures = assert_invariants(
        sandbox, warehouse, "camp"
    )  # "unknown" counts batch ids the gateway never issued
    assert figures["states"] == {"sent": 250, "sent_unconfirmed": 50}
    registered = warehouse.query_arrow("SELECT count(*) AS n FROM every8d_batches").column("n")[0].as_py()
    assert registered == len(sandbox.batches()) - 1  # every batch we know the whole id of; no bogus one


def test_a_cut_credit_answer_is_read_again_before_refusing(
    sandbox, every8d_conn_env, warehouse_target, warehouse, promo_audience
):
    sandbox.create_account("demo", "secret", credit=960)  # "960.00" cut to "96": less than the 300 needed
    sandbox.inject_fault("getCredit", "cut", at=2, count=1)
    runner = Runner(warehouse_target, promo_audience, settings={"spec": {"message": PROMO}})
    assert runner.wait() == 0, runner.output[-3000:]
    credit_reads = [r for r in sandbox.requests() if r["path"].lower().endswith("getcredit.ashx")]
    assert len(credit_reads) == 2
    assert_invariants(sandbox, warehouse, "camp")
    assert sandbox.account()["credit"] == "660.00"


def in_an_hour_taipei() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).astimezone(timezone(timedelta(hours=8))).isoformat()


def quiet_window_around_now() -> str:
    taipei = datetime.now(timezone(timedelta(hours=8)))
    return f"{(taipei - timedelta(hours=1)):%H:%M}-{(taipei + timedelta(hours=2)):%H:%M}"


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param({"schedule_at": "tomorrow"}, id="explicit-send-time"),
        pytest.param({"quiet_hours": "around-now"}, id="quiet-hours-rescheduled"),
    ],
)
def test_a_scheduled_send_with_a_dropped_answer_is_parked_never_resent(
    sandbox, every8d_conn_env, warehouse_target, warehouse, promo_audience, schedule
):
    spec = {"message": PROMO}
    if "schedule_at" in schedule:
        spec["schedule_at"] = in_an_hour_taipei()
    else:
        spec["quiet_hours"] = quiet_window_around_now()
    sandbox.inject_fault("sendSMS", "drop", count=1)  # executed (scheduled at the gateway), answer lost
    runner = Runner(warehouse_target, promo_audience, settings={"spec": spec})
    assert runner.wait() == 3
    result = runner.result()
    assert result["error"] == "NeedsReviewError"
    figures = assert_invariants(sandbox, warehouse, "camp")
    assert figures["states"] == {"sent": 250, "needs_review": 50}
    assert figures["unrecorded"] == figures["parked_batches"] == 1  # the parked chunk's batch, reported
    assert {m["status"] for m in sandbox.messages()} == {300}  # all still scheduled, each once
    again = Runner(
        warehouse_target, promo_audience, settings={"spec": spec}
    )  # a retry does not resend either
    assert again.wait() == 3 and again.result()["error"] == "NeedsReviewError"
    assert len(sandbox.messages()) == 300


def test_credit_exactly_covering_the_campaign_survives_a_dropped_answer_and_a_retry(
    sandbox,
    every8d_conn_env,
    warehouse_target,
    warehouse,
    promo_audience,
):
    sandbox.create_account("demo", "secret", credit=300)  # exactly 300 recipients x 1 point
    sandbox.inject_fault("sendSMS", "drop", count=1)
    first = Runner(
        warehouse_target,
        promo_audience,
        settings={"spec": {"message": PROMO}, "options": {"max_lost_answers": 0}},
    )
    assert first.wait() == 3 and first.result()["error"] == "CampaignInterruptedError"
    assert first.result()["summary"]["in_flight"] == 50  # the dropped chunk: charged, in doubt
    retry = Runner(warehouse_target, promo_audience, settings={"spec": {"message": PROMO}})
    assert retry.wait() == 0, retry.output[-3000:]  # the in-doubt 50 are not counted as still to pay
    assert_invariants(sandbox, warehouse, "camp")
    assert sandbox.account()["credit"] == "0.00"


@pytest.fixture
def postgres_ledger(postgres_database, monkeypatch):
    """The ledger on Postgres (row locks instead of DuckDB's file lock): target and an open warehouse."""
    import psycopg2

    from every8d.warehouse import open_warehouse

    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGN_PG", postgres_database)
    with psycopg2.connect(postgres_database) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'every8d_%'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    warehouse = open_warehouse("airflow://campaign_pg")
    yield "airflow://campaign_pg", warehouse
    warehouse.close()


def test_on_postgres_a_killed_a_frozen_and_two_racing_runners_keep_every_promise(
    sandbox, every8d_conn_env, postgres_ledger, audience
):
    target, warehouse = postgres_ledger
    killed = Runner(target, audience, "killed", settings={"signal_at": {"step": "request", "nth": 3}})
    assert killed.wait() == -signal.SIGKILL, killed.output[-3000:]
    assert Runner(target, audience, "killed").wait() == 0
    assert_invariants(sandbox, warehouse, "killed")

    sandbox.reset()
    frozen = Runner(
        target,
        audience,
        "frozen",
        settings={
            "options": {"concurrency": 1},
            "signal_at": {"step": "request", "nth": 3, "signal": "STOP"},
        },
    )
    wait_stopped(frozen.pid)
    retry = Runner(target, audience, "frozen")
    assert retry.wait() == 0, retry.output[-3000:]
    frozen.signal(signal.SIGCONT)
    assert frozen.wait() == 3 and frozen.result()["error"] == "LeaseLostError"
    assert frozen.result()["summary"]["stale_batches"] == 1
    assert_invariants(sandbox, warehouse, "frozen")

    sandbox.reset()
    for endpoint in ("sendSMS", "SendParamSMS"):
        sandbox.inject_fault(endpoint, "slow", delay=0.2, count=-1, execute=True)
    racing = [Runner(target, audience, "race"), Runner(target, audience, "race")]
    assert [r.wait() for r in racing] == [0, 0], [r.output[-2000:] for r in racing]
    assert_invariants(sandbox, warehouse, "race")


@pytest.fixture
def mariadb_ledger(mariadb_database, monkeypatch):
    """The ledger on MariaDB (InnoDB row locks, NOW(6) in a UTC session): target and an open warehouse."""
    from every8d.warehouse import open_warehouse

    target = mariadb_target_for(mariadb_database, monkeypatch, [spec.name for spec in SEND_TABLES])
    warehouse = open_warehouse(target)
    yield target, warehouse
    warehouse.close()


def lease_holder(warehouse, campaign_id: str) -> str | None:
    """The campaign's lease owner as the warehouse has it now (None before the campaign row exists)."""
    rows = warehouse.query_arrow(
        "SELECT lease_owner FROM every8d_campaigns WHERE campaign_id = ?", [campaign_id]
    ).to_pylist()
    return rows[0]["lease_owner"] if rows else None


def test_on_mariadb_a_runner_killed_mid_request_while_a_second_waits_keeps_every_promise(
    sandbox, every8d_conn_env, mariadb_ledger, audience
):
    """One representative process case on MariaDB (the unit-level ledger and lease tests run there too):
    the second runner starts while the first holds the lease and is sending, the first is killed in the
    middle of a request, the second takes over on the warehouse clock and texts everyone else once."""
    target, warehouse = mariadb_ledger
    SendLedger(warehouse, "camp").ensure_tables()  # so the test can watch for the lease at once
    for endpoint in ("sendSMS", "SendParamSMS"):  # slow answers keep the first runner sending meanwhile
        sandbox.inject_fault(endpoint, "slow", delay=0.5, count=-1, execute=True)
    first = Runner(target, audience, settings={"signal_at": {"step": "request", "nth": 6}})
    wait_until(lambda: lease_holder(warehouse, "camp") is not None, what="the first runner to hold the lease")
    second = Runner(target, audience)
    assert first.wait() == -signal.SIGKILL, first.output[-3000:]
    assert second.wait() == 0, second.output[-3000:]
    assert second.result()["summary"]["calls"] > 0
    assert_invariants(sandbox, warehouse, "camp")
