"""Screening and planning: every audience row ends up planned or rejected, once, with a reason."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from every8d.campaign.audience import ColumnMap
from every8d.campaign.plan import Planner
from every8d.campaign.schedule import QuietHours
from every8d.campaign.screen import Screen
from every8d.campaign.templating import TemplateSet
from every8d.phones import PhoneNormalizer

NOW = datetime(2026, 5, 4, 4, 0, tzinfo=UTC)  # 12:00 in Taipei


def plan(
    batch: pa.RecordBatch,
    *,
    message="Hi $name",
    columns=None,
    suppressed=(),
    chunk_size=3,
    dedupe_on=("mobile",),
    quiet=None,
    mms_points=None,
    allow_international=False,
    batch_rows=None,
    min_group_size=2,
):
    screen = Screen(
        columns or ColumnMap(mobile="mobile", name="name", record_key="id"),
        TemplateSet(message, template_column=(columns.template if columns else None)),
        PhoneNormalizer(allow_international=allow_international),
        NOW,
        quiet_hours=quiet,
        mms_points=mms_points,
    )
    planner = Planner()
    table = pa.Table.from_batches([batch])
    for part in table.to_batches(max_chunksize=batch_rows or len(table) or 1):
        planner.add(*screen(part))
    stats = planner.finish(
        campaign_id="c",
        dedupe_on=dedupe_on,
        suppressed=pa.array(list(suppressed), pa.string()),
        chunk_size=chunk_size,
        min_group_size=min_group_size,
        kind="mms" if mms_points else "sms",
    )
    planned = pa.Table.from_batches(list(planner.iter_plan()), schema=None) if stats.recipients else None
    rejects = pa.Table.from_batches(list(planner.iter_rejects())) if stats.rejected else None
    chunks = planner.chunks()
    planner.close()
    return stats, planned, rejects, chunks


def accounted(stats, planned, rejects) -> list[int]:
    rows = (planned.column("row_number").to_pylist() if planned is not None else []) + (
        rejects.column("row_number").to_pylist() if rejects is not None else []
    )
    return sorted(rows)


def test_duplicates_opt_outs_and_bad_numbers_are_rejected_with_row_numbers():
    batch = pa.record_batch(
        {
            "mobile": ["0912345678", "0912-345-678", "0223456789", "0912000001", "nope", "0912000002"],
            "name": ["A", "A2", "B", "C", "D", None],
            "id": ["a", "b", "c", "d", "e", "f"],
        }
    )
    stats, planned, rejects, _ = plan(batch, suppressed=["+886912000001"])
    reasons = dict(
        zip(rejects.column("row_number").to_pylist(), rejects.column("reason").to_pylist(), strict=True)
    )
    assert reasons == {
        2: "duplicate",
        3: "not_mobile",
        4: "suppressed",
        5: "invalid_number",
        6: "render_error",
    }
    details = dict(
        zip(rejects.column("row_number").to_pylist(), rejects.column("detail").to_pylist(), strict=True)
    )
    assert details[2] == "same mobile as row 1"
    assert planned.column("row_number").to_pylist() == [1]
    assert stats.audience_rows == 6 and stats.recipients == 1 and stats.rejected == 5
    assert rejects.column("recipient_key").to_pylist() == ["b", "c", "d", "e", "f"]


def test_same_number_and_text_is_never_planned_twice_whatever_the_key():
    batch = pa.record_batch(
        {"mobile": ["0912345678", "0912345678", "0912345678"], "name": ["A", "A", "B"], "id": ["1", "2", "3"]}
    )
    _stats, planned, rejects, _ = plan(batch, dedupe_on=("recipient_key",))
    assert planned.column("row_number").to_pylist() == [1, 3]  # same number, different text: allowed
    assert rejects.column("detail").to_pylist() == ["same number and text as row 1"]


def test_routes_group_identical_texts_and_chunks_respect_the_size():
    n = 10
    batch = pa.record_batch(
        {
            "mobile": [f"09120000{i:02d}" for i in range(n)],
            "name": ["same"] * 7 + ["x", "y", "z"],
            "id": [str(i) for i in range(n)],
        }
    )
    stats, planned, _, chunks = plan(batch, chunk_size=3)
    assert stats.calls_by_route == {"sms": 3, "param": 1}
    assert stats.recipients_by_route == {"sms": 7, "param": 3}
    for chunk in chunks.to_pylist():
        rows = planned.filter(pa.compute.equal(planned.column("chunk"), chunk["chunk"]))
        assert rows.num_rows == chunk["recipients"] <= 3
        if chunk["route"] == "sms":
            assert len(set(rows.column("text").to_pylist())) == 1


def test_record_ids_are_unique_and_stable():
    batch = pa.record_batch(
        {"mobile": [f"09120000{i:02d}" for i in range(5)], "name": list("abcde"), "id": list("abcde")}
    )
    _, first, _, _ = plan(batch)
    _, second, _, _ = plan(batch)
    ids = first.column("record_id").to_pylist()
    assert len(set(ids)) == 5 and ids == second.column("record_id").to_pylist()


def test_quiet_hours_reject_or_reschedule():
    batch = pa.record_batch(
        {
            "mobile": ["0912000001", "0912000002"],
            "name": ["a", "b"],
            "id": ["1", "2"],
            "when": ["2026-05-04 22:30", "2026-05-04 15:00"],
        }
    )
    columns = ColumnMap(mobile="mobile", name="name", record_key="id", send_at="when")
    _, planned, rejects, _ = plan(
        batch, columns=columns, quiet=QuietHours.parse("21:00-08:00", policy="reject")
    )
    assert rejects.column("reason").to_pylist() == ["quiet_hours"]
    _, planned, rejects, _ = plan(batch, columns=columns, quiet=QuietHours.parse("21:00-08:00"))
    assert rejects is None
    taipei = timezone(timedelta(hours=8))
    assert planned.column("send_at").to_pylist() == [
        datetime(2026, 5, 5, 8, 0, tzinfo=taipei),
        datetime(2026, 5, 4, 15, 0, tzinfo=taipei),
    ]


def test_mms_refuses_international_numbers_and_prices_by_image():
    batch = pa.record_batch({"mobile": ["0912000001", "+14155552671"], "name": ["a", "b"], "id": ["1", "2"]})
    stats, planned, rejects, _ = plan(
        batch, message="Photo!", mms_points=Decimal(5), allow_international=True
    )
    assert rejects.column("detail").to_pylist() == ["MMS goes to Taiwan numbers only"]
    assert stats.points == Decimal(5) and planned.column("route").to_pylist() == ["mms"]


def test_international_costs_three_times_when_allowed():
    batch = pa.record_batch({"mobile": ["0912000001", "+14155552671"], "name": ["a", "b"], "id": ["1", "2"]})
    stats, planned, _, _ = plan(batch, message="Hello", allow_international=True)
    assert sorted(planned.column("points").to_pylist()) == [1, 3]
    assert stats.points == Decimal(4)


numbers = st.one_of(
    st.integers(0, 40).map(lambda i: f"09120000{i:02d}"),
    st.integers(0, 40).map(lambda i: f"+8869120000{i:02d}"),
    st.sampled_from(["", "abc", "0223456789", "+14155552671", "0912"]),
    st.none(),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(numbers, st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))), min_size=1, max_size=60
    ),
    st.integers(1, 7),
    st.integers(1, 25),
)
def test_every_row_is_planned_or_rejected_exactly_once(rows, chunk_size, batch_rows):
    batch = pa.record_batch(
        {
            "mobile": pa.array([m for m, _ in rows], pa.string()),
            "name": pa.array([n for _, n in rows], pa.string()),
            "id": [str(i) for i in range(len(rows))],
        }
    )
    stats, planned, rejects, chunks = plan(
        batch, suppressed=["+886912000003"], chunk_size=chunk_size, batch_rows=batch_rows
    )
    assert accounted(stats, planned, rejects) == list(range(1, len(rows) + 1))
    assert stats.recipients + stats.rejected == len(rows)
    if planned is not None:
        pairs = Counter(
            zip(planned.column("mobile").to_pylist(), planned.column("text").to_pylist(), strict=True)
        )
        assert max(pairs.values()) == 1
        assert len(set(planned.column("mobile").to_pylist())) == planned.num_rows  # deduped on mobile
        assert max(chunks.column("recipients").to_pylist()) <= chunk_size


def test_a_personalized_audience_goes_out_in_about_recipients_over_chunk_size_batches():
    """Coincidental identical texts (same name and points) stay in the personalized calls by default."""
    import math

    from every8d.campaign.plan import DEFAULT_MIN_GROUP_SIZE

    n, chunk_size = 20_000, 500
    names = [f"name{i % 3000}" for i in range(n)]  # 3,000 names: most texts shared by 6-7 recipients
    batch = pa.record_batch(
        {"mobile": [f"0912{i:06d}" for i in range(n)], "name": names, "id": [str(i) for i in range(n)]}
    )
    stats, _, _, chunks = plan(batch, chunk_size=chunk_size, min_group_size=DEFAULT_MIN_GROUP_SIZE)
    assert stats.recipients == n
    assert len(chunks) <= 1.05 * math.ceil(n / chunk_size)
    assert stats.calls_by_route == {"param": math.ceil(n / chunk_size)}
    _, _, _, old = plan(batch, chunk_size=chunk_size, min_group_size=2)  # what the old default did
    assert len(old) > 5 * math.ceil(n / chunk_size)


def test_a_shared_text_worth_its_own_batch_is_still_grouped():
    from every8d.campaign.plan import DEFAULT_MIN_GROUP_SIZE

    n = DEFAULT_MIN_GROUP_SIZE + 10
    names = ["same"] * n + ["Ann", "Bob", "Cy"]  # three personal texts beside the shared one
    batch = pa.record_batch(
        {
            "mobile": [f"0912{i:06d}" for i in range(len(names))],
            "name": names,
            "id": [str(i) for i in range(len(names))],
        }
    )
    stats, _, _, _ = plan(batch, chunk_size=500, min_group_size=DEFAULT_MIN_GROUP_SIZE)
    assert stats.calls_by_route == {"sms": 1, "param": 1}


def test_a_small_coincidental_group_goes_personalized_but_a_text_without_fields_always_groups():
    from every8d.campaign.plan import DEFAULT_MIN_GROUP_SIZE

    names = ["same"] * 5 + ["Ann", "Bob"]
    batch = pa.record_batch(
        {
            "mobile": [f"0912{i:06d}" for i in range(len(names))],
            "name": names,
            "id": [str(i) for i in range(len(names))],
        }
    )
    stats, _, _, _ = plan(batch, chunk_size=500, min_group_size=DEFAULT_MIN_GROUP_SIZE)
    assert stats.calls_by_route == {"param": 1}  # five "Hi same" are a coincidence, not worth a batch
    stats, _, _, _ = plan(batch, message="Hello all", chunk_size=500, min_group_size=DEFAULT_MIN_GROUP_SIZE)
    assert stats.calls_by_route == {"sms": 1}  # nothing personal: one sendSMS, whatever the size
