"""A batch the gateway issued but the ledger never learned is adopted from its status pushes.

Real runner processes, the sandbox executing a send after its client was SIGKILLed, pushes delivered
over loopback into a real journal and flushed into the warehouse.  The rerun resolves the chunk
through the filter ("already sent") and adopts the batch: by Mr for SendParamSMS, by the numbers for
a grouped sendSMS; an ambiguous match (the same numbers awaiting in two chunks) is never made.
"""

from __future__ import annotations

import signal
from datetime import UTC

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from campaign_checks import (
    adopt_after_pushes,
    assert_invariants,
    awaiting_recipients,
    clean_audience,
    recorded_batches,
)
from runner_processes import Runner, wait_until

PROMO = "Spring sale: 20% off everything this week. Reply N to opt out."
PERSONAL = "Hi $name, your voucher is ready."


@pytest.fixture
def audience(tmp_path):
    path = tmp_path / "audience.parquet"
    pq.write_table(pa.Table.from_pandas(clean_audience(200, seed=3)), path)
    return path


def sends(sandbox, endpoint: str) -> int:
    return sum(1 for r in sandbox.requests() if r["path"].lower().endswith(endpoint.lower() + ".ashx"))


@pytest.mark.parametrize(
    ("endpoint", "message", "push_options"),
    [
        pytest.param("SendParamSMS", PERSONAL, {}, id="param-by-mr"),
        pytest.param(
            "sendSMS", PROMO, {"duplicates": 2, "reorder": True}, id="grouped-by-number-duplicated-reordered"
        ),
    ],
)
def test_a_send_executed_after_its_runner_was_killed_is_adopted_from_pushes(
    sandbox,
    every8d_conn_env,
    warehouse_target,
    warehouse,
    audience,
    pushes,
    endpoint,
    message,
    push_options,
):
    pushes.arm(**push_options)
    sandbox.inject_fault(endpoint, "slow", delay=2.0, count=1, execute=False)  # runs 2 s after it arrived
    spec = {"spec": {"message": message}}
    first = Runner(warehouse_target, audience, settings=spec)
    wait_until(lambda: sends(sandbox, endpoint) >= 1, 60, "the first request")
    first.signal(signal.SIGKILL)  # the client is gone; the gateway still executes the request
    assert first.wait() == -signal.SIGKILL
    wait_until(lambda: len(sandbox.batches()) == 1, 30, "the gateway to execute the orphaned request")
    pushes.deliver(warehouse)  # its pushes reach the warehouse before the rerun ends
    rerun = Runner(warehouse_target, audience, settings=spec)
    assert rerun.wait() == 0, rerun.output[-3000:]
    summary = rerun.result()["summary"]
    assert summary["adopted_batches"] == 1 and summary["awaiting_batch"] == 0, summary
    assert summary["sent_unconfirmed"] == 0 and summary["sent"] == 200
    adopted = warehouse.query_arrow(
        "SELECT batch_id, recipients, matched_by FROM every8d_send_adopted_batches"
    ).to_pylist()
    orphan = sandbox.batches()[0]["batch_id"]  # the first batch the gateway issued: the killed runner's
    assert [(a["batch_id"], a["matched_by"]) for a in adopted] == [
        (orphan, "mr" if endpoint == "SendParamSMS" else "mobile")
    ]
    registered = warehouse.query_arrow("SELECT batch_id FROM every8d_batches").column("batch_id").to_pylist()
    assert orphan in registered  # the status sync follows it like any batch
    figures = assert_invariants(sandbox, warehouse, "camp", pushes=pushes)
    assert figures["unrecorded"] == 0 and figures["states"] == {"sent": 200}


def test_a_batch_matching_two_awaiting_chunks_is_not_adopted(
    sandbox, every8d_conn_env, warehouse_target, warehouse, audience, pushes
):
    texts = {"a": PROMO, "b": "Last day of the spring sale. Reply N to opt out."}
    for campaign_id, text in texts.items():  # same numbers, two texts: each first answer lost, then filtered
        sandbox.inject_fault("sendSMS", "drop", count=1)
        runner = Runner(warehouse_target, audience, campaign_id, settings={"spec": {"message": text}})
        assert runner.wait() == 0, runner.output[-3000:]
        assert runner.result()["summary"]["awaiting_batch"] == 1
    figures = adopt_after_pushes(pushes, warehouse)
    assert figures["adopted"] == 0 and figures["ambiguous"] >= 2
    # left visible, never guessed: the two orphans are the only unrecorded batches, each holding exactly
    # the awaiting recipients of its own campaign (the sandbox is shared, so check both at once)
    recorded = recorded_batches(warehouse, "a") | recorded_batches(warehouse, "b")
    orphans = {b["batch_id"] for b in sandbox.batches()} - recorded
    held = {b: {(m["mobile"], m["text"]) for m in sandbox.messages(b)} for b in orphans}
    assert len(orphans) == 2
    assert sorted(map(frozenset, held.values()), key=sorted) == sorted(
        (frozenset(awaiting_recipients(warehouse, c)) for c in texts), key=sorted
    )
    pairs = [(m["mobile"], m["text"]) for m in sandbox.messages()]
    assert len(pairs) == len(set(pairs)) == 400  # 200 each, nobody twice
    assert (
        warehouse.query_arrow("SELECT count(*) AS n FROM every8d_send_chunks WHERE state = 'awaiting_batch'")
        .column("n")[0]
        .as_py()
        == 2
    )


