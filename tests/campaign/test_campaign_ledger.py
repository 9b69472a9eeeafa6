"""The ledger's own guarantees: a crashed planning is redone, two runners never share a chunk."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
from campaign_checks import TEMPLATES, assert_exactly_once, clean_audience, make_audience

from every8d.campaign.audience import ColumnMap
from every8d.campaign.config import CampaignSpec
from every8d.campaign.ledger import LEDGER, SendLedger
from every8d.campaign.runner import CampaignRun, RunOptions

SPEC = CampaignSpec(kind="sms", message=TEMPLATES, chunk_size=100,
                    columns=ColumnMap(mobile="mobile", name="name", template="tier"))


def campaign_run(warehouse, **options):
    from every8d.hooks.every8d import Every8dHook

    return CampaignRun(SPEC, campaign_id="camp", hook=Every8dHook(), warehouse=warehouse,
                       options=RunOptions(**options))


def test_a_planning_that_crashed_halfway_is_thrown_away_and_redone(sandbox, every8d_conn_env, warehouse):
    ledger = SendLedger(warehouse, "camp")
    ledger.ensure_tables()
    now = datetime.now(timezone.utc)
    ledger.start_plan({"kind": "sms", "fingerprint": "old"}, now)
    leftover = {name: None for name in LEDGER.schema.names}
    leftover.update(campaign_id="camp", row_number=1, chunk=0, route="sms", kind="sms", mobile="+886900000000",
                    text="half-written plan", record_id="x-1", state="pending", attempt=0, planned_at=now,
                    updated_at=now)
    warehouse.append(LEDGER.name, pa.Table.from_pylist([leftover], schema=LEDGER.schema))

    summary = campaign_run(warehouse).run(make_audience(500))
    assert summary["plan_reused"] is False
    assert_exactly_once(sandbox, warehouse, "camp", 500)
    assert "half-written plan" not in {m["text"] for m in sandbox.messages()}


def test_two_runners_never_claim_the_same_chunk(sandbox, every8d_conn_env, warehouse):
    run = campaign_run(warehouse)
    run.plan(clean_audience(300))
    chunks = [c.chunk for c in run.ledger.chunks()]
    now = datetime.now(timezone.utc)
    first = run.ledger.claim(chunks[:2], now, "runner-a")
    second = SendLedger(warehouse, "camp").claim(chunks[:3], now, "runner-b")
    assert set(first.column("chunk").to_pylist()) == set(chunks[:2])
    assert set(second.column("chunk").to_pylist()) == {chunks[2]}  # only the one runner-a did not hold
    assert set(first.column("row_number").to_pylist()).isdisjoint(second.column("row_number").to_pylist())


def test_a_rerun_of_a_finished_campaign_sends_nothing(sandbox, every8d_conn_env, warehouse):
    first = campaign_run(warehouse).run(clean_audience(250))
    before = len(sandbox.requests())
    again = campaign_run(warehouse).run(clean_audience(250))
    assert again["plan_reused"] and again["calls"] == 0 and again["sent"] == first["sent"] == 250
    assert len(sandbox.requests()) == before  # not even a credit check: nothing is left to pay for
