"""The ledger's own guarantees on every warehouse (DuckDB, Postgres, MariaDB): a crashed planning is redone,
two runners never share a chunk, a lease is held by one runner on the warehouse clock."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from campaign_checks import TEMPLATES, assert_exactly_once, clean_audience, make_audience
from warehouse_fixtures import WAREHOUSE_KINDS, mariadb_database, mariadb_target_for  # noqa: F401

from every8d.campaign import errors
from every8d.campaign.audience import ColumnMap
from every8d.campaign.config import CampaignSpec
from every8d.campaign.lease import Lease
from every8d.campaign.ledger import LEDGER, SendLedger
from every8d.campaign.runner import CampaignRun, RunOptions

SPEC = CampaignSpec(
    kind="sms",
    message=TEMPLATES,
    chunk_size=100,
    columns=ColumnMap(mobile="mobile", name="name", template="tier"),
)


def campaign_run(warehouse, **options):
    from every8d.hooks.every8d import Every8dHook

    return CampaignRun(
        SPEC, campaign_id="camp", hook=Every8dHook(), warehouse=warehouse, options=RunOptions(**options)
    )


def test_a_planning_that_crashed_halfway_is_thrown_away_and_redone(sandbox, every8d_conn_env, any_warehouse):
    warehouse = any_warehouse
    ledger = SendLedger(warehouse, "camp")
    ledger.ensure_tables()
    now = datetime.now(UTC)
    ledger.start_plan({"kind": "sms", "fingerprint": "old"}, now)
    leftover = dict.fromkeys(LEDGER.schema.names)
    leftover.update(
        campaign_id="camp",
        row_number=1,
        chunk=0,
        route="sms",
        kind="sms",
        mobile="+886900000000",
        text="half-written plan",
        record_id="x-1",
        state="pending",
        attempt=0,
        planned_at=now,
        updated_at=now,
    )
    warehouse.append(LEDGER.name, pa.Table.from_pylist([leftover], schema=LEDGER.schema))

    summary = campaign_run(warehouse).run(make_audience(500))
    assert summary["plan_reused"] is False
    assert_exactly_once(sandbox, warehouse, "camp", 500)
    assert "half-written plan" not in {m["text"] for m in sandbox.messages()}


def test_two_runners_never_claim_the_same_chunk(sandbox, every8d_conn_env, any_warehouse):
    warehouse = any_warehouse
    run = campaign_run(warehouse)
    run.plan(clean_audience(300))
    chunks = [c.chunk for c in run.ledger.chunks()]
    now = datetime.now(UTC)
    first = run.ledger.claim(chunks[:2], now, "runner-a")
    second = SendLedger(warehouse, "camp").claim(chunks[:3], now, "runner-b")
    assert set(first.column("chunk").to_pylist()) == set(chunks[:2])
    assert set(second.column("chunk").to_pylist()) == {chunks[2]}  # only the one runner-a did not hold
    assert set(first.column("row_number").to_pylist()).isdisjoint(second.column("row_number").to_pylist())


def test_a_rerun_of_a_finished_campaign_sends_nothing(sandbox, every8d_conn_env, any_warehouse):
    warehouse = any_warehouse
    first = campaign_run(warehouse).run(clean_audience(250))
    before = len(sandbox.requests())
    again = campaign_run(warehouse).run(clean_audience(250))
    assert again["plan_reused"] and again["calls"] == 0 and again["sent"] == first["sent"] == 250
    assert len(sandbox.requests()) == before  # not even a credit check: nothing is left to pay for


# -- the lease and its fence, on DuckDB, Postgres and MariaDB ------------------------------------------------


@pytest.fixture(params=WAREHOUSE_KINDS)
def any_warehouse(request, warehouse):
    """The ledger's homes: the default DuckDB file, Postgres and MariaDB (row locks)."""
    if request.param == "duckdb":
        return warehouse
    if request.param == "mariadb":
        from every8d.campaign.ledger import SEND_TABLES
        from every8d.warehouse import open_warehouse

        target = mariadb_target_for(
            request.getfixturevalue("mariadb_database"),
            request.getfixturevalue("monkeypatch"),
            [spec.name for spec in SEND_TABLES],
        )
        home = open_warehouse(target)
        request.addfinalizer(home.close)
        return home
    import psycopg2

    from every8d.warehouse import open_warehouse

    dsn = request.getfixturevalue("postgres_database")
    request.getfixturevalue("monkeypatch").setenv("AIRFLOW_CONN_LEASE_PG", dsn)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'every8d_%'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    pg = open_warehouse("airflow://lease_pg")
    request.addfinalizer(pg.close)  # noqa: PT021
    return pg


