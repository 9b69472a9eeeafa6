"""The status sync end to end: real sandbox over HTTP, real DuckDB and Postgres, no mocks."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs

import pytest

from every8d.errors import GatewayError
from every8d.hooks.every8d import Every8dHook
from every8d.tracking.spool import PageSpool
from every8d.tracking.sync import SyncOptions, due_batches, fetch_status_pages, merge_spool, sync_batch
from tests.tracking.helpers import numbers, sandbox_rows, send_batch, snapshot, table_rows

pytestmark = pytest.mark.usefixtures("every8d_conn_env")


def status_requests(sandbox, endpoint: str = "getDeliveryStatus") -> list[dict]:
    return [parse_qs(r["body"]) for r in sandbox.requests() if r["endpoint"] == endpoint]


def test_a_2345_message_batch_read_in_3_pages_lands_exactly(sandbox, warehouse):
    # Five numbers appear twice: the gateway lists one line per message, and so do we.
    destinations = numbers(2340) + numbers(5)
    batch = send_batch(sandbox, warehouse, destinations)
    sandbox.advance(3600)
    sandbox.clear_requests()
    now = batch.sent_at + timedelta(hours=1)

    result = sync_batch(warehouse, Every8dHook(), batch, now=now, options=SyncOptions(page_concurrency=2))

    assert (result.listed, result.pages, result.message_rows) == (2345, 3, 2345)
    assert sorted(r["PNO"][0] for r in status_requests(sandbox)) == ["1", "2", "3"]
    assert table_rows(warehouse, batch.batch_id) == sandbox_rows(sandbox, batch.batch_id)
    twice = warehouse.query_arrow(
        "SELECT count(*) AS n FROM every8d_messages WHERE mobile = '+886912000003' AND seq = 2"
    )
    assert twice.column("n")[0].as_py() == 1
    assert result.closed_reason == "all_final"


def test_statuses_moving_from_0_to_final_update_the_row_and_append_history(sandbox, warehouse):
    sandbox.set_outcomes({"0001": 101})
    batch = send_batch(sandbox, warehouse, numbers(3))
    first = sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at)
    assert first.closed_reason is None and first.next_poll_at == batch.sent_at + timedelta(minutes=5)
    before = warehouse.query_arrow("SELECT DISTINCT status, is_final FROM every8d_messages").to_pylist()
    assert before == [{"status": 0, "is_final": False}]

    sandbox.advance(600)
    later = batch.sent_at + timedelta(minutes=10)
    second = sync_batch(warehouse, Every8dHook(), batch, now=later)

    assert (second.history_rows, second.closed_reason) == (3, "all_final")
    current = warehouse.query_arrow(
        "SELECT mobile, status, status_group, is_final, first_seen_at, updated_at, final_at, received_at "
        "FROM every8d_messages ORDER BY mobile"
    ).to_pylist()
    assert [(r["status"], r["status_group"]) for r in current] == [
        (100, "delivered"),
        (101, "failed"),
        (100, "delivered"),
    ]
    assert all(
        r["is_final"] and r["first_seen_at"] == batch.sent_at and r["updated_at"] == later for r in current
    )
    assert current[0]["final_at"] == current[0]["received_at"] is not None
    history = warehouse.query_arrow(
        "SELECT mobile, status, previous_status, observed_at "
        "FROM every8d_status_history ORDER BY mobile, observed_at"
    ).to_pylist()
    assert [(h["status"], h["previous_status"]) for h in history if h["mobile"] == "+886912000001"] == [
        (0, None),
        (101, 0),
    ]
    assert len(history) == 6
    batch_row = warehouse.query_arrow(
        "SELECT state, closed_reason, polls, listed, final_count FROM every8d_batches"
    )
    assert batch_row.to_pylist() == [
        {"state": "closed", "closed_reason": "all_final", "polls": 2, "listed": 3, "final_count": 3}
    ]
    assert due_batches(warehouse, later + timedelta(days=5)) == []


def test_rerun_and_crash_then_rerun_leave_the_same_tables(sandbox, duckdb_target):
    from every8d.warehouse import open_warehouse

    warehouse = open_warehouse(duckdb_target)
    batch = send_batch(sandbox, warehouse, numbers(1500))
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at)
    sandbox.advance(30)  # some final, some still pending
    now = batch.sent_at + timedelta(minutes=5)
    before = snapshot(warehouse)

    # A crash after the pages were read (the reply read fails) changes nothing...
    sandbox.inject_fault("getReplyMessage", "error", code=-99)
    with pytest.raises(GatewayError):
        sync_batch(warehouse, Every8dHook(), batch, now=now)
    assert snapshot(warehouse) == before

    # ...and so does a crash inside the merge transaction, before it commits.
    spool = PageSpool(warehouse_path(duckdb_target).with_name("pages.parquet"))
    spool.write(fetch_status_pages(Every8dHook(), batch))
    with pytest.raises(WorkerDied), warehouse.transaction():
        merge_spool(warehouse, batch, spool, now=now)
        raise WorkerDied  # the worker dies before commit
    assert snapshot(warehouse) == before

    once = sync_batch(warehouse, Every8dHook(), batch, now=now)
    after_once = snapshot(warehouse)
    again = sync_batch(warehouse, Every8dHook(), batch, now=now)
    assert snapshot(warehouse) == after_once
    assert once.history_rows > 0 and again.history_rows == 0 and again.message_rows == 0
    assert after_once["every8d_batches"][0]["polls"] == 2


class WorkerDied(BaseException):
    """Stands for the task's process being killed."""


