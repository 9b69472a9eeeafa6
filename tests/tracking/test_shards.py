"""The status sync in shards: disjoint shards, group commits, a killed shard, the wall clock, pushes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from every8d.hooks.every8d import Every8dHook
from every8d.pipelines import delivery_status as tasks
from every8d.sandbox import SandboxServer
from every8d.tracking.shards import ShardIncomplete, default_max_shards, shard_count, shard_of, sync_shard
from every8d.warehouse import open_warehouse
from every8d.warehouse.tables import ensure_tracking_tables
from tests.tracking.helpers import numbers, sandbox_rows, send_batch, snapshot, table_rows

ROOT = Path(__file__).resolve().parents[2]


def status_calls(sandbox) -> Counter:
    """getDeliveryStatus calls per batch id, from the sandbox's request log."""
    calls: Counter = Counter()
    for request in sandbox.requests():
        if request["endpoint"] and "DeliveryStatus" in request["endpoint"]:
            form = dict(part.split("=", 1) for part in request["body"].split("&") if "=" in part)
            calls[form.get("BID")] += 1
    return calls


def test_shard_sizes_are_bounded_and_batches_fall_in_exactly_one_shard():
    assert shard_count(0) == 0
    assert shard_count(1) == 1
    assert shard_count(10_000) == 2
    assert shard_count(10_000, max_shards=4) == 4
    assert shard_count(120, max_shards=4) == 3
    assert default_max_shards("duckdb") == 1 and default_max_shards("postgres") == 2
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(500)]
    for shards in (1, 3, 4):
        owners = Counter(shard_of(batch_id, shards) for batch_id in ids)
        assert set(owners) == set(range(shards)) and sum(owners.values()) == len(ids)


def test_every_shard_polls_only_its_batches_and_together_they_poll_each_once(
    sandbox, every8d_conn_env, warehouse_target
):
    """On DuckDB and Postgres: each group's polls are booked in one statement, for the right batches."""
    warehouse = open_warehouse(warehouse_target)
    batches = [send_batch(sandbox, warehouse, numbers(30, 1000 * n)) for n in range(9)]
    sandbox.advance(3600)
    before = status_calls(sandbox)
    hook = Every8dHook()
    results = [sync_shard(warehouse, hook, shard=k, shards=3, merge_group=2, concurrency=3) for k in range(3)]
    hook.close()
    assert sum(r.polled for r in results) == 9 and sum(r.closed for r in results) == 9
    assert [r.batches for r in results] == [
        sum(1 for b in batches if shard_of(b.batch_id, 3) == k) for k in range(3)
    ]
    calls = status_calls(sandbox) - before
    assert calls == Counter({b.batch_id: 1 for b in batches})
    for batch in batches:
        assert table_rows(warehouse, batch.batch_id) == sandbox_rows(sandbox, batch.batch_id)
    state = snapshot(warehouse)
    hook = Every8dHook()
    again = [sync_shard(warehouse, hook, shard=k, shards=3) for k in range(3)]  # nothing is due any more
    hook.close()
    assert sum(r.batches for r in again) == 0 and snapshot(warehouse) == state
    booked = warehouse.query_arrow(
        "SELECT batch_id, polls, listed, final_count, state FROM every8d_batches"
    ).to_pylist()
    assert (
        sorted((r["polls"], r["listed"], r["final_count"], r["state"]) for r in booked)
        == [(1, 30, 30, "closed")] * 9
    )


