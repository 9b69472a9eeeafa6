"""Analysts query while the pipeline runs: their session never takes the pipeline's lock."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import duckdb
import pytest

from every8d.warehouse.duckdb_file import DuckDbWarehouse


def test_an_analyst_session_held_open_blocks_neither_a_status_pass_nor_a_campaign(demo_campaign):
    run, record, _ = demo_campaign
    assert run.analyst_alive_throughout
    assert run.analyst_first_count == 0  # opened before anything was sent
    assert run.analyst_old_session_count == 0  # the old session keeps its snapshot
    sent = sum(len(messages) for messages in record.values())
    assert sent > 0
    with duckdb.connect(str(run.analyst_db), read_only=True) as fresh:  # a reconnect sees the new pass
        assert fresh.execute("SELECT count(*) FROM every8d_messages").fetchone()[0] == sent
        statuses = dict(fresh.execute("SELECT status, count(*) FROM every8d_messages GROUP BY 1").fetchall())
        summary = fresh.execute(
            "SELECT sent, replies, opt_outs FROM every8d_campaign_summary WHERE campaign_id = ?",
            [run.campaign_id],
        ).fetchone()
    expected: dict[int, int] = {}
    for messages in record.values():
        for message in messages:
            expected[message["status"]] = expected.get(message["status"], 0) + 1
    assert statuses == expected
    assert summary == (sent, 2, 1)


def test_every8d_query_reads_the_analysts_file_and_lets_go(demo_campaign):
    run, record, _ = demo_campaign
    env = {**run.env}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "every8d",
            "query",
            "--format",
            "json",
            "SELECT sent, delivered FROM every8d_campaign_summary WHERE campaign_id = '"
            + run.campaign_id
            + "'",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["sent"] == sum(len(m) for m in record.values())
    # closed again: the pipeline can take the warehouse and the analysts' file is not held
    with DuckDbWarehouse(run.warehouse, lock_timeout=1) as warehouse:
        warehouse.execute("CREATE TABLE IF NOT EXISTS every8d_probe (x INTEGER)")
        warehouse.execute("DROP TABLE every8d_probe")


def test_every8d_query_names_a_bad_query(demo_campaign):
    run, _, _ = demo_campaign
    result = subprocess.run(
        [sys.executable, "-m", "every8d", "query", "SELECT * FROM no_such_table"],
        env=run.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "the query failed" in result.stderr and "no_such_table" in result.stderr


HOLD = textwrap.dedent(
    """
    import sys, duckdb
    connection = duckdb.connect(sys.argv[1], read_only=True)
    print("open", flush=True)
    sys.stdin.read()
    """
)


def test_what_goes_wrong_without_it_a_session_on_the_warehouse_file_blocks_writers(tmp_path):
    """The failure the analysts' file exists for: the same session on the warehouse itself stops a writer."""
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with (
            pytest.raises(duckdb.IOException, match="lock"),
            DuckDbWarehouse(path, lock_timeout=1) as warehouse,
        ):
            warehouse.execute("CREATE TABLE t (x INTEGER)")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
