"""``every8d.client`` on its own: no Airflow, the protocol kept by both implementations, the one paginator."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import typing
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from every8d.client import Every8dClient, Every8dHttpClient, ParamRecipient, connect
from every8d.client.pagination import paginate
from every8d.client.results import ReplyPage
from every8d.errors import IncompleteListingError
from every8d.hooks.every8d import Every8dHook


def test_the_client_package_imports_no_airflow():
    code = (
        "import sys\n"
        "import every8d.client, every8d.client.v21.client, every8d.client.pagination\n"
        "import every8d.client.settings, every8d.client.v21.status, every8d.client.v21.sms\n"
        "import every8d.arrow_types\n"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "", f"every8d.client pulled in Airflow: {done.stdout.strip()[:300]}"


def _members() -> list[str]:
    return sorted(typing._get_protocol_attrs(Every8dClient))  # type: ignore[attr-defined]


@pytest.mark.parametrize("implementation", [Every8dHttpClient, Every8dHook])
def test_every_protocol_call_exists_with_the_protocol_signature(implementation):
    members = _members()
    assert {"send_sms", "iter_delivery_status_pages", "reply_pages", "erase_booking", "settings"} <= set(
        members
    )
    for name in members:
        wanted = getattr(Every8dClient, name)
        if isinstance(wanted, property):  # an attribute of the client, a property of the hook
            assert hasattr(implementation, name) or name in inspect.get_annotations(implementation), name
            continue
        assert callable(getattr(implementation, name, None)), f"{implementation.__name__} lacks {name}"
        got = inspect.signature(getattr(implementation, name))
        assert list(got.parameters.values()) == list(inspect.signature(wanted).parameters.values()), name


# -- over the sandbox, without the hook ------------------------------------------------------------


@pytest.fixture
def client(sandbox):
    with connect(sandbox.base_url, sandbox.uid, sandbox.pwd) as client:
        yield client


def _calls(sandbox, endpoint: str) -> list[dict[str, str]]:
    return [
        {key: values[0] for key, values in parse_qs(r["body"], keep_blank_values=True).items()}
        for r in sandbox.requests()
        if r["path"].lower().endswith(endpoint.lower())
    ]


def test_a_client_built_from_flags_sends_reads_and_pages(client, sandbox):
    assert isinstance(client, Every8dClient)
    numbers = [f"+8869{index:08d}" for index in range(1005)]
    batch = client.send_sms("no airflow here", numbers).batch_id
    [send] = _calls(sandbox, "sendSMS.ashx")
    assert (send["UID"], send["PWD"]) == (sandbox.uid, sandbox.pwd)
    sandbox.clear_requests()
    assert [page.rows for page in client.iter_delivery_status_pages(batch)] == [1000, 5]
    assert [call["PNO"] for call in _calls(sandbox, "getDeliveryStatus.ashx")] == ["1", "2"]
    assert client.get_credit() == Decimal("100000.00") - 1005
    personal = client.send_param_sms(
        [ParamRecipient(numbers[0], ["x"], record_id="r1")], template="hi %field1%"
    )
    assert [r.record_id for r in client.iter_delivery_status(personal.batch_id, with_record_ids=True)] == [
        "r1"
    ]


def test_threads_sharing_a_client_share_one_pool(client, sandbox):
    barrier = threading.Barrier(6)
    results: list[Decimal] = []

    def read() -> None:
        barrier.wait()
        results.append(client.get_credit())

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [Decimal("100000.00")] * 6
    assert list(client.transport._sessions) == ["read"]  # one session for all six, none for sends


# -- the paginator, on synthetic pages -------------------------------------------------------------


def _replies(total: int, sizes: list[int]) -> tuple[dict[int, str], list[int]]:
    """Reply pages (count line, then rows) with the given row counts; and a log of the pages asked for."""
    texts = {}
    for number, size in enumerate(sizes, start=1):
        rows = [f"n\t0912{number:03d}{row:03d}\treply {row}\t2026/05/01 12:00:00" for row in range(size)]
        texts[number] = "\n".join([str(total), *rows])
    return texts, []


def _reader(texts: dict[int, str], asked: list[int]):
    from every8d.client.v21.replies import parse_reply_page

    def fetch(number: int) -> str:
        asked.append(number)
        return texts[number]

    return fetch, lambda pages: parse_reply_page(pages[0])


def test_the_paginator_reads_exactly_the_pages_the_count_needs():
    texts, asked = _replies(25, [10, 10, 5])
    pages: list[ReplyPage] = list(
        paginate(*_reader(texts, asked), endpoint="getReplyMessage.ashx", page_size=10)
    )
    assert [len(page.replies) for page in pages] == [10, 10, 5] and asked == [1, 2, 3]


def test_the_paginator_stops_at_a_short_page_and_raises_after_it():
    texts, asked = _replies(35, [10, 4, 10, 1])
    seen = []
    with pytest.raises(IncompleteListingError, match=r"2 page\(s\) read, 4 needed"):
        for page in paginate(*_reader(texts, asked), endpoint="getReplyMessage.ashx", page_size=10):
            seen.append(len(page.replies))
    assert seen == [10, 4] and asked == [1, 2]  # nothing after the short page was asked for


def test_the_paginator_in_parallel_chunks_gives_the_same_pages_in_order():
    texts, asked = _replies(95, [10] * 9 + [5])
    parse = _reader(texts, asked)[1]

    def chunks(pages: list[str]):  # several pages parsed at once, as the tracking sync does
        parsed = [parse([page]) for page in pages]
        return type(
            "Chunk",
            (),
            {
                "page_rows": [len(p.replies) for p in parsed],
                "page_totals": [p.total for p in parsed],
                "pages": parsed,
            },
        )()

    fetch = _reader(texts, asked)[0]
    got = list(
        paginate(
            fetch, chunks, endpoint="getReplyMessage.ashx", page_size=10, concurrency=3, pages_per_parse=4
        )
    )
    assert [len(chunk.page_rows) for chunk in got] == [1, 4, 4, 1]
    assert [rows for chunk in got for rows in chunk.page_rows] == [10] * 9 + [5]
    assert sorted(asked) == list(range(1, 11))
