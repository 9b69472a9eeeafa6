"""The analytics views, checked against the sandbox gateway's own record of what it did."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from every8d.client.statuses import status_info
from every8d.hooks.every8d import Every8dHook
from every8d.optout import DEFAULT_OPT_OUT_KEYWORDS as OPT_OUT_KEYWORDS
from every8d.tracking.sync import sync_batch
from every8d.tracking.views import VIEWS, apply_views, view_files
from tests.tracking.helpers import numbers, send_batch

pytestmark = pytest.mark.usefixtures("every8d_conn_env")


def expected_measures(messages: list[dict]) -> dict:
    groups = Counter(status_info(m["status"]).group for m in messages)
    seconds = [
        (datetime.fromisoformat(m["received_at"]) - datetime.fromisoformat(m["send_at"])).total_seconds()
        for m in messages
        if m["received_at"]
    ]
    return {
        "sent": len(messages),
        "delivered": groups["delivered"],
        "failed": groups["failed"],
        "expired": groups["expired"],
        "pending": 0,
        "points_spent": sum(Decimal(m["points"]) for m in messages),
        "p50": float(np.percentile(seconds, 50)) if seconds else None,
        "p95": float(np.percentile(seconds, 95)) if seconds else None,
    }


def test_views_match_the_sandbox_record(sandbox, warehouse):
    sandbox.set_outcomes({"0011": 101, "0012": 103, "0013": 103})
    spring = [send_batch(sandbox, warehouse, numbers(300)), send_batch(sandbox, warehouse, numbers(50, 1000))]
    promo = send_batch(sandbox, warehouse, numbers(7, 2000), kind="mms", campaign="promo")
    sandbox.add_reply(spring[0].batch_id, "+886912000005", "STOP")
    sandbox.add_reply(spring[0].batch_id, "+886912000006", "what is this?")
    sandbox.add_reply(spring[1].batch_id, "+886912001001", "退訂")
    sandbox.advance(3600)
    now = spring[0].sent_at + timedelta(hours=1)
    for batch in [*spring, promo]:
        sync_batch(warehouse, Every8dHook(), batch, now=now)
    assert apply_views(warehouse) == list(VIEWS)
    assert apply_views(warehouse) == list(VIEWS)  # re-applying is fine

    spring_messages = [m for b in spring for m in sandbox.messages(b.batch_id)]
    want = expected_measures(spring_messages)
    [got] = warehouse.query_arrow(
        "SELECT * FROM every8d_campaign_summary WHERE campaign_id = 'spring'"
    ).to_pylist()
    assert {k: got[k] for k in ("sent", "delivered", "failed", "expired", "pending")} == {
        k: want[k] for k in ("sent", "delivered", "failed", "expired", "pending")
    }
    assert got["points_spent"] == want["points_spent"]
    assert got["delivery_rate"] == pytest.approx(want["delivered"] / want["sent"])
    assert got["points_per_delivered"] == pytest.approx(float(want["points_spent"]) / want["delivered"])
    assert got["p50_seconds_to_deliver"] == pytest.approx(want["p50"])
    assert got["p95_seconds_to_deliver"] == pytest.approx(want["p95"])
    assert (got["replies"], got["opt_outs"]) == (3, 2)

    daily = warehouse.query_arrow(
        "SELECT campaign_id, send_date, sent, delivered, points_spent "
        "FROM every8d_campaign_daily ORDER BY campaign_id"
    ).to_pylist()
    promo_messages = sandbox.messages(promo.batch_id)
    assert [(d["campaign_id"], d["sent"], d["delivered"]) for d in daily] == [
        ("promo", 7, 7),
        ("spring", want["sent"], want["delivered"]),
    ]
    assert daily[0]["points_spent"] == sum(Decimal(m["points"]) for m in promo_messages)
    assert daily[1]["send_date"] == spring[0].sent_at.date()

    reasons = warehouse.query_arrow(
        "SELECT status, messages, meaning_en FROM every8d_failure_reasons "
        "WHERE campaign_id = 'spring' ORDER BY status"
    ).to_pylist()
    counted = Counter(
        m["status"] for m in spring_messages if status_info(m["status"]).group in ("failed", "expired")
    )
    assert {r["status"]: r["messages"] for r in reasons} == dict(counted)
    assert {r["status"]: r["meaning_en"] for r in reasons}[103] == status_info(103).meaning


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "mysql"])
def test_views_count_opt_outs_from_the_suppression_list(dialect):
    """Opt-outs are decided once, by the shared matcher; the views must not keep their own keyword list."""
    for path in view_files(dialect):
        text = path.read_text(encoding="utf-8")
        if "opt_outs" in text:
            assert "every8d_suppressions" in text, path.name
            assert not any(f"'{keyword}'" in text for keyword in OPT_OUT_KEYWORDS), path.name
