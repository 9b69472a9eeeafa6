"""From the journal to the warehouse: events once, replies once, opt-outs suppressed; safe to repeat."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest

from every8d.callbacks.flush import flush_journal
from every8d.callbacks.journal import Journal
from every8d.callbacks.params import parse_push
from every8d.tracking.replies import reply_event_key
from every8d.warehouse import open_warehouse

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)


def push(batch: str, mobile: str, status: int, rt: str, sm: str = "", mr: str = "", received: datetime = NOW):
    query = urlencode({"BatchID": batch, "RM": mobile, "RT": rt, "STATUS": status, "SM": sm, "MR": mr})
    return parse_push(query.encode(), received_at=received)


EVENTS = [
    push("b-1", "0912000001", 0, "20260301090000", mr="r1"),
    push("b-1", "0912000001", 100, "20260301090040", mr="r1"),
    push("b-1", "0912000002", 0, "20260301090000", mr="r2"),
    push("b-1", "0912000002", 999, "20260301091500", sm="STOP please", mr="r2"),
    push("b-1", "0912000003", 999, "20260301091600", sm="好的 收到"),
    push("b-1", "0912000004", 999, "20260301091700", sm="'; DROP TABLE every8d_replies; --"),
    push("b-2", "+886912000005", 999, "20260301091800", sm="不要！"),
    push("b-2", "+886912000005", 999, "20260301091800", sm="不要！", mr="other-mr"),  # same reply, other MR
]


def table(wh, sql: str) -> list[dict]:
    return wh.query_arrow(sql).to_pylist()


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite3") as j:
        j.append(EVENTS)
        yield j


def test_flush_writes_events_replies_and_opt_outs(journal, warehouse_target):
    result = flush_journal(warehouse_target, journal_path=journal.path, now=NOW)
    assert (result.read, result.events_written, result.replies_written, result.opt_outs_added) == (8, 8, 4, 2)
    assert journal.count(pending_only=True) == 0
    with open_warehouse(warehouse_target) as wh:
        events = table(wh, "SELECT * FROM every8d_push_events ORDER BY reported_at, status, mr")
        assert {e["event_key"] for e in events} == {e.key for e in EVENTS}
        first = events[0]
        assert (first["batch_id"], first["mobile"], first["mr"], first["status"]) == (
            "b-1",
            "+886912000001",
            "r1",
            0,
        )
        assert first["reported_at"] == datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)
        assert first["received_at"] == NOW and first["reply_text"] is None
        replies = table(wh, "SELECT * FROM every8d_replies ORDER BY replied_at")
        assert [(r["mobile"], r["reply_text"], r["source"]) for r in replies] == [
            ("+886912000002", "STOP please", "push"),
            ("+886912000003", "好的 收到", "push"),
            ("+886912000004", "'; DROP TABLE every8d_replies; --", "push"),
            ("+886912000005", "不要！", "push"),
        ]
        assert replies[0]["event_key"] == reply_event_key(
            "b-1", "+886912000002", replies[0]["replied_at"], "STOP please"
        )
        suppressed = table(wh, "SELECT mobile, reason, source FROM every8d_suppressions ORDER BY mobile")
        assert suppressed == [
            {"mobile": "+886912000002", "reason": "opt-out reply", "source": "push"},
            {"mobile": "+886912000005", "reason": "opt-out reply", "source": "push"},
        ]


def test_flushing_again_or_after_a_crash_changes_nothing(journal, duckdb_target):
    flush_journal(duckdb_target, journal_path=journal.path, now=NOW)
    assert flush_journal(duckdb_target, journal_path=journal.path, now=NOW).read == 0
    # A crash between the warehouse commit and the watermark: the next flush replays everything.
    journal.conn.execute("UPDATE flush_state SET flushed_seq = 0")
    replay = flush_journal(duckdb_target, journal_path=journal.path, now=NOW)
    assert (replay.read, replay.events_written, replay.replies_written, replay.opt_outs_added) == (8, 0, 0, 0)
    with open_warehouse(duckdb_target) as wh:
        counts = [
            table(wh, f"SELECT count(*) AS n FROM {t}")[0]["n"]
            for t in ("every8d_push_events", "every8d_replies", "every8d_suppressions")
        ]
    assert counts == [8, 4, 2]


def test_flush_in_small_batches_and_prune(journal, duckdb_target):
    result = flush_journal(
        duckdb_target,
        journal_path=journal.path,
        batch_rows=3,
        keep=timedelta(0),
        now=NOW + timedelta(seconds=1),
    )
    assert (result.read, result.events_written, result.pruned) == (8, 8, 8)
    assert journal.count() == 0
    # A late duplicate after pruning is journaled again, and the warehouse still holds it once.
    journal.append([EVENTS[1]])
    assert flush_journal(duckdb_target, journal_path=journal.path, now=NOW).events_written == 0
    with open_warehouse(duckdb_target) as wh:
        assert table(wh, "SELECT count(*) AS n FROM every8d_push_events")[0]["n"] == 8


def test_configured_keywords_and_a_missing_journal(journal, tmp_path, duckdb_target):
    result = flush_journal(duckdb_target, journal_path=journal.path, opt_out_keywords=["好的"], now=NOW)
    assert result.opt_outs_added == 1
    empty = flush_journal(duckdb_target, journal_path=tmp_path / "nothing-here.sqlite3")
    assert empty.read == 0 and not (tmp_path / "nothing-here.sqlite3").exists()


def test_pruning_keeps_unflushed_and_recent_rows(journal, duckdb_target):
    flush_journal(duckdb_target, journal_path=journal.path, keep=timedelta(days=7), now=NOW)
    assert journal.count() == 8  # flushed but recent
    late = push("b-3", "0912000009", 100, "20260301100000", received=NOW - timedelta(days=30))
    journal.append([late])  # old, but not flushed yet
    assert journal.prune(NOW + timedelta(seconds=1)) == 8
    assert [row[1] for row in journal.read_after(0, 10)] == [late.key]
