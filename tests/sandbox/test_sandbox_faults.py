"""Fault injection, including the socket-level faults no ASGI app can produce."""

from __future__ import annotations

import pytest
import requests

SEND = {"MSG": "hello", "DEST": "0912345678"}


def test_drop_executes_then_closes_without_answer(sandbox, gw):
    sandbox.inject_fault("sendSMS", "drop")
    with pytest.raises(requests.ConnectionError):
        gw.post("sendSMS", **SEND)
    [batch] = sandbox.batches()
    assert batch["cost"] == "1.0"
    assert gw.call("getCredit") == "99999.00"
    assert gw.call("sendSMS", **SEND).startswith("99998.00,1,1.0,0,")  # count=1: armed once


def test_reset_does_not_execute(sandbox, gw):
    sandbox.inject_fault("sendsms", "reset")
    with pytest.raises(requests.ConnectionError) as info:
        gw.post("sendSMS", **SEND)
    assert "reset" in str(info.value).lower()
    assert sandbox.batches() == []
    assert gw.call("getCredit") == "100000.00"
    assert [r["endpoint"] for r in sandbox.requests()] == ["sendSMS", "getCredit"]


def test_reset_after_executes(sandbox, gw):
    sandbox.inject_fault("sendSMS", "reset_after")
    with pytest.raises(requests.ConnectionError):
        gw.post("sendSMS", **SEND)
    assert len(sandbox.batches()) == 1


def test_slow_times_out_after_the_gateway_accepted(sandbox, gw):
    sandbox.inject_fault("sendSMS", "slow", delay=1.0)
    with pytest.raises(requests.ReadTimeout):
        gw.post("sendSMS", timeout=(1, 0.3), **SEND)
    assert len(sandbox.batches()) == 1


def test_slow_answers_late(sandbox, gw):
    sandbox.inject_fault("getCredit", "slow", delay=0.2)
    response = gw.post("getCredit", timeout=5)
    assert response.text == "100000.00" and response.elapsed.total_seconds() >= 0.2


def test_http503_has_retry_after(sandbox, gw):
    sandbox.inject_fault("getCredit", "http503", retry_after=7, count=2)
    for _ in range(2):
        response = gw.session.post(gw.url("getCredit"), data={"UID": "demo", "PWD": "secret"})
        assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert gw.call("getCredit") == "100000.00"


def test_http500_does_not_execute(sandbox, gw):
    sandbox.inject_fault("sendSMS", "http500")
    response = gw.session.post(gw.url("sendSMS"), data={"UID": "demo", "PWD": "secret", **SEND})
    assert response.status_code == 500
    assert sandbox.batches() == []


@pytest.mark.parametrize(
    ("options", "body"),
    [
        pytest.param({}, "-99,主機端發生不明錯誤", id="default"),
        pytest.param({"code": -8}, "-8,系統暫時無法提供服務", id="code"),
        pytest.param(
            {"code": -3, "message": "查無資料, 請確認:BID"}, "-3,查無資料, 請確認:BID", id="message"
        ),
    ],
)
def test_error_answers(sandbox, gw, options, body):
    sandbox.inject_fault("eraseBooking", "error", **options)
    assert gw.call("eraseBooking", BID="x") == body


def test_error_on_send_param_sms_is_json(sandbox, gw):
    sandbox.inject_fault("SendParamSMS", "error", code=-8)
    response = gw.session.post(gw.url("SendParamSMS"), json={"UID": "demo", "PWD": "secret"})
    assert response.json() == {"Result": False, "Status": "-8", "Msg": "系統暫時無法提供服務"}


@pytest.mark.parametrize("kind", ["garbage", "html", "empty"])
def test_non_protocol_answers(sandbox, gw, kind):
    sandbox.inject_fault("*", kind)
    response = gw.session.post(gw.url("sendSMS"), data={"UID": "demo", "PWD": "secret", **SEND})
    assert response.status_code == 200
    if kind == "garbage":
        assert response.content[:3] == b"\x00\xff\xfe"
    elif kind == "html":
        assert response.headers["content-type"].startswith("text/html") and b"<html>" in response.content
    else:
        assert response.content == b""
    assert sandbox.batches() == []


def test_execute_option_overrides_the_default(sandbox, gw):
    sandbox.inject_fault("sendSMS", "garbage", execute=True)
    gw.session.post(gw.url("sendSMS"), data={"UID": "demo", "PWD": "secret", **SEND})
    assert len(sandbox.batches()) == 1


def test_mms_endpoint_names_and_forever(sandbox, gw):
    sandbox.inject_fault("mms/getDeliveryStatus", "empty", count=-1)
    for _ in range(3):
        assert gw.post("MMS/getDeliveryStatus", BID="x").content == b""
    assert gw.call("getDeliveryStatus", BID="x") == "0\r\n"
    assert sandbox.faults()[0]["endpoint"] == "mms/getDeliveryStatus"
    sandbox.clear_faults()
    assert gw.call("MMS/getDeliveryStatus", BID="x") == "0\r\n"


def test_bad_fault_is_refused(sandbox):
    with pytest.raises(RuntimeError, match="HTTP 400"):
        sandbox.inject_fault("sendFax", "drop")
    with pytest.raises(RuntimeError, match="HTTP 400"):
        sandbox.inject_fault("sendSMS", "meltdown")


