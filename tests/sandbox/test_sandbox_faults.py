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
    "options, body",
    [
        pytest.param({}, "-99,主機端發生不明錯誤", id="default"),
        pytest.param({"code": -8}, "-8,系統暫時無法提供服務", id="code"),
        pytest.param({"code": -3, "message": "查無資料, 請確認:BID"}, "-3,查無資料, 請確認:BID", id="message"),
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
    with pytest.raises(Exception):
        sandbox.inject_fault("sendSMS", "cut")
