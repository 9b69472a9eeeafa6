"""From the journal to the warehouse: push events once, safe to repeat, and two flushers never split a
journal.

The flush writes push events only; the push merge derives replies and opt-outs from them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from warehouse_fixtures import WAREHOUSE_KINDS, mariadb_database, mariadb_target_for  # noqa: F401

from every8d.callbacks.flush import flush_journal
from every8d.callbacks.journal import Journal
from every8d.callbacks.params import parse_push
from every8d.optout import OptOutMatcher
from every8d.tracking.batches import register_batches
from every8d.tracking.pushes import merge_push_events
from every8d.tracking.replies import reply_event_key
from every8d.warehouse import open_warehouse
from every8d.warehouse.tables import ensure_tracking_tables

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


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


@pytest.fixture
def mariadb_target(mariadb_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from every8d.warehouse.tables import TRACKING_TABLES

    return mariadb_target_for(mariadb_database, monkeypatch, [spec.name for spec in TRACKING_TABLES])


@pytest.fixture(params=WAREHOUSE_KINDS)
def warehouse_target(request: pytest.FixtureRequest) -> str:
    """This module's flushes run on MariaDB too (the callbacks' conftest has DuckDB and Postgres)."""
    return request.getfixturevalue(f"{request.param}_target")


def table(wh, sql: str) -> list[dict]:
    return wh.query_arrow(sql).to_pylist()


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite3") as j:
        j.append(EVENTS)
        yield j


def register(wh, *batch_ids: str) -> None:
    register_batches(
        wh,
        [
            {
                "batch_id": b,
                "campaign_id": "c",
                "kind": "sms",
                "sent_at": NOW,
                "scheduled_at": None,
                "recipients": 1,
                "points": Decimal("1.00"),
                "validity_minutes": 60,
            }
            for b in batch_ids
        ],
    )


def test_flush_writes_events_only_and_the_merge_derives_replies_and_opt_outs(journal, warehouse_target):
    result = flush_journal(warehouse_target, journal_path=journal.path, now=NOW)
    assert (result.read, result.events_written) == (8, 8)
    assert journal.count(pending_only=True) == 0
    with open_warehouse(warehouse_target) as wh:
        ensure_tracking_tables(wh)
        assert table(wh, "SELECT count(*) AS n FROM every8d_replies")[0]["n"] == 0
        assert table(wh, "SELECT count(*) AS n FROM every8d_suppressions")[0]["n"] == 0
        register(wh, "b-1", "b-2")
        assert merge_push_events(wh, now=NOW).replies == 4
        events = table(wh, "SELECT * FROM every8d_push_events ORDER BY reported_at, status, mr")
        assert {e["event_key"] for e in events} == {e.key for e in EVENTS}
        first = events[0]
        assert (first["batch_id"], first["mobile"], first["mr"], first["status"]) == (
            "b-1",
            "+886912000001",
            "r1",
            0,
        )
        assert first["reported_at"] == datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
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
            {"mobile": "+886912000002", "reason": "opt-out reply", "source": "reply"},
            {"mobile": "+886912000005", "reason": "opt-out reply", "source": "reply"},
        ]


def test_flushing_again_or_after_a_crash_changes_nothing(journal, duckdb_target):
    flush_journal(duckdb_target, journal_path=journal.path, now=NOW)
    assert flush_journal(duckdb_target, journal_path=journal.path, now=NOW).read == 0
    # The journal's own copy of the watermark is not what counts: the warehouse's is.
    journal.conn.execute("UPDATE flush_state SET flushed_seq = 0")
    assert flush_journal(duckdb_target, journal_path=journal.path, now=NOW).read == 0
    # A warehouse watermark set back (say, a restored warehouse): replaying everything changes nothing.
    with open_warehouse(duckdb_target) as wh:
        wh.execute("UPDATE every8d_push_flush_state SET flushed_seq = 0")
    replay = flush_journal(duckdb_target, journal_path=journal.path, now=NOW)
    assert (replay.read, replay.events_written) == (8, 0)
    with open_warehouse(duckdb_target) as wh:
        assert table(wh, "SELECT count(*) AS n FROM every8d_push_events")[0]["n"] == 8
        assert table(wh, "SELECT journal_id, flushed_seq FROM every8d_push_flush_state") == [
            {"journal_id": journal.journal_id(), "flushed_seq": 8}
        ]


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
    flush_journal(duckdb_target, journal_path=journal.path, now=NOW)
    with open_warehouse(duckdb_target) as wh:
        register(wh, "b-1", "b-2")
        merge_push_events(wh, now=NOW, matcher=OptOutMatcher(["好的"]))
        assert table(wh, "SELECT mobile FROM every8d_suppressions") == [{"mobile": "+886912000003"}]
    empty = flush_journal(duckdb_target, journal_path=tmp_path / "nothing-here.sqlite3")
    assert empty.read == 0 and not (tmp_path / "nothing-here.sqlite3").exists()


def test_pruning_keeps_unflushed_and_recent_rows(journal, duckdb_target):
    flush_journal(duckdb_target, journal_path=journal.path, keep=timedelta(days=7), now=NOW)
    assert journal.count() == 8  # flushed but recent
    late = push("b-3", "0912000009", 100, "20260301100000", received=NOW - timedelta(days=30))
    journal.append([late])  # old, but not flushed yet
    assert journal.prune(NOW + timedelta(seconds=1)) == 8
    assert [row[1] for row in journal.read_after(0, 10)] == [late.key]


FLUSHER = """
import json, sys, time
from pathlib import Path
from every8d.callbacks.flush import flush_journal
from every8d.warehouse import open_warehouse
open_warehouse(sys.argv[1]).close()  # drivers loaded: what is left is the race itself
start = Path(sys.argv[3])
Path(sys.argv[4]).touch()
while not start.exists():
    time.sleep(0.01)
print(json.dumps(flush_journal(sys.argv[1], journal_path=sys.argv[2], batch_rows=10).__dict__))
"""


# A flusher process on a SQL warehouse imports Airflow (seconds each): DuckDB (the file lock) and
# MariaDB (row locks, where a stray DROP TABLE would commit and free them) stand for the kinds.
@pytest.mark.parametrize("warehouse_target", ["duckdb", "mariadb"], indirect=True)
def test_two_flushers_started_together_neither_split_nor_double_the_journal(tmp_path, warehouse_target):
    """The flush DAG and the status DAG flush the same journal at once: every row is read by one of them."""
    pushes = [push("b-9", f"09120{i:05d}", 100, "20260301090000", mr=f"m{i}") for i in range(60)]
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.append(pushes)
        journal_id = journal.journal_id()
    start = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    flushers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                FLUSHER,
                warehouse_target,
                str(journal.path),
                str(start),
                str(tmp_path / f"ready-{n}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in range(2)) and time.monotonic() < deadline:
        time.sleep(0.02)
    start.touch()  # both ready: they go at once
    results = []
    for flusher in flushers:
        out, err = flusher.communicate(timeout=120)
        assert flusher.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["read"] for r in results) == len(pushes)  # one flusher per row: none read twice
    assert sum(r["events_written"] for r in results) in (len(pushes), -len(results))  # -1 where untold
    with open_warehouse(warehouse_target) as wh:
        assert table(wh, "SELECT count(*) AS n FROM every8d_push_events")[0]["n"] == len(pushes)
        assert table(
            wh, f"SELECT flushed_seq FROM every8d_push_flush_state WHERE journal_id = '{journal_id}'"
        ) == [{"flushed_seq": len(pushes)}]
