"""The campaign runner against the sandbox: crashes, lost answers, no credit, MMS, Postgres, quiet hours."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from campaign_checks import TEMPLATES, assert_exactly_once, clean_audience, ledger_and_rejects, make_audience

from every8d.campaign import errors
from every8d.campaign.audience import ColumnMap, SqlAudience
from every8d.campaign.config import CampaignSpec
from every8d.campaign.runner import CampaignRun, RunOptions

HERE = Path(__file__).resolve().parent
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000


def run_campaign(
    warehouse, audience, campaign_id="camp", *, message=TEMPLATES, kind="sms", chunk_size=500, **options
):
    from every8d.hooks.every8d import Every8dHook

    columns = ColumnMap(mobile="mobile", name="name", template="tier" if isinstance(message, dict) else None)
    spec_kwargs = {
        k: options.pop(k)
        for k in ("quiet_hours", "quiet_hours_policy", "image", "schedule_at")
        if k in options
    }
    hook_kwargs = {k: options.pop(k) for k in ("timeout", "connect_timeout") if k in options}
    spec = CampaignSpec(kind=kind, message=message, columns=columns, chunk_size=chunk_size, **spec_kwargs)
    hook = Every8dHook(**hook_kwargs)
    try:
        return CampaignRun(
            spec, campaign_id=campaign_id, hook=hook, warehouse=warehouse, options=RunOptions(**options)
        ).run(audience)
    finally:
        hook.close()


def chunk_states(warehouse, campaign_id="camp") -> dict[str, int]:
    rows = warehouse.query_arrow(
        "SELECT state, count(*) AS n FROM every8d_send_chunks WHERE campaign_id = ? GROUP BY state",
        [campaign_id],
    ).to_pylist()
    return {r["state"]: r["n"] for r in rows}


def test_sigkill_mid_campaign_then_rerun_texts_nobody_twice(
    sandbox, every8d_conn_env, warehouse_target, warehouse, tmp_path
):
    audience_path = tmp_path / "audience.parquet"
    pq.write_table(pa.Table.from_pandas(make_audience(3_000, seed=11)), audience_path)
    for endpoint in ("sendSMS", "SendParamSMS"):  # executed at once, answered 0.5 s later: a window to die in
        sandbox.inject_fault(endpoint, "slow", delay=0.5, count=-1, execute=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "send_campaign_process.py"),
            warehouse_target,
            str(audience_path),
            "camp",
            "150",
            '{"options": {"lease_seconds": 3}, "hook": {"timeout": 1, "connect_timeout": 1}}',
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while len(sandbox.batches()) < 9:  # wave 3 on the wire: wave 1 (4 chunks) is recorded by then
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the send never got going"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL
    sandbox.clear_faults()

    left = chunk_states(warehouse)
    assert left.get("sent", 0) >= 4 and left.get("in_flight", 0) >= 1 and left.get("pending", 0) >= 1
    gateway_had = len(sandbox.messages())

    summary = run_campaign(
        warehouse,
        str(audience_path),
        chunk_size=150,
        concurrency=2,
        settle_seconds=1.0,
        lease_seconds=3.0,
        timeout=1,
        connect_timeout=1,
    )
    assert summary["plan_reused"] is True
    states = assert_exactly_once(sandbox, warehouse, "camp", 3_000)
    assert (
        states.get("sent_unconfirmed", 0) >= 1
    )  # whatever the killed process had sent was found, not resent
    assert len(sandbox.messages()) == summary["recipients"] > gateway_had
    attempts = ledger_and_rejects(warehouse, "camp")[0].column("attempt").to_pylist()
    assert max(attempts) == 2 and min(attempts) == 1  # resolved chunks count their second request


def test_no_credit_is_recorded_per_recipient_and_stops_the_campaign(sandbox, every8d_conn_env, warehouse):
    sandbox.create_account("demo", "secret", credit=70)
    audience = clean_audience(300)
    audience["tier"] = "promo"
    with pytest.raises(errors.InsufficientCreditError, match="ran out of credit") as stopped:
        run_campaign(warehouse, audience, chunk_size=100, check_credit=False, concurrency=1)
    summary = stopped.value.summary  # one wave (2 chunks) went out: 70 fit, 130 did not, the rest wait
    assert (summary["sent"], summary["unsent_no_credit"], summary["pending"]) == (70, 130, 100)
    ledger, _ = ledger_and_rejects(warehouse, "camp")
    waiting = ledger.filter(pa.compute.equal(ledger.column("state"), "pending"))
    assert set(waiting.column("attempt").to_pylist()) == {0}  # claimed in advance, given back unsent
    assert chunk_states(warehouse) == {"sent": 2, "pending": 1}
    unsent = ledger.filter(pa.compute.equal(ledger.column("state"), "unsent_no_credit"))
    statuses = {m["mobile"]: m["status"] for m in sandbox.messages()}
    assert {statuses[m] for m in unsent.column("mobile").to_pylist()} == {301}
    requests_before = len(sandbox.requests())
    with pytest.raises(errors.InsufficientCreditError, match=r"read twice.*nothing more was sent") as again:
        run_campaign(warehouse, audience, chunk_size=100)
    assert again.value.retry_safe  # the account can be topped up before the retry
    assert [r["path"].rsplit("/", 1)[-1] for r in sandbox.requests()[requests_before:]] == [
        "getCredit.ashx"
    ] * 2


def test_mms_without_an_answer_is_parked_for_review_not_resent(sandbox, every8d_conn_env, warehouse):
    audience = clean_audience(40)
    sandbox.inject_fault("mms/sendMMS", "drop", count=1)
    with pytest.raises(errors.NeedsReviewError, match="10 recipient") as parked:  # in the same run, no retry
        run_campaign(
            warehouse, audience, message="Our new menu is out!", kind="mms", image=PNG, chunk_size=10
        )
    summary = parked.value.summary
    assert summary["needs_review"] == 10 and summary["sent"] == 30
    assert_exactly_once(sandbox, warehouse, "camp", 40, settled=("sent", "needs_review"))
    assert {m["kind"] for m in sandbox.messages()} == {"mms"}


def test_postgres_ledger_and_sql_audience_and_an_idempotent_rerun(
    sandbox, every8d_conn_env, postgres_database, monkeypatch
):
    import psycopg2

    from every8d.warehouse import open_warehouse

    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGN_PG", postgres_database)
    with psycopg2.connect(postgres_database) as conn, conn.cursor() as cursor:
        for table in (
            "every8d_send_ledger",
            "every8d_send_chunks",
            "every8d_campaigns",
            "every8d_send_rejects",
        ):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute("DROP TABLE IF EXISTS campaign_people")
        cursor.execute("CREATE TABLE campaign_people (mobile text, name text, tier text)")
        cursor.execute(
            "INSERT INTO campaign_people SELECT '0913' || lpad(i::text, 6, '0'), 'P' || (i % 7), "
            "(ARRAY['promo','personal','reminder'])[1 + i % 3] FROM generate_series(1, 900) AS i"
        )
    warehouse = open_warehouse("airflow://campaign_pg")
    source = SqlAudience(
        "SELECT mobile, name, tier, 100 AS amount FROM campaign_people ORDER BY mobile", "campaign_pg"
    )
    first = run_campaign(warehouse, source, chunk_size=200)
    assert first["sent"] == 900
    assert_exactly_once(sandbox, warehouse, "camp", 900)
    again = run_campaign(warehouse, source, chunk_size=200)
    assert again["calls"] == 0 and again["sent"] == 900 and len(sandbox.messages()) == 900


def quiet_window_around_now() -> str:
    taipei = datetime.now(timezone(timedelta(hours=8)))
    return f"{(taipei - timedelta(hours=1)):%H:%M}-{(taipei + timedelta(hours=2)):%H:%M}"


def test_quiet_hours_reschedule_to_the_window_end(sandbox, every8d_conn_env, warehouse):
    audience = clean_audience(50)
    summary = run_campaign(warehouse, audience, quiet_hours=quiet_window_around_now())
    assert summary["sent"] == 50
    messages = sandbox.messages()
    assert {m["status"] for m in messages} == {300}  # scheduled, not sent during quiet hours
    send_at = {datetime.fromisoformat(m["send_at"]) for m in messages}
    assert len(send_at) == 1 and next(iter(send_at)) > datetime.now(UTC) + timedelta(hours=1)


def test_quiet_hours_reject_refuses_rows_meant_for_now(sandbox, every8d_conn_env, warehouse):
    audience = clean_audience(20)
    summary = run_campaign(
        warehouse, audience, quiet_hours=quiet_window_around_now(), quiet_hours_policy="reject"
    )
    assert summary["rejected_by_reason"] == {"quiet_hours": 20} and summary["calls"] == 0
    assert sandbox.messages() == []


def test_in_doubt_chunks_wait_out_the_connection_timeouts_by_default(every8d_conn_env, warehouse):
    from every8d.hooks.every8d import Every8dHook

    spec = CampaignSpec(kind="sms", message="hi")
    run = CampaignRun(
        spec, campaign_id="c", hook=Every8dHook(timeout=7, connect_timeout=3), warehouse=warehouse
    )
    assert (
        run.settle_seconds() == 17
    )  # a request that timed out may still be running for another read timeout
    assert (
        CampaignRun(
            spec,
            campaign_id="c",
            hook=Every8dHook(),
            warehouse=warehouse,
            options=RunOptions(settle_seconds=0),
        ).settle_seconds()
        == 0
    )