def test_a_group_of_new_and_known_batches_merges_like_one_batch_at_a_time(
    sandbox, every8d_conn_env, warehouse_target
):
    """One merge holding a batch seen before (its messages pending) and batches never seen: the new
    ones are inserted as they are, the known one moves on, one history row per change; a replay of the
    same group changes nothing (on DuckDB the two kinds take different statements)."""
    warehouse = open_warehouse(warehouse_target)
    sandbox.set_outcomes({"0001": 101})
    known = send_batch(sandbox, warehouse, numbers(3))
    hook = Every8dHook()
    first = sync_shard(warehouse, hook, shard=0, shards=1, clock=lambda: known.sent_at)
    assert (first.polled, first.closed, first.history_rows) == (1, 0, 3)
    fresh = [send_batch(sandbox, warehouse, numbers(4, 100 * n)) for n in (1, 2)]
    sandbox.advance(3600)
    later = known.sent_at + timedelta(hours=2)
    second = sync_shard(warehouse, hook, shard=0, shards=1, merge_group=3, clock=lambda: later)
    assert (second.polled, second.merges, second.closed) == (3, 1, 3)
    assert second.history_rows == 3 + 8  # the known batch's three changes, every new message once
    for batch in (known, *fresh):
        assert table_rows(warehouse, batch.batch_id) == sandbox_rows(sandbox, batch.batch_id)
    history = warehouse.query_arrow(
        "SELECT batch_id, mobile, status, previous_status FROM every8d_status_history "
        "ORDER BY batch_id, mobile, observed_at"
    ).to_pylist()
    assert [(h["status"], h["previous_status"]) for h in history if h["batch_id"] == known.batch_id] == [
        (0, None),
        (100, 0),
        (0, None),
        (101, 0),  # the number set to fail
        (0, None),
        (100, 0),
    ]
    assert all(h["previous_status"] is None for h in history if h["batch_id"] != known.batch_id)
    state = snapshot(warehouse)
    # The same observations again (every batch due once more by the clock): nothing changes but the polls.
    warehouse.execute("UPDATE every8d_batches SET state = 'open', next_poll_at = sent_at")
    replay = sync_shard(warehouse, hook, shard=0, shards=1, merge_group=3, clock=lambda: later)
    hook.close()
    assert (replay.polled, replay.history_rows, replay.message_rows) == (3, 0, 0)
    after = snapshot(warehouse)
    assert {k: after[k] for k in state if k != "every8d_batches"} == {
        k: state[k] for k in state if k != "every8d_batches"
    }


SHARD_PROCESS = """
import json, sys
from every8d.hooks.every8d import Every8dHook
from every8d.tracking.shards import sync_shard
from every8d.warehouse import open_warehouse
from every8d.warehouse.tables import ensure_tracking_tables
hook = Every8dHook()
result = sync_shard(open_warehouse(sys.argv[1]), hook, shard=0, shards=1, concurrency=1, merge_group=1)
print(json.dumps(result.to_json()))
"""


def test_a_killed_shard_loses_only_the_batch_in_progress_and_the_rerun_finishes(tmp_path):
    """SIGKILL a shard process mid-pass: what it committed stays, the rerun polls only the rest."""
    with SandboxServer(latency_ms=150) as server:
        sandbox = server.client()
        target = f"duckdb://{tmp_path / 'w.duckdb'}"
        warehouse = open_warehouse(target)
        env = {
            **os.environ,
            "AIRFLOW_CONN_EVERY8D_DEFAULT": sandbox.connection_json(),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
        }
        os.environ["AIRFLOW_CONN_EVERY8D_DEFAULT"] = sandbox.connection_json()
        try:
            batches = [send_batch(sandbox, warehouse, numbers(20, 100 * n)) for n in range(24)]
            sandbox.advance(3600)
            process = subprocess.Popen(
                [sys.executable, "-c", SHARD_PROCESS, target],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 120
            closed = 0
            while closed < 3 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.3)
                try:
                    with open_warehouse(target) as look:
                        closed = (
                            look.query_arrow(
                                "SELECT count(*) AS n FROM every8d_batches WHERE state = 'closed'"
                            )
                            .column("n")[0]
                            .as_py()
                        )
                except Exception:  # the shard holds the file for a merge: look again
                    continue
            assert process.poll() is None, "the shard finished before it could be killed"
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
            with open_warehouse(target) as look:
                done = {
                    r["batch_id"]
                    for r in look.query_arrow(
                        "SELECT batch_id FROM every8d_batches WHERE state = 'closed'"
                    ).to_pylist()
                }
            assert 3 <= len(done) < len(batches)
            before = status_calls(sandbox)
            hook = Every8dHook()
            rerun = sync_shard(warehouse, hook, shard=0, shards=1)
            hook.close()
            assert rerun.batches == len(batches) - len(done)
            polled_again = status_calls(sandbox) - before
            assert not (set(polled_again) & done)  # committed batches are not polled twice
            for batch in batches:
                assert table_rows(warehouse, batch.batch_id) == sandbox_rows(sandbox, batch.batch_id)
        finally:
            os.environ.pop("AIRFLOW_CONN_EVERY8D_DEFAULT", None)