def test_connection_survives_faults_on_others(sandbox, gw):
    """A keep-alive session keeps working after the server dropped one of its connections."""
    sandbox.inject_fault("getCredit", "drop")
    with pytest.raises(requests.ConnectionError):
        gw.post("getCredit")
    assert gw.call("getCredit") == "100000.00"


def test_body_serves_the_chosen_text_without_executing(sandbox, gw):
    sandbox.inject_fault("sendSMS", "body", message="999500.00,1,1.0,0,cfa91f2", status=200)
    assert gw.post("sendSMS", **SEND).text == "999500.00,1,1.0,0,cfa91f2"
    assert sandbox.batches() == []


def test_cut_at_a_byte_executes_and_serves_a_prefix(sandbox, gw):
    sandbox.inject_fault("sendSMS", "cut", at=-5)
    response = gw.post("sendSMS", **SEND)
    [batch] = sandbox.batches()
    assert response.text == f"99999.00,1,1.0,0,{batch['batch_id']}"[:-5]
    assert int(response.headers["content-length"]) == len(response.content)


def test_cut_at_a_row_keeps_whole_lines(sandbox, gw):
    *_, batch_id = gw.call("sendSMS", MSG="hi", DEST="0912345678,0912345679,0912345670").split(",")
    sandbox.inject_fault("getDeliveryStatus", "cut", rows=2)
    lines = gw.post("getDeliveryStatus", BID=batch_id, PNO="1").text.splitlines()
    assert lines[0] == "3" and len(lines) == 2


def test_cut_needs_a_cut_point(sandbox):
    with pytest.raises(RuntimeError, match="HTTP 4"):
        sandbox.inject_fault("sendSMS", "cut")


def test_cut_inside_a_row_keeps_lines_then_bytes_of_the_next(sandbox, gw):
    *_, batch_id = gw.call("sendSMS", MSG="hi", DEST="0912345678,0912345679,0912345670").split(",")
    whole = gw.post("getDeliveryStatus", BID=batch_id, PNO="1").content
    sandbox.inject_fault("getDeliveryStatus", "cut", rows=2, at=7)
    cut = gw.post("getDeliveryStatus", BID=batch_id, PNO="1").content
    lines = whole.splitlines(keepends=True)
    assert cut == lines[0] + lines[1] + lines[2][:7]


def test_a_fault_for_one_page_leaves_the_other_pages_alone(sandbox, gw):
    *_, batch_id = gw.call("sendSMS", MSG="hi", DEST=",".join(f"09120{i:05d}" for i in range(1500))).split(
        ","
    )
    sandbox.inject_fault("getDeliveryStatus", "cut", rows=10, page=2)
    assert len(gw.post("getDeliveryStatus", BID=batch_id, PNO="1").text.splitlines()) == 1001
    assert len(gw.post("getDeliveryStatus", BID=batch_id, PNO="2").text.splitlines()) == 10
    assert len(gw.post("getDeliveryStatus", BID=batch_id, PNO="2").text.splitlines()) == 501


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_points_at_another_port_and_a_following_client_resends_there(sandbox, gw, status):
    from every8d.sandbox.catcher import RequestCatcher

    with RequestCatcher() as catcher:
        sandbox.inject_fault("getCredit", "redirect", status=status, location=catcher.url)
        response = gw.session.post(
            gw.url("getCredit"), data={"UID": "demo", "PWD": "secret"}, allow_redirects=False
        )
        assert response.status_code == status
        assert response.headers["location"].startswith(catcher.url + "/")
        # What a client that follows redirects does: 307/308 re-post the credentials to the other host.
        sandbox.inject_fault("getCredit", "redirect", status=status, location=catcher.url)
        gw.session.post(gw.url("getCredit"), data={"UID": "demo", "PWD": "secret"})
    [caught] = catcher.requests
    if status in (307, 308):
        assert caught.method == "POST" and b"PWD=secret" in caught.body
    else:
        assert caught.method == "GET" and caught.body == b""


def test_trickle_sends_the_real_answer_a_byte_at_a_time(sandbox, gw):
    sandbox.inject_fault("getCredit", "trickle", delay=0.05)
    response = gw.session.post(
        gw.url("getCredit"), data={"UID": "demo", "PWD": "secret"}, stream=True, timeout=5
    )
    chunks = list(iter(lambda: response.raw.read1(1024), b""))
    assert b"".join(chunks) == b"100000.00"
    assert chunks[0] == b"1"  # bytes arrive one by one, not as one answer


@pytest.mark.parametrize(
    ("options", "status", "html"), [({}, 500, True), ({"status": 200, "message": "Error: "}, 200, False)]
)
def test_echo_repeats_the_request_with_its_password(sandbox, gw, options, status, html):
    sandbox.inject_fault("getCredit", "echo", **options)
    response = gw.session.post(gw.url("getCredit"), data={"UID": "demo", "PWD": "s3 cr&t"})
    assert response.status_code == status
    assert "PWD=s3+cr%26t" in response.text and "PWD=s3 cr&t" in response.text
    assert response.text.startswith("<html>") is html
