"""Issue 12 in the status sync: only a complete listing is merged, booked or closed on.

Real sandbox over HTTP with its ``cut`` / ``body`` faults, real DuckDB and
Postgres.  "Changes nothing" is checked by comparing every tracking table
before and after (``snapshot``).
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from every8d.client.results import ParamRecipient
from every8d.client.v21.status import STATUS_CODES
from every8d.errors import IncompleteListingError, UnknownStatusCodeError
from every8d.hooks.every8d import Every8dHook
from every8d.tracking.sync import SyncOptions, due_batches, sync_batch
from every8d.warehouse import open_warehouse
from every8d.warehouse.tables import ensure_tracking_tables
from tests.tracking.helpers import numbers, sandbox_rows, send_batch, table_rows
from tests.tracking.helpers import snapshot as _snapshot

pytestmark = pytest.mark.usefixtures("every8d_conn_env")

RETRY_SAFE = (IncompleteListingError, UnknownStatusCodeError)


def snapshot(warehouse):
    ensure_tracking_tables(warehouse)
    return _snapshot(warehouse)


def sync(warehouse, batch, now, **options):
    return sync_batch(warehouse, Every8dHook(), batch, now=now, options=SyncOptions(**options))


def test_a_page_cut_at_a_row_boundary_merges_nothing_and_books_no_poll(sandbox, warehouse):
    """Point 1: 500 of 2,500 rows after the validity deadline must not close the batch as expired."""
    batch = send_batch(sandbox, warehouse, numbers(2500), validity_minutes=30)
    after_deadline = batch.sent_at + timedelta(hours=3)  # the sandbox still lists status 0
    before = snapshot(warehouse)
    for page, rows in [(1, 501), (2, 1), (3, 200)]:
        sandbox.inject_fault("getDeliveryStatus", "cut", rows=rows, page=page)
        with pytest.raises(IncompleteListingError) as raised:
            sync(warehouse, batch, after_deadline)
        assert raised.value.retry_safe
        assert snapshot(warehouse) == before
    assert [due.batch_id for due in due_batches(warehouse, after_deadline)] == [batch.batch_id]
    result = sync(warehouse, batch, after_deadline)
    assert (result.listed, result.closed_reason, result.expired) == (2500, "expired", 2500)


def test_a_count_line_that_moves_between_pages_is_incomplete(sandbox, warehouse):
    batch = send_batch(sandbox, warehouse, numbers(1500))
    whole = Every8dHook().get_delivery_status_text(batch.batch_id, 2)
    sandbox.inject_fault("getDeliveryStatus", "body", message=whole.replace("1500", "1600", 1), page=2)
    with pytest.raises(IncompleteListingError, match="count line changed"):
        sync(warehouse, batch, batch.sent_at)


def test_a_row_cut_inside_its_status_is_never_merged(sandbox, warehouse):
    """Point 2: ``...\\t10`` from ``101``, in a 6-column page and in a 5-column page."""
    sandbox.set_outcomes({"0001": 101})
    batch = send_batch(sandbox, warehouse, numbers(2))
    sandbox.advance(3600)
    page = Every8dHook().get_delivery_status_text(batch.batch_id)
    row = next(line for line in page.splitlines() if "\t101" in line)
    cut_six = page[: page.index(row) + row.index("\t101") + 3]
    five = "\r\n".join(
        "\t".join(line.split("\t")[:5]) if "\t" in line else line for line in page.splitlines()
    )
    cut_five = five[: five.index("\t101") + 3]
    before = snapshot(warehouse)
    for body, error in [(cut_six, IncompleteListingError), (cut_five, UnknownStatusCodeError)]:
        assert body.endswith("\t10")
        sandbox.inject_fault("getDeliveryStatus", "body", message=body)
        with pytest.raises(error):
            sync(warehouse, batch, batch.sent_at + timedelta(hours=1))
        assert snapshot(warehouse) == before
    history = warehouse.query_arrow("SELECT count(*) AS n FROM every8d_status_history WHERE status = 10")
    assert history.column("n")[0].as_py() == 0


def test_names_with_tabs_and_newlines_are_cleaned_before_sending_and_listings_read_by_fixed_columns(
    sandbox, warehouse
):
    """Point 3: the send builder cleans NAME; a listing with a tab in NAME still lands MOBILE and STATUS
    right."""
    hook = Every8dHook()
    result = hook.send_param_sms(
        [
            ParamRecipient("0912000001", ["a"], name="Chen\tWei\r\nLtd"),
            ParamRecipient("0912000002", ["b"]),
        ],
        template="Hi %field1%",
    )
    sent = json.loads([r for r in sandbox.requests() if r["endpoint"] == "SendParamSMS"][-1]["body"])
    assert [row["Name"] for row in sent["RecipientDataList"]] == ["Chen Wei Ltd", ""]
    sandbox.advance(3600)
    page = hook.get_delivery_status_text(result.batch_id)
    dirty = page.replace("Chen Wei Ltd\t", "Chen\tWei\tLtd\t")
    assert dirty.count("\t") == page.count("\t") + 2
    sandbox.inject_fault("getDeliveryStatus", "body", message=dirty)
    parsed = hook.get_delivery_status_page(result.batch_id)
    assert parsed.table.column("mobile").to_pylist() == ["+886912000001", "+886912000002"]
    assert parsed.table.column("name").to_pylist() == ["Chen\tWei\tLtd", ""]
    assert set(parsed.table.column("status").to_pylist()) <= set(STATUS_CODES)


def test_a_cut_reply_page_merges_nothing(sandbox, warehouse):
    """Points 4 and 5: replies follow the completeness rule, and are stored in UTC."""
    batch = send_batch(sandbox, warehouse, numbers(2))
    for index in range(12):
        sandbox.add_reply(batch.batch_id, "+886912000001", f"reply {index}")
    before = snapshot(warehouse)
    sandbox.inject_fault("getReplyMessage", "cut", rows=2, page=2)  # the count line and 1 of 2 replies
    with pytest.raises(IncompleteListingError):
        sync(warehouse, batch, batch.sent_at)
    assert snapshot(warehouse) == before
    result = sync(warehouse, batch, batch.sent_at)
    assert result.replies == 12
    [reply] = [r for r in Every8dHook().iter_replies(batch.batch_id) if r.content == "reply 0"]
    assert reply.replied_at.tzinfo == UTC
    stored = warehouse.query_arrow("SELECT replied_at FROM every8d_replies WHERE reply_text = 'reply 0'")
    assert stored.column("replied_at")[0].as_py() == reply.replied_at


@pytest.mark.parametrize(
    "document",
    [
        {"SMS_COUNT": "{n}", "DATA": "{records}"},
        {"count": "{n}", "records": "{records}"},
        {"Total": "{n}", "List": "{records}"},
    ],
    ids=["upper-snake", "lower", "total-list"],
)
def test_json_status_form_accepts_plausible_spellings(sandbox, warehouse, document):
    """Point 17: other key spellings and dash dates parse; unknown shapes name the keys received."""
    batch = send_batch(sandbox, warehouse, numbers(2))
    sandbox.advance(3600)
    hook = Every8dHook()
    original = json.loads(hook.get_delivery_status_text(batch.batch_id, with_record_ids=True))
    records = [
        {
            "NAME": r["Name"],
            "MOBILE": r["Mobile"],
            "SEND_TIME": r["SendTime"].replace("/", "-"),
            "COST": r["Cost"],
            "STATUS": r["Status"],
            "RECEIVED_TIME": r["ReceivedTime"].replace("/", "-").replace(" ", "T"),
            "MR": r["MR"],
        }
        for r in original["Records"]
    ]
    body = {key: (original["Count"] if value == "{n}" else records) for key, value in document.items()}
    sandbox.inject_fault("getDeliveryStatus", "body", message=json.dumps(body))
    odd = hook.get_delivery_status_page(batch.batch_id, with_record_ids=True)
    sandbox.clear_faults()
    expected = hook.get_delivery_status_page(batch.batch_id, with_record_ids=True)
    assert odd.total == expected.total and odd.table.equals(expected.table)
    sandbox.inject_fault("getDeliveryStatus", "body", message=json.dumps({"Amount": 2, "Rows": records}))
    with pytest.raises(Exception, match="keys received: Amount, Rows") as raised:
        hook.get_delivery_status_page(batch.batch_id, with_record_ids=True)
    assert "+886912" not in str(raised.value)


# -- the property: every cut point of every page either lands the exact listing or changes nothing ---------


@pytest.fixture
def cut_batch(sandbox, tmp_path_factory):
    """A 2,005-message batch (pages of 1000, 1000 and 5) with delivered, failed and pending rows."""
    warehouse = open_warehouse(f"duckdb://{tmp_path_factory.mktemp('cuts') / 'warehouse.duckdb'}")
    sandbox.set_outcomes({"1": 101, "7": 103})
    batch = send_batch(sandbox, warehouse, numbers(2005))
    sandbox.advance(600)
    pages = [Every8dHook().get_delivery_status_text(batch.batch_id, page) for page in (1, 2, 3)]
    yield sandbox, warehouse, batch, pages
    warehouse.close()


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(data=st.data())
def test_every_cut_of_every_page_lands_the_exact_listing_or_changes_nothing(cut_batch, data):
    sandbox, warehouse, batch, pages = cut_batch
    page = data.draw(st.sampled_from([1, 2, 3]), label="page")
    length = len(pages[page - 1].encode("utf-8"))
    how = data.draw(st.sampled_from(["byte", "row", "inside a row"]), label="how")
    if how == "byte":
        cut = {"at": data.draw(st.integers(0, length + 10), label="at")}
    else:
        lines = pages[page - 1].count("\n") + 1
        cut = {"rows": data.draw(st.integers(0, lines), label="rows")}
        if how == "inside a row":
            cut["at"] = data.draw(st.integers(1, 80), label="at")
    before = snapshot(warehouse)
    sandbox.clear_faults()
    sandbox.inject_fault("getDeliveryStatus", "cut", page=page, **cut)
    now = batch.sent_at + timedelta(minutes=len(before["every8d_status_history"]) + 1)
    try:
        result = sync(warehouse, batch, now, poll_replies=False)
    except RETRY_SAFE:
        assert snapshot(warehouse) == before
        return
    assert result.listed == 2005
    assert table_rows(warehouse, batch.batch_id) == sandbox_rows(sandbox, batch.batch_id)


@pytest.mark.parametrize("dropped", [1, 2, 10, 40, 200])
def test_a_cut_json_status_page_merges_nothing(sandbox, warehouse, dropped):
    batch = send_batch(sandbox, warehouse, numbers(3))
    sandbox.advance(3600)
    before = snapshot(warehouse)
    sandbox.inject_fault("getDeliveryStatus", "cut", at=-dropped)
    with pytest.raises(RETRY_SAFE):
        sync(warehouse, batch, batch.sent_at + timedelta(hours=1), with_record_ids=True)
    assert snapshot(warehouse) == before
    assert sync(warehouse, batch, batch.sent_at + timedelta(hours=1), with_record_ids=True).listed == 3