def test_a_failing_batch_fails_the_shard_after_the_others_are_merged(sandbox, every8d_conn_env, tmp_path):
    warehouse = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    batches = [send_batch(sandbox, warehouse, numbers(5, 100 * n)) for n in range(4)]
    sandbox.advance(3600)
    sandbox.inject_fault("getDeliveryStatus", "garbage", count=1)  # one answer is not a status page
    hook = Every8dHook()
    with pytest.raises(ShardIncomplete, match="1 of 4 batch") as raised:
        sync_shard(warehouse, hook, shard=0, shards=1)
    assert raised.value.result.polled == 3
    states = {
        r["batch_id"]: r["state"]
        for r in warehouse.query_arrow("SELECT batch_id, state FROM every8d_batches").to_pylist()
    }
    assert sorted(states.values()) == ["closed", "closed", "closed", "open"]
    retry = sync_shard(warehouse, hook, shard=0, shards=1)  # what Airflow's retry does
    hook.close()
    assert retry.batches == 1 and retry.closed == 1
    for batch in batches:
        assert table_rows(warehouse, batch.batch_id) == sandbox_rows(sandbox, batch.batch_id)


def test_due_and_expiry_use_the_wall_clock_not_the_runs_time(
    sandbox, every8d_conn_env, tmp_path, monkeypatch
):
    """A batch past its validity (by the wall clock) closes as expired in a run whatever its run_after."""
    target = f"duckdb://{tmp_path / 'w.duckdb'}"
    monkeypatch.setenv("AIRFLOW__EVERY8D__WAREHOUSE", target)
    warehouse = open_warehouse(target)
    batch = send_batch(sandbox, warehouse, numbers(4), validity_minutes=5)  # messages stay "sent" (0)
    old = datetime.now(UTC) - timedelta(hours=3)
    warehouse.execute(
        "UPDATE every8d_batches SET sent_at = ?, next_poll_at = ? WHERE batch_id = ?",
        [old, old, batch.batch_id],
    )
    plan = tasks.plan_shards({})
    assert plan == [{"shard": 0, "shards": 1}]
    result = tasks.sync_status_shard({}, plan[0])
    assert result["closed"] == 1 and result["expired"] == 4
    row = warehouse.query_arrow("SELECT state, closed_reason, closed_at FROM every8d_batches").to_pylist()[0]
    assert (row["state"], row["closed_reason"]) == ("closed", "expired")
    assert abs((row["closed_at"] - datetime.now(UTC)).total_seconds()) < 120


def test_batches_that_pushes_made_all_final_close_without_a_poll(
    sandbox, every8d_conn_env, tmp_path, monkeypatch
):
    target = f"duckdb://{tmp_path / 'w.duckdb'}"
    monkeypatch.setenv("AIRFLOW__EVERY8D__WAREHOUSE", target)
    warehouse = open_warehouse(target)
    settled = send_batch(sandbox, warehouse, numbers(6))
    partly = send_batch(sandbox, warehouse, numbers(6, 100))
    sandbox.advance(3600)
    # What the push merge leaves when every message of `settled` was pushed final, and one of `partly` not.
    ensure_tracking_tables(warehouse)
    now = datetime.now(UTC)
    for batch, pending in ((settled, 0), (partly, 1)):
        for seq, (mobile, _, status, _points, _received) in enumerate(sandbox_rows(sandbox, batch.batch_id)):
            final = seq >= pending
            warehouse.execute(
                "INSERT INTO every8d_messages (batch_id, mobile, seq, kind, status, status_group, is_final, "
                "first_seen_at, updated_at, source) VALUES (?, ?, 1, 'sms', ?, ?, ?, ?, ?, 'push')",
                [
                    batch.batch_id,
                    mobile,
                    status if final else 0,
                    "delivered" if final else "pending",
                    final,
                    now,
                    now,
                ],
            )
    before = status_calls(sandbox)
    plan = tasks.plan_shards({})
    state = {
        r["batch_id"]: r["state"]
        for r in warehouse.query_arrow("SELECT batch_id, state FROM every8d_batches").to_pylist()
    }
    assert state == {settled.batch_id: "closed", partly.batch_id: "open"}
    for shard in plan:
        tasks.sync_status_shard({}, shard)
    assert set(status_calls(sandbox) - before) == {partly.batch_id}
    assert json.dumps(plan)  # XCom-friendly
