"""Reading a push's query string: spellings the gateway uses, and every way it can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from every8d.callbacks.events import event_key
from every8d.callbacks.params import (
    MAX_TEXT_CHARS,
    PushRejected,
    normalize_mobile,
    parse_mobile,
    parse_push,
    split_query,
)

GOOD = {
    "BatchID": "b-1",
    "RM": "0912345678",
    "RT": "20260301090000",
    "STATUS": "100",
    "SM": "",
    "MR": "m1",
    "USERID": "demo",
}


def query(**overrides) -> bytes:
    params = {**GOOD, **overrides}
    return urlencode({k: v for k, v in params.items() if v is not None}).encode()


def rejected(raw: bytes) -> PushRejected:
    with pytest.raises(PushRejected) as info:
        parse_push(raw)
    return info.value


def test_a_status_push():
    event = parse_push(query(CHARGE="1.0", ST="20260301085959", NAME="王小明"))
    assert (event.batch_id, event.mobile, event.mr, event.status, event.user_id) == (
        "b-1",
        "+886912345678",
        "m1",
        100,
        "demo",
    )
    assert event.reported_at == datetime(2026, 3, 1, 1, 0, 0, tzinfo=UTC)  # Taipei is UTC+8
    assert event.extra == {"CHARGE": "1.0", "ST": "20260301085959", "NAME": "王小明"}
    assert not event.is_reply
    assert event.key == event_key("b-1", "+886912345678", "m1", 100, "20260301090000", "")


def test_key_names_are_case_insensitive_and_spellings_of_a_number_share_a_key():
    upper = parse_push(b"BATCHID=b-1&rm=%2B886912345678&Rt=20260301090000&status=100&sm=&mr=m1&UserID=demo")
    assert upper.key == parse_push(query()).key
    assert parse_push(query(RM="886912345678")).key == upper.key


def test_a_reply_keeps_its_text_verbatim():
    text = "好的 收到\n明天見 😀 ＳＴＯＰ"
    event = parse_push(query(STATUS="999", SM=text))
    assert event.is_reply and event.text == text


@pytest.mark.parametrize(
    "sm",
    [
        "'; DROP TABLE every8d_push_events; --",
        '" OR 1=1 --',
        "Robert'); DELETE FROM every8d_suppressions;--",
        "%s %(x)s ? $1 {0}",
    ],
)
def test_sql_looking_text_is_just_data(sm):
    assert parse_push(query(STATUS="999", SM=sm)).text == sm


def test_the_token_is_never_kept():
    event = parse_push(query(token="T" * 40, Token="x"))
    assert "token" not in {k.lower() for k in event.extra}


@pytest.mark.parametrize(
    ("raw", "status", "error", "param"),
    [
        pytest.param(query(BatchID=None), 422, "missing_param", "BatchID", id="no-batch"),
        pytest.param(query(RM=None), 422, "missing_param", "RM", id="no-mobile"),
        pytest.param(query(RT=None), 422, "missing_param", "RT", id="no-time"),
        pytest.param(query(STATUS=None), 422, "missing_param", "STATUS", id="no-status"),
        pytest.param(query(STATUS=""), 422, "missing_param", "STATUS", id="empty-status"),
        pytest.param(query(STATUS="1e2"), 422, "invalid_param", "STATUS", id="status-not-int"),
        pytest.param(query(STATUS="100000"), 422, "invalid_param", "STATUS", id="status-huge"),
        pytest.param(query(STATUS="1" * 13), 422, "param_too_long", "STATUS", id="status-long"),
        pytest.param(query(RM="hello"), 422, "invalid_param", "RM", id="mobile-text"),
        pytest.param(query(RM="12"), 422, "invalid_param", "RM", id="mobile-short"),
        pytest.param(query(RT="2026-03-01 09:00"), 422, "invalid_param", "RT", id="time-format"),
        pytest.param(query(RT="20261301090000"), 422, "invalid_param", "RT", id="time-month-13"),
        pytest.param(query(RT="2026030109000"), 422, "invalid_param", "RT", id="time-13-digits"),
        pytest.param(query(BatchID="b 1; DROP"), 422, "invalid_param", "BatchID", id="batch-chars"),
        pytest.param(query(BatchID="b" * 65), 422, "param_too_long", "BatchID", id="batch-long"),
        pytest.param(query(SM="字" * (MAX_TEXT_CHARS + 1)), 422, "param_too_long", "SM", id="huge-sm"),
        pytest.param(query(SM="a\x00b"), 422, "control_characters", "SM", id="nul-in-sm"),
        pytest.param(query(MR="a\nb"), 422, "control_characters", "MR", id="newline-in-mr"),
        pytest.param(query() + b"&STATUS=0", 400, "repeated_param", "STATUS", id="repeated-status"),
        pytest.param(query() + b"&batchid=b-2", 400, "repeated_param", "BatchID", id="repeated-any-case"),
        pytest.param(query() + b"&sm=x", 400, "repeated_param", "SM", id="repeated-sm"),
        pytest.param(
            b"BatchID=b-1&RM=0912345678&RT=20260301090000&STATUS=999&SM=%FF%FE",
            400,
            "invalid_utf8",
            "SM",
            id="bad-utf8-escaped",
        ),
        pytest.param(
            b"BatchID=b-1&RM=0912345678&RT=20260301090000&STATUS=999&SM=\xc3\x28",
            400,
            "invalid_utf8",
            "SM",
            id="bad-utf8-raw",
        ),
        pytest.param(
            b"BatchID=b-1&RM=0912345678&RT=20260301090000&STATUS=999&SM=%ED%A0%80",
            400,
            "invalid_utf8",
            "SM",
            id="utf8-surrogate",
        ),
        pytest.param(query() + b"&%FF=1", 400, "invalid_utf8", "a parameter name", id="bad-utf8-key"),
        pytest.param(query() + b"&x=" + b"a" * 40_000, 414, "query_too_long", None, id="query-too-long"),
        pytest.param(
            query() + b"".join(b"&k%d=1" % i for i in range(70)), 400, "too_many_params", None, id="too-many"
        ),
    ],
)
def test_bad_pushes_are_refused_with_a_reason(raw, status, error, param):
    problem = rejected(raw)
    assert (problem.status_code, problem.error, problem.param) == (status, error, param)
    body = problem.body()
    assert body["error"] == error and body["detail"]
    assert "0912345678" not in body["detail"]


def test_an_sm_at_the_cap_is_fine():
    assert len(parse_push(query(STATUS="999", SM="字" * MAX_TEXT_CHARS)).text) == MAX_TEXT_CHARS


def test_split_query_decodes_plus_and_percent_but_not_utf8():
    assert split_query(b"a=1+2&b=%2B&c&=d&&e=%E5%A5%BD") == [
        (b"a", b"1 2"),
        (b"b", b"+"),
        (b"c", b""),
        (b"", b"d"),
        (b"e", "好".encode()),
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=MAX_TEXT_CHARS).filter(
        lambda t: "\x00" not in t and not any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in t)
    )
)
def test_any_reply_text_survives_the_url(text):
    raw = query(STATUS="999").decode() + "&SM=" + quote(text, safe="")
    raw = raw.replace("SM=&", "", 1)
    event = parse_push(raw.encode())
    assert event.text == text


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=99_999_999), st.sampled_from(["0{}", "+886{}", "886{}", "+886 {}"]))
def test_the_mobile_fast_path_agrees_with_phonenumbers(n, spelling):
    national = f"9{n:08d}"
    raw = spelling.format(national)
    assert normalize_mobile(raw) == parse_mobile(raw) == "+886" + national


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+1 415 555 2671", "+14155552671"),
        ("0912-345-678", "+886912345678"),
        ("(02) 2345 6789", "+886223456789"),
    ],
)
def test_other_spellings_go_through_phonenumbers(raw, e164):
    assert normalize_mobile(raw) == e164


def test_logged_queries_lose_numbers_texts_and_tokens():
    from every8d.callbacks.redact import redact_query

    raw = b"token=abc&BatchID=b-1&RM=%2B886912345678&rt=20260301090000&STATUS=999&SM=STOP&flag&NAME=x"
    assert (
        redact_query(raw) == b"token=***&BatchID=b-1&RM=***&rt=20260301090000&STATUS=999&SM=***&flag&NAME=***"
    )