def _awaiting(*rows):
    from datetime import datetime

    at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    return pa.Table.from_pylist(
        [
            {
                "campaign_id": c,
                "chunk": k,
                "row_number": n,
                "mobile": m,
                "record_id": f"{c}-{n}",
                "points": 1,
                "kind": "sms",
                "in_flight_at": at,
                "written_at": at,
                "scheduled_for": None,
            }
            for c, k, n, m in rows
        ]
    )


def _pushes(*rows, minutes=1):
    from datetime import datetime, timedelta

    at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return pa.Table.from_pylist(
        [{"batch_id": b, "mobile": m, "mr": mr, "first_at": at} for b, m, mr in rows],
        schema=pa.schema(
            [
                ("batch_id", pa.string()),
                ("mobile", pa.string()),
                ("mr", pa.string()),
                ("first_at", pa.timestamp("us", "UTC")),
            ]
        ),
    )


@pytest.mark.parametrize(
    ("pushes", "awaiting", "adopted", "ambiguous"),
    [
        pytest.param(
            _pushes(("B", "+1", None), ("B", "+2", None)),
            _awaiting(("a", 0, 1, "+1"), ("a", 0, 2, "+2")),
            [("B", 0, (1, 2), "mobile")],
            [],
            id="numbers-one-chunk",
        ),
        pytest.param(
            _pushes(("B", "+1", None)),
            _awaiting(("a", 0, 1, "+1"), ("b", 3, 9, "+1")),
            [],
            ["B"],
            id="number-in-two-campaigns-ambiguous",
        ),
        pytest.param(
            _pushes(("B", "+1", "a-1"), ("B", "+2", "a-2")),
            _awaiting(("a", 0, 1, "+1"), ("a", 0, 2, "+2"), ("b", 0, 1, "+1")),
            [("B", 0, (1, 2), "mr")],
            [],
            id="mr-wins-over-a-shared-number",
        ),
        pytest.param(
            _pushes(("B", "+1", "x-7")), _awaiting(("a", 0, 1, "+1")), [], [], id="foreign-mr-left-alone"
        ),
        pytest.param(
            _pushes(("B", "+1", None), ("B", "+3", None)),
            _awaiting(("a", 0, 1, "+1")),
            [],
            [],
            id="a-number-not-awaiting-no-match",
        ),
        pytest.param(
            _pushes(("B", "+1", None), minutes=-30),
            _awaiting(("a", 0, 1, "+1")),
            [],
            [],
            id="pushed-before-the-request-was-written",
        ),
        pytest.param(
            _pushes(("B", "+1", None), minutes=60 * 26),
            _awaiting(("a", 0, 1, "+1")),
            [],
            [],
            id="pushed-a-day-too-late",
        ),
    ],
)
def test_match_batches(pushes, awaiting, adopted, ambiguous):
    from every8d.campaign.adoption import match_batches

    result = match_batches(pushes, awaiting)
    assert [(a.batch_id, a.chunk, a.row_numbers, a.matched_by) for a in result.adopted] == adopted
    assert result.ambiguous == ambiguous


def test_match_batches_ignores_duplicated_and_reordered_pushes():
    from every8d.campaign.adoption import match_batches

    awaiting = _awaiting(("a", 0, 1, "+1"), ("a", 0, 2, "+2"), ("a", 1, 3, "+3"))
    rows = [("B", "+2", None), ("C", "+3", None), ("B", "+1", None)]
    once = match_batches(_pushes(*rows), awaiting)
    shuffled = match_batches(_pushes(*reversed(rows * 3)), awaiting)
    assert [(a.batch_id, a.chunk, a.row_numbers) for a in once.adopted] == [("B", 0, (1, 2)), ("C", 1, (3,))]
    assert shuffled.adopted == once.adopted
