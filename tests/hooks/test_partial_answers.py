"""Issue 12 at the hook: no cut or odd answer is taken for the truth, no credential leaves by a side door.

Every test talks to the sandbox over real HTTP and arms one of its faults (cut,
body, redirect, trickle, echo, drop); the redirect tests add a request catcher
on another loopback port.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote, quote_plus

import pytest

from every8d import pricing
from every8d.client.results import EraseResult, ParamRecipient
from every8d.errors import (
    Every8dError,
    GatewayError,
    HttpStatusError,
    IncompleteListingError,
    ReadFailedError,
    RedirectRefusedError,
    SendOutcomeUnknownError,
    WireFormatError,
)
from every8d.hooks.every8d import Every8dHook
from every8d.sandbox.catcher import RequestCatcher

PASSWORD = "Pw 秘密/9f3c!&="  # a space, a slash, CJK and form metacharacters: every encoding differs
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def connect(monkeypatch, sandbox, uid="demo", pwd="secret", **extra) -> Every8dHook:
    conn = {
        "conn_type": "every8d",
        "host": sandbox.base_url,
        "login": uid,
        "password": pwd,
        "extra": {"read_retries": 1, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_DEFAULT", json.dumps(conn))
    return Every8dHook()


@pytest.fixture
def hook(sandbox, monkeypatch):
    hook = connect(monkeypatch, sandbox)
    yield hook
    hook.close()


@pytest.fixture
def secret_hook(sandbox, monkeypatch):
    sandbox.create_account("secret-user", PASSWORD, 1000)
    hook = connect(monkeypatch, sandbox, "secret-user", PASSWORD, timeout=2)
    yield hook
    hook.close()


def encodings(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), quote(secret), quote(secret, safe="").lower()}


def error_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error)]
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            texts += [str(linked), repr(linked)]
    texts += [str(getattr(error, name, "")) for name in ("body_excerpt", "reason", "problem")]
    return texts


# -- point 6: a cut send answer is an unknown outcome, at every byte -------------------------------

SENDS = {
    "sendSMS": lambda hook, text: hook.send_sms(text, ["0912000001", "0912000002"]),
    "sendSMS4FilterMessage": lambda hook, text: hook.send_sms_filtered(
        text, ["0912000001", "0912000002", "0912000003"]
    ),
    "MMS/sendMMS": lambda hook, text: hook.send_mms(text, ["0912000001"], image=PNG),
    "SendParamSMS": lambda hook, text: hook.send_param_sms(
        [ParamRecipient("0912000001", ["a"], record_id="r1"), ParamRecipient("0912000002", ["b"])],
        template=text + " %field1%",
    ),
}


@pytest.mark.parametrize("endpoint", sorted(SENDS))
def test_every_send_answer_cut_at_every_byte_is_an_unknown_outcome(hook, sandbox, endpoint):
    """Property over every cut point: the hook returns the whole answer or raises SendOutcomeUnknownError."""
    send = SENDS[endpoint]

    def prime(text):  # the filter endpoint: two of the three numbers got this text already
        if endpoint == "sendSMS4FilterMessage":
            hook.send_sms(text, ["0912000001", "0912000003"])

    prime("whole")
    whole = send(hook, "whole")
    assert whole.batch_id and (
        endpoint != "sendSMS4FilterMessage" or whole.filtered == ("0912000001", "0912000003")
    )
    sandbox.inject_fault(endpoint, "cut", at=100_000)  # a cut past the end serves the whole answer
    prime("measure")
    full = send(hook, "measure")
    assert full.sent == whole.sent
    answer_bytes = len(
        f"{full.credit:.2f},{full.sent},{sandbox.batches()[-1]['cost']},{full.unsent},{full.batch_id}"
    )
    if endpoint == "sendSMS4FilterMessage":
        answer_bytes += 1 + len("/".join(full.filtered))
    if endpoint == "SendParamSMS":
        answer_bytes += len('{"Result":true,"Status":"0","Msg":""}')
    for dropped in range(1, answer_bytes + 1):
        text = f"cut {dropped}"
        prime(text)
        sandbox.inject_fault(endpoint, "cut", at=-dropped)
        with pytest.raises(SendOutcomeUnknownError) as raised:
            send(hook, text)
        assert raised.value.recipients >= 1


def test_a_filtered_number_cut_in_half_or_missing_is_an_unknown_outcome(hook, sandbox):
    hook.send_sms("again", ["0912000001", "0912000002"])
    template = "100.00,1,1.0,0,220478cc-8506-49b2-93b7-2505f651c12e,{}"
    for sixth in ["0912000001/0912", "0912000001", "0912000001/", "0912000001/0912000009", ""]:
        sandbox.inject_fault("sendSMS4FilterMessage", "body", message=template.format(sixth))
        with pytest.raises(SendOutcomeUnknownError):
            hook.send_sms_filtered("again", ["0912000001", "0912000002", "0912000003"])
    sandbox.inject_fault("sendSMS4FilterMessage", "body", message=template.format("0912000001/0912000002"))
    result = hook.send_sms_filtered("again", ["0912000001", "0912000002", "0912000003"])
    assert result.filtered == ("0912000001", "0912000002")


# -- point 7: a retried erase confirms an empty answer through the batch's status -------------------


@pytest.mark.parametrize("retry_answer", ["empty", "-4"])
def test_an_erase_whose_answer_was_lost_is_confirmed_by_the_status(hook, sandbox, retry_answer):
    later = sandbox.now() + timedelta(days=1)
    batch = hook.send_sms("scheduled", ["0912000001", "0912000002"], schedule_at=later).batch_id
    sandbox.inject_fault("eraseBooking", "drop")  # executes, then closes without an answer
    if retry_answer == "empty":
        sandbox.inject_fault("eraseBooking", "body", message="")
    result = hook.erase_booking(batch)
    assert result.found and result.deleted == 2 and result.confirmed_by_status
    assert {m["status"] for m in sandbox.messages(batch)} == {303}
    assert [r["endpoint"] for r in sandbox.requests()][-3:-1] == ["eraseBooking", "eraseBooking"]


def test_an_erase_lost_before_it_ran_still_reports_nothing_found(hook, sandbox):
    batch = hook.send_sms("sent now", ["0912000001"]).batch_id  # nothing scheduled: nothing to cancel
    sandbox.inject_fault("eraseBooking", "http500")  # not executed
    sandbox.inject_fault("eraseBooking", "body", message="")
    assert hook.erase_booking(batch) == EraseResult(found=False)


# -- point 8: MMS size is image plus text; international numbers refused ----------------------------


def test_mms_is_priced_by_image_plus_text_as_the_gateway_bills(hook, sandbox):
    image = PNG + b"\x00" * (pricing.MMS_SMALL_BYTES - len(PNG) - 100)
    short, long = "hi", "長" * 40  # 2 bytes, 120 bytes of UTF-8
    assert pricing.mms_points(len(image), short) == 3
    assert pricing.mms_points(len(image), long) == 5
    assert hook.send_mms(short, ["0912000001"], image=image).cost == Decimal(3)
    assert hook.send_mms(long, ["0912000001"], image=image).cost == Decimal(5)
    with pytest.raises(ValueError, match="image plus text"):
        hook.send_mms(
            "x" * 2048, ["0912000001"], image=PNG + b"\x00" * (pricing.MMS_LARGE_BYTES - len(PNG) - 100)
        )


def test_mms_to_an_international_number_is_refused_before_sending(hook, sandbox):
    with pytest.raises(ValueError, match="Taiwan mobiles only; 1 destination") as raised:
        hook.send_mms("pic", ["0912000001", "+85291234567"], image=PNG)
    assert "85291234567" not in str(raised.value)
    assert sandbox.requests() == []


# -- point 9: redirects are never followed ------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_no_call_follows_a_redirect_and_no_credential_reaches_the_other_host(secret_hook, sandbox, status):
    with RequestCatcher() as catcher:
        for endpoint in ("getCredit", "sendSMS", "getDeliveryStatus"):
            sandbox.inject_fault(endpoint, "redirect", status=status, location=catcher.url)
        with pytest.raises(RedirectRefusedError) as read:
            secret_hook.get_credit()
        with pytest.raises(SendOutcomeUnknownError) as send:
            secret_hook.send_sms("hi", ["0912000001"])
        with pytest.raises(RedirectRefusedError):
            list(secret_hook.iter_delivery_status("220478cc-8506-49b2-93b7-2505f651c12e"))
    assert catcher.requests == []
    host = catcher.url.removeprefix("http://")
    assert read.value.status == status and read.value.target_host == host
    assert f"HTTP {status}" in str(read.value) and host in str(read.value)
    assert f"HTTP {status}" in str(send.value) and host in str(send.value)


# -- point 10: echoing error pages do not leak the password ----------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "options", "expected"),
    [
        pytest.param("getCredit", {}, HttpStatusError, id="500-on-getCredit"),
        pytest.param(
            "getCredit", {"status": 200, "message": "Error "}, WireFormatError, id="text-200-on-getCredit"
        ),
        pytest.param("sendSMS", {"status": 200}, SendOutcomeUnknownError, id="html-200-on-sendSMS"),
        pytest.param(
            "sendSMS", {"status": 200, "message": "Err "}, SendOutcomeUnknownError, id="text-200-on-sendSMS"
        ),
        pytest.param("getDeliveryStatus", {"status": 502}, HttpStatusError, id="502-on-status"),
    ],
)
def test_an_error_page_that_echoes_the_request_keeps_no_password(
    secret_hook, sandbox, endpoint, options, expected
):
    sandbox.inject_fault(endpoint, "echo", count=-1, **options)
    calls = {
        "getCredit": secret_hook.get_credit,
        "sendSMS": lambda: secret_hook.send_sms("hi", ["0912000001"]),
        "getDeliveryStatus": lambda: secret_hook.get_delivery_status_page(
            "220478cc-8506-49b2-93b7-2505f651c12e"
        ),
    }
    with pytest.raises(expected) as raised:
        calls[endpoint]()
    texts = error_texts(raised.value)
    assert any("PWD=***" in text for text in texts) or endpoint == "sendSMS", (
        texts
    )  # the echo was seen, scrubbed
    for text in texts:
        for form in encodings(PASSWORD):
            assert form not in text
        assert "0912000001" not in text


# -- point 11: a total deadline per call --------------------------------------------------------------------


def test_a_trickling_server_cannot_hold_a_call_past_its_deadline(sandbox, monkeypatch):
    """A byte every 0.3 s never trips a 2 s read timeout; the 1 s deadline still ends the call."""
    hook = connect(monkeypatch, sandbox, timeout=2, deadline=1, read_retries=0)
    sandbox.inject_fault("getCredit", "trickle", delay=0.3)
    with pytest.raises(ReadFailedError, match="deadline"):
        hook.get_credit()
    sandbox.inject_fault("sendSMS", "trickle", delay=0.3)
    with pytest.raises(SendOutcomeUnknownError, match="deadline"):
        hook.send_sms("hi", ["0912000001"])
    relaxed = connect(monkeypatch, sandbox, timeout=2, deadline=30, read_retries=0)
    sandbox.inject_fault("getCredit", "trickle", delay=0.05)
    assert relaxed.get_credit() == hook.get_credit()  # the same trickle within the deadline is read whole


# -- point 12: phone numbers stay out of messages ---------------------------------------------------------


def test_numbers_in_gateway_errors_are_counted_not_shown(hook, sandbox):
    with pytest.raises(GatewayError) as bad:
        hook.send_sms("hi", ["0912000001", "12ab34567"])
    assert bad.value.code == -306 and "12ab34567" in bad.value.numbers
    assert "12ab34567" not in str(bad.value) and "number(s)" in str(bad.value)
    hook.send_sms("twice", ["0912000005", "0912000006"])
    with pytest.raises(GatewayError) as filtered:
        hook.send_sms_filtered("twice", ["0912000005", "0912000006"])
    assert filtered.value.code == -98 and filtered.value.numbers == ("0912000005", "0912000006")
    assert "0912000005" not in str(filtered.value) and "<2 number(s)>" in str(filtered.value)


# -- point 13: no host, no fallback to production -----------------------------------------------------------


def test_a_connection_without_a_host_is_refused(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_EVERY8D_DEFAULT", json.dumps({"conn_type": "every8d", "login": "u", "password": "p"})
    )
    hook = Every8dHook()
    with pytest.raises(ValueError, match="has no host"):
        hook.get_credit()
    ok, message = hook.test_connection()
    assert not ok and "has no host" in message


# -- points 1 and 4 at the hook: listings must add up -------------------------------------------------------


def test_a_status_listing_cut_at_a_row_boundary_raises_after_the_last_page(hook, sandbox):
    batch = hook.send_sms("hi", [f"09120{i:05d}" for i in range(2500)]).batch_id
    sandbox.inject_fault("getDeliveryStatus", "cut", rows=501, page=1)
    with pytest.raises(IncompleteListingError, match=r"1 page\(s\) read, 3 needed for 2500"):
        list(hook.iter_delivery_status(batch))
    sandbox.inject_fault("getDeliveryStatus", "cut", rows=401, page=3)
    with pytest.raises(IncompleteListingError, match="2400 row"):
        list(hook.iter_delivery_status(batch))
    assert len(list(hook.iter_delivery_status(batch))) == 2500


def test_a_cut_reply_page_is_an_incomplete_listing(hook, sandbox):
    batch = hook.send_sms("hi", ["0912000001"]).batch_id
    for index in range(13):
        sandbox.add_reply(batch, "+886912000001", f"reply {index}")
    sandbox.inject_fault("getReplyMessage", "cut", rows=6, page=1)
    with pytest.raises(IncompleteListingError, match=r"1 page\(s\) read, 2 needed for 13"):
        list(hook.iter_replies(batch))
    sandbox.inject_fault("getReplyMessage", "cut", rows=2, page=2)
    with pytest.raises(IncompleteListingError, match="11 row"):
        list(hook.iter_replies(batch))
    replies = list(hook.iter_replies(batch))
    assert len(replies) == 13
    assert all(
        reply.replied_at.utcoffset() == timedelta(0) and str(reply.replied_at.tzinfo) == "UTC"
        for reply in replies
    )  # point 5


def test_every_error_class_used_here_is_an_every8d_error():
    for cls in (RedirectRefusedError, IncompleteListingError, HttpStatusError, ReadFailedError):
        assert issubclass(cls, Every8dError)
    assert IncompleteListingError.retry_safe
