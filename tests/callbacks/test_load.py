"""A bounded loopback load: 20,000 pushes, 10% duplicates, 32 at a time — none lost, none counted twice."""

from __future__ import annotations

from bench.loadgen import make_pushes, run_load
from every8d.callbacks.flush import flush_journal
from every8d.warehouse import open_warehouse

PUSHES = 20_000


def test_twenty_thousand_pushes(receiver, duckdb_target):
    pushes, keys = make_pushes(PUSHES, duplicate_share=0.1, seed=20)
    assert len(keys) == PUSHES - PUSHES // 10
    before = receiver.count()

    result = run_load(receiver.push_url, receiver.token, pushes, concurrency=32)

    assert result.statuses == {200: PUSHES} and result.errors == 0
    journaled = {r["event_key"] for r in receiver.rows() if r["batch_id"].startswith("load-")}
    assert journaled == keys and receiver.count() - before == len(keys)
    flushed = flush_journal(duckdb_target, journal_path=receiver.journal_path)
    assert (flushed.read, flushed.events_written) == (len(keys), len(keys))
    with open_warehouse(duckdb_target) as wh:
        stored = wh.query_arrow(
            "SELECT event_key, count(*) AS n FROM every8d_push_events WHERE batch_id LIKE 'load-%' GROUP BY 1"
        )
    assert set(stored["event_key"].to_pylist()) == keys  # zero lost
    assert set(stored["n"].to_pylist()) == {1}  # zero counted twice