def lease_of(warehouse, owner: str, seconds: float = 30.0) -> Lease:
    SendLedger(warehouse, "camp").ensure_tables()
    return Lease(warehouse, "camp", owner, seconds, threading.RLock())


PLACEHOLDER = {"kind": "sms", "fingerprint": "f"}


def test_a_lease_is_held_by_one_runner_until_it_expires_on_the_warehouse_clock(any_warehouse):
    first, second = lease_of(any_warehouse, "runner-a", 4.0), lease_of(any_warehouse, "runner-b", 4.0)
    assert first.try_acquire(PLACEHOLDER) is True
    assert second.try_acquire(PLACEHOLDER) is False  # held, not expired
    owner, until, state = second.holder()
    assert (owner, state) == ("runner-a", "planning") and until is not None
    deadline = time.monotonic() + 30
    while not second.try_acquire(PLACEHOLDER):  # runner-a stopped renewing: it expires
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert second.holder()[0] == "runner-b"
    with pytest.raises(errors.LeaseLostError), first.fenced():  # the old holder's next write is fenced off
        pytest.fail("a runner without the lease got into a fenced transaction")
    assert first.lost.is_set()
    with second.fenced():  # the holder renews and writes
        pass
    second.release()
    assert second.holder()[0] is None


FROZEN_INSIDE = """
import os, signal, sys, threading
from every8d.campaign.lease import Lease
from every8d.warehouse import open_warehouse
warehouse = open_warehouse(sys.argv[1])
lease = Lease(warehouse, "camp", "frozen", float(sys.argv[2]), threading.RLock())
assert lease.try_acquire({"kind": "sms", "fingerprint": "f"})
try:
    with lease.fenced():
        warehouse.execute("UPDATE every8d_campaigns SET state = 'frozen-write' WHERE campaign_id = 'camp'")
        print("inside", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)  # frozen holding the campaign row's lock
except Exception as error:
    print("woke:", type(error).__name__, flush=True)
    sys.exit(3)
print("woke: committed", flush=True)
"""


