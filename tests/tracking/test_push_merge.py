"""Push events (as the push endpoint writes them) merged into messages, history and replies."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from every8d.client.results import ParamRecipient
from every8d.hooks.every8d import Every8dHook
from every8d.tracking.batches import register_batches
from every8d.tracking.pushes import merge_push_events
from every8d.tracking.sync import DueBatch, SyncOptions, sync_batch
from every8d.warehouse.tables import PUSH_EVENTS, ensure_tracking_tables
from tests.tracking.helpers import numbers, send_batch, snapshot

pytestmark = pytest.mark.usefixtures("every8d_conn_env")

A, B = "+886912000000", "+886912000001"


def push(warehouse, batch_id: str, events: list[tuple], received_at: datetime) -> None:
    """Append events ``(key, mobile, mr, status, reported_at, reply_text)`` to every8d_push_events."""
    ensure_tracking_tables(warehouse)
    rows = [
        {
            "batch_id": batch_id,
            "mobile": mobile,
            "mr": mr,
            "status": status,
            "reported_at": reported,
            "received_at": received_at,
            "reply_text": reply,
            "event_key": key,
        }
        for key, mobile, mr, status, reported, reply in events
    ]
    warehouse.append(PUSH_EVENTS.name, pa.Table.from_pylist(rows, schema=PUSH_EVENTS.schema))


def current(warehouse) -> dict[tuple, tuple]:
    rows = warehouse.query_arrow(
        "SELECT mobile, seq, status, status_group, is_final, source FROM every8d_messages"
    )
    return {
        (r["mobile"], r["seq"]): (r["status"], r["status_group"], r["is_final"], r["source"])
        for r in rows.to_pylist()
    }


def test_pushes_arrive_duplicated_and_out_of_order(sandbox, warehouse):
    batch = send_batch(sandbox, warehouse, numbers(2))
    t = batch.sent_at
    push(
        warehouse,
        batch.batch_id,
        [
            ("e1", A, None, 100, t + timedelta(seconds=40), None),  # final first...
            ("e2", A, None, 0, t + timedelta(seconds=5), None),  # ...its earlier "sent" arrives late
            ("e3", A, None, 100, t + timedelta(seconds=40), None),  # a retried duplicate
            ("e4", B, None, 0, t + timedelta(seconds=5), None),
        ],
        received_at=t + timedelta(minutes=1),
    )
    result = merge_push_events(warehouse, now=t + timedelta(minutes=2))

    assert result.claimed == 4
    assert current(warehouse) == {
        (A, 1): (100, "delivered", True, "push"),
        (B, 1): (0, "pending", False, "push"),
    }
    # A later "sent" for A, after its delivery, changes nothing.
    push(
        warehouse,
        batch.batch_id,
        [("e5", A, None, 0, t + timedelta(minutes=3), None)],
        t + timedelta(minutes=3),
    )
    late = merge_push_events(warehouse, now=t + timedelta(minutes=4))
    assert (late.claimed, late.history_rows, late.message_rows) == (1, 0, 0)
    assert current(warehouse)[(A, 1)] == (100, "delivered", True, "push")

    # The poll then fills in what pushes do not carry (points, send time) and moves B on.
    sandbox.advance(3600)
    sync_batch(warehouse, Every8dHook(), batch, now=t + timedelta(hours=1))
    rows = warehouse.query_arrow(
        "SELECT mobile, status, source, points, sent_at FROM every8d_messages ORDER BY mobile"
    ).to_pylist()
    assert [(r["status"], r["source"]) for r in rows] == [(100, "push"), (100, "poll")]
    assert all(r["points"] is not None and r["sent_at"] is not None for r in rows)
    history = warehouse.query_arrow(
        "SELECT mobile, status, source FROM every8d_status_history ORDER BY mobile, observed_at"
    ).to_pylist()
    assert [(h["mobile"], h["status"], h["source"]) for h in history] == [
        (A, 100, "push"),
        (B, 0, "push"),
        (B, 100, "poll"),
    ]
    before = snapshot(warehouse)
    assert merge_push_events(warehouse, now=t + timedelta(hours=2)).claimed == 0
    assert snapshot(warehouse) == before


def test_a_push_finds_its_message_by_mr_even_for_a_repeated_number(sandbox, warehouse):
    hook = Every8dHook()
    result = hook.send_param_sms(
        [
            ParamRecipient(A, ("first",), record_id="mr-1"),
            ParamRecipient(A, ("second",), record_id="mr-2"),
        ],
    )
    sent_at = sandbox.now()
    register_batches(
        warehouse,
        [
            {
                "batch_id": result.batch_id,
                "campaign_id": "vip",
                "kind": "sms",
                "sent_at": sent_at,
                "scheduled_at": None,
                "recipients": 2,
                "points": result.cost,
                "validity_minutes": 1440,
            }
        ],
    )
    batch = DueBatch(result.batch_id, "sms", sent_at, None, 1440)
    sync_batch(warehouse, hook, batch, now=sent_at, options=SyncOptions(with_record_ids=True))
    mrs = warehouse.query_arrow("SELECT seq, mr FROM every8d_messages ORDER BY seq").to_pylist()
    assert mrs == [{"seq": 1, "mr": "mr-1"}, {"seq": 2, "mr": "mr-2"}]

    push(
        warehouse,
        batch.batch_id,
        [("e1", A, "mr-2", 103, sent_at + timedelta(seconds=9), None)],
        sent_at + timedelta(seconds=10),
    )
    merge_push_events(warehouse, now=sent_at + timedelta(minutes=1))
    assert current(warehouse) == {
        (A, 1): (0, "pending", False, "poll"),
        (A, 2): (103, "failed", True, "push"),
    }


def test_reply_pushes_become_replies_and_opt_outs(sandbox, warehouse):
    batch = send_batch(sandbox, warehouse, numbers(2))
    t = batch.sent_at
    push(
        warehouse,
        batch.batch_id,
        [
            ("r1", A, None, 999, t + timedelta(minutes=3), "退訂"),
            ("r2", A, None, 999, t + timedelta(minutes=3), "退訂"),  # the same reply pushed twice
            ("r3", B, None, 999, t + timedelta(minutes=4), "ok thanks"),
        ],
        received_at=t + timedelta(minutes=5),
    )
    result = merge_push_events(warehouse, now=t + timedelta(minutes=6))
    assert result.replies == 2
    assert current(warehouse) == {}  # a reply is not a delivery status
    replies = warehouse.query_arrow(
        "SELECT mobile, reply_text FROM every8d_replies ORDER BY mobile"
    ).to_pylist()
    assert replies == [{"mobile": A, "reply_text": "退訂"}, {"mobile": B, "reply_text": "ok thanks"}]
    assert warehouse.query_arrow("SELECT mobile FROM every8d_suppressions").to_pylist() == [{"mobile": A}]

    # The same reply read by polling getReplyMessage is recognised (same event key).
    sandbox.add_reply(batch.batch_id, A, "退訂", at=t + timedelta(minutes=3))
    polled = sync_batch(warehouse, Every8dHook(), batch, now=t + timedelta(minutes=7))
    assert polled.replies == 0


def test_events_of_an_unregistered_batch_wait_for_its_registration(sandbox, warehouse):
    hook = Every8dHook()
    result = hook.send_sms("hello", [A])
    sent_at = sandbox.now()
    push(
        warehouse,
        result.batch_id,
        [("e1", A, None, 100, sent_at + timedelta(seconds=30), None)],
        sent_at + timedelta(minutes=1),
    )
    assert merge_push_events(warehouse, now=sent_at + timedelta(minutes=1)).claimed == 0
    register_batches(
        warehouse,
        [
            {
                "batch_id": result.batch_id,
                "campaign_id": None,
                "kind": "sms",
                "sent_at": sent_at,
                "scheduled_at": None,
                "recipients": 1,
                "points": result.cost,
                "validity_minutes": 1440,
            }
        ],
    )
    assert merge_push_events(warehouse, now=sent_at + timedelta(minutes=2)).claimed == 1
    assert current(warehouse) == {(A, 1): (100, "delivered", True, "push")}


def test_two_final_pushes_for_a_number_listed_twice_reach_both_messages(sandbox, warehouse):
    """Issue 12, point 14: without an MR we know, each final push gets its own message; no MR sticks
    wrongly."""
    batch = send_batch(sandbox, warehouse, [numbers(1)[0], numbers(1)[0], numbers(2)[1]])
    t = batch.sent_at
    sync_batch(warehouse, Every8dHook(), batch, now=t, options=SyncOptions(poll_replies=False))
    push(
        warehouse,
        batch.batch_id,
        [
            ("f1", A, "MR-unknown-1", 100, t + timedelta(seconds=30), None),
            ("f1-retry", A, "MR-unknown-1", 100, t + timedelta(seconds=30), None),  # the same push again
            ("f2", A, "MR-unknown-2", 101, t + timedelta(seconds=50), None),
        ],
        received_at=t + timedelta(minutes=1),
    )
    merge_push_events(warehouse, now=t + timedelta(minutes=2))
    rows = warehouse.query_arrow(
        "SELECT seq, status, mr FROM every8d_messages WHERE mobile = ? ORDER BY seq", [A]
    ).to_pylist()
    assert [(r["seq"], r["status"]) for r in rows] == [(1, 100), (2, 101)]
    assert [r["mr"] for r in rows] == [
        None,
        None,
    ]  # a number listed twice: an unknown MR could be the wrong one


def test_a_push_with_a_known_mr_goes_to_that_message(sandbox, warehouse):
    hook = Every8dHook()
    result = hook.send_param_sms(
        [ParamRecipient(A, ["x"], record_id="m1"), ParamRecipient(A, ["y"], record_id="m2")],
        template="%field1%",
    )
    t = sandbox.now()
    register_batches(
        warehouse,
        [
            {
                "batch_id": result.batch_id,
                "campaign_id": "c",
                "kind": "sms",
                "sent_at": t,
                "scheduled_at": None,
                "recipients": 2,
                "points": result.cost,
                "validity_minutes": 1440,
            }
        ],
    )
    batch = DueBatch(result.batch_id, "sms", t, None, 1440)
    sync_batch(warehouse, hook, batch, now=t, options=SyncOptions(with_record_ids=True, poll_replies=False))
    push(
        warehouse,
        batch.batch_id,
        [("p2", A, "m2", 103, t + timedelta(seconds=9), None)],
        t + timedelta(minutes=1),
    )
    merge_push_events(warehouse, now=t + timedelta(minutes=2))
    rows = warehouse.query_arrow("SELECT mr, status FROM every8d_messages ORDER BY mr").to_pylist()
    assert rows == [{"mr": "m1", "status": 0}, {"mr": "m2", "status": 103}]
