"""On DuckDB the merge, not an index, keeps the big tables' keys; older files with indexes merge the same."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from every8d.hooks.every8d import Every8dHook
from every8d.tracking.batches import register_batches
from every8d.tracking.sync import sync_batch
from every8d.warehouse import open_warehouse
from every8d.warehouse.dialects import dialect_for
from every8d.warehouse.tables import MESSAGES, STATUS_HISTORY, STATUS_STAGING
from tests.tracking.helpers import numbers, send_batch, snapshot

DUCKDB = dialect_for("duckdb")

pytestmark = pytest.mark.usefixtures("every8d_conn_env")


def _constraints(path) -> set[tuple[str, str]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute(
            "SELECT table_name, constraint_type FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchall()
        tables = {name for (name,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    return {tuple(row) for row in rows} | {(name, "TABLE") for name in tables}


def test_the_big_tables_have_no_index_and_staging_never_reaches_the_file(sandbox, tmp_path):
    path = tmp_path / "new.duckdb"
    warehouse = open_warehouse(f"duckdb://{path}")
    batch = send_batch(sandbox, warehouse, numbers(1200) + numbers(3))
    sandbox.advance(3600)
    result = sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at + timedelta(hours=1))
    assert result.message_rows == 1203
    warehouse.close()

    found = _constraints(path)
    assert (MESSAGES.name, "PRIMARY KEY") not in found
    assert (STATUS_HISTORY.name, "PRIMARY KEY") not in found
    assert ("every8d_batches", "PRIMARY KEY") in found  # small tables keep theirs
    assert (STATUS_STAGING.name, "TABLE") not in found


def test_a_file_with_the_old_indexes_merges_exactly_like_a_new_one(sandbox, tmp_path):
    """Files written before the indexes were dropped: PRIMARY KEYs and a persistent staging table."""
    old_path = tmp_path / "old.duckdb"
    with duckdb.connect(str(old_path)) as connection:
        for spec in (MESSAGES, STATUS_HISTORY):
            connection.execute(DUCKDB.create_table_sql(spec.name, spec.schema, spec.primary_key))
        connection.execute(DUCKDB.create_table_sql(STATUS_STAGING.name, STATUS_STAGING.schema, ()))
    old = open_warehouse(f"duckdb://{old_path}")
    new = open_warehouse(f"duckdb://{tmp_path / 'new.duckdb'}")

    sandbox.set_outcomes({"0007": 101})
    batch = send_batch(sandbox, new, numbers(1500) + numbers(2))
    registered = new.query_arrow(
        "SELECT batch_id, campaign_id, kind, sent_at, scheduled_at, recipients, points, validity_minutes "
        "FROM every8d_batches"
    ).to_pylist()
    register_batches(old, registered)
    polls = [batch.sent_at, batch.sent_at + timedelta(minutes=5), batch.sent_at + timedelta(minutes=5)]
    for step, now in zip(
        (0, 30, 0), polls, strict=True
    ):  # pending, then some final, then a rerun of the same poll
        sandbox.advance(step)
        for warehouse in (old, new):
            sync_batch(warehouse, Every8dHook(), batch, now=now)
    # The registration times differ (each warehouse registered at its own moment); nothing else may.
    before, after = snapshot(old), snapshot(new)
    for state in (before, after):
        for row in state["every8d_batches"]:
            row.pop("registered_at")
    assert before == after
    assert len(after["every8d_messages"]) == 1502
    assert (STATUS_STAGING.name, "TABLE") not in _constraints(old_path)  # the old staging table is gone
    assert (MESSAGES.name, "PRIMARY KEY") in _constraints(old_path)  # the old index is kept, and harmless
