"""Every kind of bad push over real HTTP: a 4xx with a JSON reason, nothing written, still serving."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

GOOD = {"RM": "0912345678", "RT": "20260301090000", "STATUS": "100", "SM": "", "MR": "m1", "USERID": "demo"}


def good(batch_id: str, **overrides) -> dict:
    return {"BatchID": batch_id, **GOOD, **overrides}


def test_a_push_is_recorded_and_its_duplicate_recognised(receiver, batch_id):
    status, body, _ = receiver.push(**good(batch_id), CHARGE="1.0", MSGID="7")
    assert (status, body["status"], body["duplicate"]) == (200, "recorded", False)
    status, again, _ = receiver.push(**good(batch_id), CHARGE="1.0", MSGID="7")
    assert (status, again["duplicate"], again["event_key"]) == (200, True, body["event_key"])
    [row] = receiver.rows(batch_id)
    assert (row["mobile"], row["status"], row["mr"], row["rt"], row["event_key"]) == (
        "+886912345678",
        100,
        "m1",
        "20260301090000",
        body["event_key"],
    )
    assert receiver.token not in str(row)


def test_key_names_in_any_case(receiver, batch_id):
    keys = f"BATCHID={batch_id}&rm=0912345678&Rt=20260301090000&status=0&Sm=&mR=x&userid=u"
    query = f"token={receiver.token}&{keys}"
    status, body, _ = receiver.get(query)
    assert status == 200 and body["status"] == "recorded"
    assert [(r["status"], r["mr"], r["user_id"]) for r in receiver.rows(batch_id)] == [(0, "x", "u")]


@pytest.mark.parametrize(
    "sm",
    [
        "'; DROP TABLE push_journal; --",
        "1' OR '1'='1",
        "Robert'); DELETE FROM every8d_suppressions;--",
    ],
)
def test_sql_looking_replies_are_stored_verbatim(receiver, batch_id, sm):
    status, body, _ = receiver.push(**good(batch_id, STATUS="999", SM=sm))
    assert status == 200 and body["status"] == "recorded"
    assert [r["sm"] for r in receiver.rows(batch_id)] == [sm]


def _other_first_character(token: str) -> str:
    """The token with its first character changed (a fixed "x" is the token itself one time in 64)."""
    return ("y" if token[0] == "x" else "x") + token[1:]


def _bad(receiver, batch_id):
    token = receiver.token
    valid = urlencode({"token": token, **good(batch_id)})
    without = lambda key: urlencode({"token": token, **{k: v for k, v in good(batch_id).items() if k != key}})  # noqa: E731
    return [
        pytest.param(urlencode(good(batch_id)), 401, "unauthorized", id="no-token"),
        pytest.param(
            urlencode({"token": _other_first_character(token), **good(batch_id)}),
            401,
            "unauthorized",
            id="wrong-token",
        ),
        pytest.param(
            urlencode({"token": token[:-1], **good(batch_id)}), 401, "unauthorized", id="short-token"
        ),
        pytest.param(valid + "&TOKEN=" + token, 401, "unauthorized", id="two-tokens"),
        pytest.param(urlencode({"token": "", **good(batch_id)}), 401, "unauthorized", id="empty-token"),
        pytest.param(without("BatchID"), 422, "missing_param", id="no-batch"),
        pytest.param(without("RM"), 422, "missing_param", id="no-mobile"),
        pytest.param(without("STATUS"), 422, "missing_param", id="no-status"),
        pytest.param(without("RT"), 422, "missing_param", id="no-time"),
        pytest.param(
            urlencode({"token": token, **good(batch_id, STATUS="delivered")}),
            422,
            "invalid_param",
            id="status-text",
        ),
        pytest.param(
            urlencode({"token": token, **good(batch_id, RT="2026/03/01 09:00:00")}),
            422,
            "invalid_param",
            id="time-format",
        ),
        pytest.param(
            urlencode({"token": token, **good(batch_id, RM="not-a-number")}),
            422,
            "invalid_param",
            id="mobile",
        ),
        pytest.param(
            urlencode({"token": token, **good(batch_id, SM="長" * 2001, STATUS="999")}),
            422,
            "param_too_long",
            id="huge-sm",
        ),
        pytest.param(valid.encode() + b"&SM=%FF%FE%FD", 400, "invalid_utf8", id="bad-utf8-escaped"),
        # Raw (unescaped) bytes are not HTTP: uvicorn refuses them before the app, in plain text.
        pytest.param(
            urlencode({"token": token, **good(batch_id, STATUS="999")}).replace("SM=&", "").encode()
            + b"&SM=\xe4\xb8",
            400,
            None,
            id="bad-utf8-raw",
        ),
        pytest.param(valid + "&STATUS=100", 400, "repeated_param", id="repeated"),
        pytest.param(valid + "&pad=" + "a" * 40_000, 414, "query_too_long", id="query-too-long"),
    ]


def test_bad_pushes(receiver, batch_id, request):
    before = receiver.count()
    for case in _bad(receiver, batch_id):
        query, status, error = case.values
        got, body, _ = receiver.get(query)
        assert (got, body.get("error")) == (status, error), case.id
        assert body.get("detail") or body.get("text"), case.id
        assert "0912345678" not in str(body) and receiver.token not in str(body), case.id
    assert receiver.count() == before  # nothing written
    status, body, _ = receiver.push(**good(batch_id))  # and still serving
    assert status == 200 and body["status"] == "recorded" and receiver.count() == before + 1


def test_other_methods_and_paths(receiver):
    status, body, _ = receiver.get(f"token={receiver.token}", method="POST")
    assert (status, body["error"]) == (405, "method_not_allowed")
    status, body, _ = receiver.get("", path="/nothing-here")
    assert (status, body["error"]) == (404, "not_found")
    status, body, _ = receiver.get("", path="/health")
    assert (status, body) == (200, {"service": "every8d-pushes", "configured": True})


def test_head_records_nothing(receiver, batch_id):
    """Issue 12, point 15: Starlette answers HEAD with the GET endpoint; a HEAD must not record a push."""
    import http.client
    from urllib.parse import urlsplit

    before = receiver.count()
    parts = urlsplit(receiver.push_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("HEAD", parts.path + "?" + urlencode({"token": receiver.token, **good(batch_id)}))
    response = connection.getresponse()
    status, allow = response.status, response.getheader("allow")
    connection.close()
    assert status == 405 and allow == "GET"
    assert receiver.count() == before and receiver.rows(batch_id) == []
    assert receiver.push(**good(batch_id))[0] == 200 and len(receiver.rows(batch_id)) == 1


@pytest.mark.parametrize("size", [100_000, 1_000_000])
def test_a_query_beyond_the_http_parser_gets_the_documented_414(receiver, batch_id, size):
    """Issue 12, point 15: past uvicorn's own limit the answer is still our 414 JSON, not a bare 400."""
    before = receiver.count()
    status, body, _ = receiver.get(
        urlencode({"token": receiver.token, **good(batch_id)}) + "&pad=" + "a" * size
    )
    assert (status, body.get("error")) == (414, "query_too_long")
    assert receiver.count() == before
