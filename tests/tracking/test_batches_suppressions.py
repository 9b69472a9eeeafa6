"""register_batches and the suppression list, on DuckDB and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from every8d.tracking.batches import register_batches
from every8d.tracking.suppressions import add_suppressions, load_suppressed

SENT = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)


def _batch(batch: str, **overrides) -> dict:
    row = {
        "batch_id": batch,
        "campaign_id": "spring",
        "kind": "sms",
        "sent_at": SENT,
        "scheduled_at": None,
        "recipients": 3,
        "points": Decimal("3.00"),
        "validity_minutes": 60,
    }
    return {**row, **overrides}


def test_register_twice_keeps_one_row_and_the_polling_state(warehouse):
    register_batches(
        warehouse, [_batch("b1"), _batch("b2", kind="mms", scheduled_at=SENT + timedelta(hours=2))]
    )
    warehouse.execute("UPDATE every8d_batches SET polls = 4, state = 'closed' WHERE batch_id = 'b1'")
    register_batches(
        warehouse, [_batch("b1", recipients=5, points=Decimal("5.00")), _batch("b2", kind="mms")]
    )
    rows = warehouse.query_arrow(
        "SELECT batch_id, kind, recipients, points, polls, state, next_poll_at, scheduled_at "
        "FROM every8d_batches ORDER BY batch_id"
    ).to_pylist()
    assert [r["batch_id"] for r in rows] == ["b1", "b2"]
    assert (rows[0]["recipients"], rows[0]["points"], rows[0]["polls"], rows[0]["state"]) == (
        5,
        Decimal("5.00"),
        4,
        "closed",
    )
    # The scheduled batch is first polled at its schedule time; re-registering does not move that.
    assert rows[1]["next_poll_at"] == SENT + timedelta(hours=2)
    assert rows[1]["scheduled_at"] is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param({"sent_at": datetime(2026, 5, 1)}, "timezone-aware", id="naive-time"),
        pytest.param({"kind": "fax"}, "kind", id="bad-kind"),
        pytest.param({"batch_id": ""}, "no batch_id", id="no-id"),
    ],
)
def test_register_refuses_bad_rows(bad, message, duckdb_target):
    from every8d.warehouse import open_warehouse

    with pytest.raises(ValueError, match=message):
        register_batches(open_warehouse(duckdb_target), [_batch("b1", **bad)])


def test_suppressions_load_twice_and_refuse_non_e164(warehouse):
    assert len(load_suppressed(warehouse)) == 0
    assert (
        add_suppressions(warehouse, ["+886912000001", "+886912000002", "+886912000001"], "reply STOP", "push")
        == 2
    )
    assert add_suppressions(warehouse, pa.array(["+886912000002", "+886912000003"]), "manual", "cli") == 1
    suppressed = load_suppressed(warehouse)
    assert suppressed.type == pa.string()
    assert sorted(suppressed.to_pylist()) == ["+886912000001", "+886912000002", "+886912000003"]
    reason = warehouse.query_arrow(
        "SELECT reason FROM every8d_suppressions WHERE mobile = ?", ["+886912000002"]
    )
    assert reason.column("reason").to_pylist() == ["reply STOP"]
    with pytest.raises(ValueError) as error:
        add_suppressions(warehouse, ["0912000004"], "manual", "cli")
    assert "0912000004" not in str(error.value)