@pytest.mark.parametrize("any_warehouse", ["postgres", "mariadb"], indirect=True)
def test_a_runner_frozen_in_a_fenced_transaction_is_cut_off_and_the_next_runner_takes_over(any_warehouse):
    """The server ends the frozen session (Postgres ``idle_in_transaction_session_timeout``, MariaDB
    ``idle_transaction_timeout``): its row lock goes, its write is rolled back, the next runner takes over.
    (Without it the takeover waits for the frozen process, or ``innodb_lock_wait_timeout`` on MariaDB.)"""
    import subprocess
    import sys

    from runner_processes import wait_stopped

    seconds = 2.0
    SendLedger(any_warehouse, "camp").ensure_tables()
    frozen = subprocess.Popen(
        [sys.executable, "-c", FROZEN_INSIDE, f"airflow://{any_warehouse.conn_id}", str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert frozen.stdout.readline().strip() == "inside"
        wait_stopped(frozen.pid)
        started = time.monotonic()
        second = lease_of(any_warehouse, "second", seconds)
        while not second.try_acquire(PLACEHOLDER):
            assert time.monotonic() - started < 6 * seconds, "the frozen runner still blocks the takeover"
            time.sleep(0.2)
        owner, _, state = second.holder()
        assert (owner, state) == ("second", "planning")  # the frozen write was rolled back
    finally:
        frozen.send_signal(signal.SIGCONT)
        output, _ = frozen.communicate(timeout=60)
    assert frozen.returncode == 3, output  # it woke to a closed session: nothing of it committed
    assert second.holder()[0] == "second"


def test_a_stamp_needs_the_claim_and_release_needs_the_token_and_no_request_written(any_warehouse):
    run = CampaignRun(
        SPEC, campaign_id="camp", hook=None, warehouse=any_warehouse, options=RunOptions(lease_seconds=30)
    )
    run.plan(clean_audience(300))
    ledger = run.ledger
    now = datetime.now(UTC)
    claimed = ledger.claim([0, 1], now, "runner-a")
    assert set(claimed.column("state").to_pylist()) == {"pending"}  # a claim is not a send
    assert [c.written_at for c in ledger.chunks("chunk IN (0, 1)")] == [None, None]
    assert ledger.stamp(0, "runner-b", None) is False  # not runner-b's chunk
    assert ledger.stamp(0, "runner-a", None) is True
    stamped = ledger.chunks("chunk = 0")[0]
    assert stamped.written_at is not None and stamped.attempt == 1
    assert set(ledger.rows([0], ("in_flight",)).column("chunk").to_pylist()) == {0}
    ledger.release([0, 1], "runner-b", now)  # another runner's token releases nothing
    assert {c.state for c in ledger.chunks("chunk IN (0, 1)")} == {"in_flight"}
    ledger.release([0, 1], "runner-a", now)  # only the chunk no request was written for goes back
    assert [c.state for c in ledger.chunks("chunk IN (0, 1)")] == ["in_flight", "pending"]
    ledger.claim([2], now, "runner-a")
    assert ledger.take_over("runner-c", now) == 1  # chunk 2 (claimed, never written) is pending again
    assert {c.chunk: (c.state, c.claimed_by) for c in ledger.chunks("chunk IN (0, 2)")} == {
        0: ("in_flight", "runner-c"),
        2: ("pending", None),
    }
    assert ledger.open_points() == Decimal(
        200
    )  # chunk 0 (100, in doubt) was most likely charged: not counted again


def test_a_cancel_marks_the_latest_scheduled_recipients_first_and_unscheduled_last(any_warehouse):
    run = CampaignRun(
        SPEC, campaign_id="camp", hook=None, warehouse=any_warehouse, options=RunOptions(lease_seconds=30)
    )
    run.plan(clean_audience(300))
    ledger = run.ledger
    rows = sorted(ledger.rows([0]).column("row_number").to_pylist())
    now = datetime.now(UTC)
    any_warehouse.execute(
        "UPDATE every8d_send_ledger SET state = 'sent', batch_id = 'B1' "
        "WHERE campaign_id = 'camp' AND chunk = 0"
    )
    early, late = now + timedelta(hours=1), now + timedelta(hours=2)
    for row_number, send_at in ((rows[5], early), (rows[9], late)):  # the rest of the batch: at once
        any_warehouse.execute(
            'UPDATE every8d_send_ledger SET send_at = ? WHERE campaign_id = ? AND "row_number" = ?',
            [send_at, "camp", row_number],
        )

    def cancelled() -> list[int]:
        table = any_warehouse.query_arrow(
            'SELECT "row_number" FROM every8d_send_ledger '
            "WHERE campaign_id = 'camp' AND state = 'cancelled'"
        )
        return sorted(table.column("row_number").to_pylist())

    assert ledger.record_cancel("B1", 1, Decimal(1), now) == 1
    assert cancelled() == [rows[9]]  # the latest send time first
    assert ledger.record_cancel("B1", 3, Decimal(3), now) == 3
    assert cancelled() == sorted(
        [rows[9], rows[5], rows[0], rows[1]]
    )  # then earlier, then unscheduled in order
    refunded = any_warehouse.query_arrow(
        "SELECT refunded_points FROM every8d_send_chunks WHERE campaign_id = 'camp' AND chunk = 0"
    )
    assert refunded.column(0)[0].as_py() == Decimal(4)
