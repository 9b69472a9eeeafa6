"""The sandbox gateway pushes to a real receiver: duplicated, reordered, retried — each event counted once."""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict

from every8d.callbacks.events import event_key
from every8d.callbacks.flush import flush_journal
from every8d.callbacks.params import normalize_mobile
from every8d.hooks.every8d import Every8dHook
from every8d.tracking.batches import register_batches
from every8d.tracking.pushes import merge_push_events
from every8d.warehouse import open_warehouse

NUMBERS = [f"+8869120{i:05d}" for i in range(30)]


def key_of(params: dict) -> str:
    return event_key(
        params["BatchID"],
        normalize_mobile(params["RM"]),
        params["MR"].strip(),
        int(params["STATUS"]),
        params["RT"],
        params["SM"],
    )


def delivered(sandbox) -> tuple[set[str], int]:
    """Keys of the pushes the sandbox sent (each retried until a 200), and how many deliveries that took."""
    attempts = defaultdict(list)
    for entry in sandbox.pushes():
        attempts[entry["push_id"]].append(entry)
    assert all(any(a["status"] == 200 for a in tries) for tries in attempts.values()), "a push was given up"
    return {key_of(tries[0]["params"]) for tries in attempts.values()}, len(attempts)


def send(sandbox, warehouse_target: str, numbers: list[str]) -> str:
    hook = Every8dHook()
    result = hook.send_sms("Spring sale today", numbers)
    hook.close()
    with open_warehouse(warehouse_target) as wh:
        register_batches(
            wh,
            [
                {
                    "batch_id": result.batch_id,
                    "campaign_id": "spring",
                    "kind": "sms",
                    "sent_at": sandbox.now(),
                    "scheduled_at": None,
                    "recipients": len(numbers),
                    "points": result.cost,
                    "validity_minutes": 1440,
                }
            ],
        )
    return result.batch_id


def test_duplicated_reordered_pushes_end_to_end(sandbox, every8d_conn_env, receiver, duckdb_target):
    sandbox.set_push(receiver.registered_url, duplicates=2, reorder=True, concurrency=8)
    sandbox.set_outcomes({"00001": 103, "00002": 107})
    batch_id = send(sandbox, duckdb_target, NUMBERS)
    sandbox.add_reply(batch_id, NUMBERS[3], "STOP")
    sandbox.add_reply(batch_id, NUMBERS[4], "好的 收到")
    sandbox.add_reply(batch_id, NUMBERS[5], "'); DROP TABLE every8d_replies; --")
    assert sandbox.drain_pushes(30)
    sandbox.advance(3600)  # every message reaches its final status: more pushes
    assert sandbox.drain_pushes(30)

    sent, deliveries = delivered(sandbox)
    assert deliveries == 3 * len(sent)  # every event pushed three times
    assert len(sent) == 2 * len(NUMBERS) + 3  # "sent" and a final status per number, plus the replies
    journaled = receiver.rows(batch_id)
    assert {r["event_key"] for r in journaled} == sent and len(journaled) == len(sent)

    flush_journal(duckdb_target, journal_path=receiver.journal_path)
    with open_warehouse(duckdb_target) as wh:
        events = wh.query_arrow("SELECT event_key FROM every8d_push_events WHERE batch_id = ?", [batch_id])
        assert sorted(events["event_key"].to_pylist()) == sorted(sent)
        # The status sync merges them: replies and opt-outs come from the events, final statuses win
        # whatever the arrival order.
        merge_push_events(wh)
        replies = wh.query_arrow(
            "SELECT mobile, reply_text FROM every8d_replies WHERE batch_id = ? ORDER BY mobile", [batch_id]
        ).to_pylist()
        assert [(r["mobile"], r["reply_text"]) for r in replies] == [
            (NUMBERS[3], "STOP"),
            (NUMBERS[4], "好的 收到"),
            (NUMBERS[5], "'); DROP TABLE every8d_replies; --"),
        ]
        suppressed = wh.query_arrow("SELECT mobile FROM every8d_suppressions")["mobile"].to_pylist()
        assert suppressed == [NUMBERS[3]]
        rows = wh.query_arrow("SELECT mobile, status FROM every8d_messages WHERE batch_id = ?", [batch_id])
        current = dict(zip(rows["mobile"].to_pylist(), rows["status"].to_pylist(), strict=True))
    expected = {m["mobile"]: m["status"] for m in sandbox.messages(batch_id)}
    assert current == expected and set(expected.values()) == {100, 103, 107}


def test_pushes_refused_while_the_journal_is_locked_are_retried_not_lost(
    sandbox, every8d_conn_env, fresh_receiver, duckdb_target
):
    sandbox.set_push(fresh_receiver.registered_url, retry_delay=0.25, attempts=10, concurrency=4)
    assert fresh_receiver.push(BatchID="warm-up", RM="0912345678", RT="20260301090000", STATUS="0")[0] == 200
    blocker = sqlite3.connect(fresh_receiver.journal_path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.5, lambda: blocker.execute("ROLLBACK"))
    release.start()
    batch_id = send(sandbox, duckdb_target, NUMBERS[:8])
    try:
        assert sandbox.drain_pushes(60)
    finally:
        release.join()
        blocker.close()
    log = sandbox.pushes()
    assert any(entry["status"] == 503 for entry in log)  # the lock really refused some
    sent, _ = delivered(sandbox)
    assert {r["event_key"] for r in fresh_receiver.rows(batch_id)} == sent and len(sent) == 8