def warehouse_path(target: str):
    from pathlib import Path

    return Path(target.removeprefix("duckdb://"))


def test_an_mms_batch_uses_the_mms_listing(sandbox, warehouse):
    batch = send_batch(sandbox, warehouse, numbers(4), kind="mms")
    sandbox.advance(3600)
    sandbox.clear_requests()
    result = sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at + timedelta(hours=1))
    assert [r["endpoint"] for r in sandbox.requests() if "Status" in (r["endpoint"] or "")] == [
        "mms/getDeliveryStatus"
    ]
    rows = warehouse.query_arrow(
        "SELECT DISTINCT kind, status, status_group, points, received_at IS NULL AS no_receipt "
        "FROM every8d_messages"
    ).to_pylist()
    assert rows == [
        {
            "kind": "mms",
            "status": 700,
            "status_group": "delivered",
            "points": rows[0]["points"],
            "no_receipt": True,
        }
    ]
    assert rows[0]["points"] > 0
    assert result.closed_reason == "all_final"
    assert table_rows(warehouse, batch.batch_id) == sandbox_rows(sandbox, batch.batch_id)


def test_pending_messages_expire_after_the_validity_window(sandbox, warehouse):
    batch = send_batch(sandbox, warehouse, numbers(3), validity_minutes=30)
    options = SyncOptions(expiry_grace=timedelta(minutes=10))
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at, options=options)
    # The gateway still says 0 (its clock did not move); our deadline has passed.
    deadline = batch.sent_at + timedelta(minutes=40)
    assert due_batches(warehouse, deadline)  # the next poll is capped at the deadline
    result = sync_batch(warehouse, Every8dHook(), batch, now=deadline, options=options)
    assert (result.closed_reason, result.expired) == ("expired", 3)
    rows = warehouse.query_arrow(
        "SELECT DISTINCT status, status_group, is_final, source, final_at FROM every8d_messages"
    ).to_pylist()
    assert rows == [
        {"status": 0, "status_group": "expired", "is_final": True, "source": "close", "final_at": deadline}
    ]
    closes = warehouse.query_arrow(
        "SELECT count(*) AS n FROM every8d_status_history WHERE source = 'close' AND status_group = 'expired'"
    )
    assert closes.column("n")[0].as_py() == 3
    assert due_batches(warehouse, deadline + timedelta(days=3)) == []


def test_a_scheduled_batch_waits_for_its_time(sandbox, warehouse):
    start = sandbox.now()
    batch = send_batch(sandbox, warehouse, numbers(2), schedule_at=start + timedelta(hours=2))
    assert due_batches(warehouse, start + timedelta(hours=1)) == []
    [due] = due_batches(warehouse, start + timedelta(hours=2))
    assert due.batch_id == batch.batch_id
    result = sync_batch(warehouse, Every8dHook(), batch, now=start + timedelta(hours=2))
    assert result.closed_reason is None
    statuses = warehouse.query_arrow("SELECT DISTINCT status_group FROM every8d_messages")
    assert statuses.column("status_group").to_pylist() == ["scheduled"]


def test_replies_are_stored_once_and_opt_outs_suppressed(sandbox, warehouse):
    batch = send_batch(sandbox, warehouse, numbers(3))
    sandbox.add_reply(batch.batch_id, "+886912000000", "Thanks!")
    sandbox.add_reply(batch.batch_id, "+886912000002", " stop ")
    for _ in range(2):
        result = sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at)
    assert result.replies == 0  # the second poll found nothing new
    replies = warehouse.query_arrow("SELECT mobile, reply_text, source FROM every8d_replies ORDER BY mobile")
    assert replies.to_pylist() == [
        {"mobile": "+886912000000", "reply_text": "Thanks!", "source": "poll"},
        {"mobile": "+886912000002", "reply_text": " stop ", "source": "poll"},
    ]
    suppressed = warehouse.query_arrow("SELECT mobile, source FROM every8d_suppressions").to_pylist()
    assert suppressed == [{"mobile": "+886912000002", "source": "reply"}]
