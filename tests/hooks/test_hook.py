"""Every8dHook against the sandbox gateway over real HTTP, one endpoint at a time."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from every8d.client.results import EraseResult, ParamRecipient
from every8d.errors import (
    AuthenticationError,
    GatewayError,
    GatewayUnreachableError,
    HttpStatusError,
    SendOutcomeUnknownError,
    WireFormatError,
)
from every8d.hooks.every8d import Every8dHook, normalize_base_url

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2048


@pytest.fixture
def hook(every8d_conn_env):
    hook = Every8dHook()
    yield hook
    hook.close()


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+8869{index:08d}" for index in range(start, start + count)]


def gateway_requests(sandbox, endpoint: str) -> list[dict]:
    return [r for r in sandbox.requests() if r["path"].lower().endswith(endpoint.lower())]


def form_of(request: dict) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request["body"], keep_blank_values=True).items()}


# -- sends -------------------------------------------------------------------------------------


def test_send_sms_posts_a_form_with_credentials_in_the_body(hook, sandbox):
    result = hook.send_sms("Hello from Airflow", ["0912000001", "+886912000002"], subject="unit")
    assert (result.sent, result.cost, result.unsent) == (2, Decimal("2.0"), 0)
    assert result.credit == Decimal("99998.00")
    [request] = gateway_requests(sandbox, "/API21/HTTP/sendSMS.ashx")
    assert request["method"] == "POST"
    assert request["path"].startswith("/tenant/")
    assert request["query_string"] == ""
    assert form_of(request) == {
        "UID": sandbox.uid,
        "PWD": sandbox.pwd,
        "SB": "unit",
        "MSG": "Hello from Airflow",
        "DEST": "0912000001,+886912000002",
        "ST": "",
        "RETRYTIME": "",
    }
    messages = sandbox.messages(result.batch_id)
    assert sorted(m["mobile"] for m in messages) == ["+886912000001", "+886912000002"]


def test_chinese_and_emoji_text_round_trip(hook, sandbox):
    text = "您好，王小明！本週優惠 🎉 限時 50% off 😀"
    result = hook.send_sms(text, ["0912000003"])
    [message] = sandbox.messages(result.batch_id)
    assert message["text"] == text
    [request] = gateway_requests(sandbox, "sendSMS.ashx")
    assert form_of(request)["MSG"] == text


def test_schedule_time_goes_out_in_taipei_time(hook, sandbox):
    when = datetime(2030, 5, 1, 1, 30, tzinfo=UTC)
    hook.send_sms("later", ["0912000004"], schedule_at=when, validity_minutes=90)
    [request] = gateway_requests(sandbox, "sendSMS.ashx")
    assert form_of(request)["ST"] == "20300501093000"
    assert form_of(request)["RETRYTIME"] == "90"


def test_send_validation_happens_before_any_request(hook, sandbox):
    with pytest.raises(ValueError, match="empty"):
        hook.send_sms("", ["0912000001"])
    with pytest.raises(ValueError, match="no destination"):
        hook.send_sms("hi", [])
    with pytest.raises(ValueError, match="timezone-aware"):
        hook.send_sms("hi", ["0912000001"], schedule_at=datetime(2030, 1, 1))
    assert sandbox.requests() == []


def test_bad_number_is_a_gateway_error_with_code_and_meaning(hook):
    with pytest.raises(GatewayError) as raised:
        hook.send_sms("hi", ["12ab"])
    assert raised.value.code == -306
    assert "bad mobile number format" in str(raised.value)


def test_filtered_send_reports_numbers_the_gateway_skipped(hook, sandbox):
    first = hook.send_sms("same text", ["0912000005"])
    again = hook.send_sms_filtered("same text", ["0912000005", "0912000006"])
    assert again.sent == 1
    assert again.filtered == ("0912000005",)
    assert again.batch_id != first.batch_id
    with pytest.raises(GatewayError) as raised:
        hook.send_sms_filtered("same text", ["0912000005", "0912000006"])
    assert raised.value.code == -98


def test_send_mms_encodes_the_image(hook, sandbox):
    result = hook.send_mms("picture", ["0912000007"], image=PNG, subject="promo")
    assert result.cost == Decimal("3.0")
    [request] = gateway_requests(sandbox, "MMS/sendMMS.ashx")
    form = form_of(request)
    assert base64.b64decode(form["ATTACHMENT"]) == PNG
    assert form["TYPE"] == "png"
    [message] = sandbox.messages(result.batch_id)
    assert message["kind"] == "mms"


def test_mms_checks_refuse_before_sending(hook, sandbox):
    with pytest.raises(ValueError):
        hook.send_mms("x", ["0912000007"], image=b"not an image")
    with pytest.raises(ValueError):
        hook.send_mms("x", ["0912000007"], image=PNG + b"\x00" * 400 * 1024)
    assert sandbox.requests() == []


def test_param_sms_template_record_ids_and_own_send_times(hook, sandbox):
    later = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    recipients = [
        ParamRecipient("0912000010", ["王小明", "100"], name="王小明", record_id="r-1"),
        ParamRecipient("0912000011", ["Amy"], record_id="r-2", send_at=later),
    ]
    result = hook.send_param_sms(recipients, template="%field1% 您好，點數 %field2% 點")
    assert result.sent == 2
    by_mr = {m["mr"]: m for m in sandbox.messages(result.batch_id)}
    assert by_mr["r-1"]["text"] == "王小明 您好，點數 100 點"
    assert by_mr["r-2"]["text"] == "Amy 您好，點數  點"
    assert by_mr["r-1"]["name"] == "王小明"
    [request] = gateway_requests(sandbox, "SendParamSMS.ashx")
    body = json.loads(request["body"])
    assert body["RecipientDataList"][1]["SendTime"] == "20310102110405"
    assert body["PWD"] == sandbox.pwd


def test_param_sms_fully_personalized_texts(hook, sandbox):
    recipients = [
        ParamRecipient(f"09120000{i:02d}", [f"第 {i} 則 | 專屬訊息"], record_id=f"m{i}") for i in range(3)
    ]
    result = hook.send_param_sms(recipients)
    texts = sorted(m["text"] for m in sandbox.messages(result.batch_id))
    assert texts == [f"第 {i} 則 | 專屬訊息" for i in range(3)]


# -- status, replies, credit, erase ---------------------------------------------------------------


def test_2345_status_rows_in_exactly_three_calls(hook, sandbox):
    batch = hook.send_sms("status paging", numbers(2345)).batch_id
    sandbox.clear_requests()
    pages = list(hook.iter_delivery_status_pages(batch))
    assert [page.rows for page in pages] == [1000, 1000, 345]
    assert {page.total for page in pages} == {2345}
    calls = gateway_requests(sandbox, "getDeliveryStatus.ashx")
    assert [form_of(call)["PNO"] for call in calls] == ["1", "2", "3"]
    mobiles = [record.mobile for record in hook.iter_delivery_status(batch)]
    assert sorted(mobiles) == numbers(2345)


def test_status_moves_with_the_sandbox_clock(hook, sandbox):
    batch = hook.send_sms("lifecycle", ["+886912000100", "+886912000197"]).batch_id
    before = {r.mobile: r for r in hook.iter_delivery_status(batch)}
    assert {r.status for r in before.values()} == {0}
    sandbox.advance(3600)
    after = {r.mobile: r for r in hook.iter_delivery_status(batch)}
    assert after["+886912000100"].status == 100
    assert after["+886912000100"].received_at is not None
    assert after["+886912000197"].status == 101
    assert after["+886912000197"].info.group == "failed"


def test_old_five_column_accounts_and_bare_zero(hook, sandbox):
    sandbox.create_account(sandbox.uid, sandbox.pwd, 1000, status_columns=5, empty_status_newline=False)
    batch = hook.send_sms("five columns", numbers(3)).batch_id
    records = list(hook.iter_delivery_status(batch))
    assert len(records) == 3 and all(r.received_at is None for r in records)
    empty = list(hook.iter_delivery_status_pages("00000000-0000-0000-0000-000000000000"))
    assert [(p.total, p.rows) for p in empty] == [(0, 0)]


def test_json_status_form_returns_record_ids(hook, sandbox):
    recipients = [ParamRecipient(number, ["x"], record_id=f"rec-{i}") for i, number in enumerate(numbers(4))]
    batch = hook.send_param_sms(recipients, template="hi %field1%").batch_id
    records = list(hook.iter_delivery_status(batch, with_record_ids=True))
    assert sorted(r.record_id for r in records) == [f"rec-{i}" for i in range(4)]


def test_mms_status(hook, sandbox):
    batch = hook.send_mms("mms status", numbers(2), image=PNG).batch_id
    sandbox.advance(3600)
    records = list(hook.iter_delivery_status(batch, mms=True))
    assert {r.status for r in records} == {700}
    assert list(hook.iter_delivery_status(batch)) == []  # not an SMS batch


def test_replies_are_paged_ten_at_a_time(hook, sandbox):
    batch = hook.send_sms("reply to me", numbers(23)).batch_id
    for index, number in enumerate(numbers(23)):
        sandbox.add_reply(batch, number, f"回覆 {index}")
    sandbox.clear_requests()
    replies = list(hook.iter_replies(batch))
    assert sorted(r.content for r in replies) == sorted(f"回覆 {i}" for i in range(23))
    assert len(gateway_requests(sandbox, "getReplyMessage.ashx")) == 3
    assert all(r.replied_at.tzinfo is not None for r in replies)


def test_credit(hook, sandbox):
    assert hook.get_credit() == Decimal("100000.00")
    hook.send_sms("x" * 71, ["0912000001"])
    assert hook.get_credit() == Decimal("99998.00")


def test_erase_booking_refunds_and_reports_nothing_found(hook, sandbox):
    later = sandbox.now() + timedelta(days=1)
    batch = hook.send_sms("scheduled", numbers(3), schedule_at=later).batch_id
    assert hook.get_credit() == Decimal("99997.00")
    result = hook.erase_booking(batch)
    assert result == EraseResult(found=True, deleted=3, refunded=Decimal("3.0"))
    assert hook.get_credit() == Decimal("100000.00")
    assert {m["status"] for m in sandbox.messages(batch)} == {303}
    assert hook.erase_booking("00000000-0000-0000-0000-000000000000") == EraseResult(found=False)
    with pytest.raises(GatewayError) as raised:
        hook.erase_booking(batch)
    assert raised.value.code == -4


def test_erase_mms_booking(hook, sandbox):
    later = sandbox.now() + timedelta(hours=2)
    batch = hook.send_mms("scheduled mms", numbers(2), image=PNG, schedule_at=later).batch_id
    assert hook.erase_booking(batch, mms=True).deleted == 2


# -- credentials and connection -----------------------------------------------------------------


def test_wrong_password_is_an_authentication_error_without_the_password(sandbox, monkeypatch):
    conn = json.loads(sandbox.connection_json())
    conn["password"] = "wrong-Passw0rd"
    monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_DEFAULT", json.dumps(conn))
    hook = Every8dHook()
    with pytest.raises(AuthenticationError) as raised:
        hook.get_credit()
    assert raised.value.code == -101
    assert "wrong-Passw0rd" not in str(raised.value)
    ok, message = hook.test_connection()
    assert not ok and "-101" in message and "wrong-Passw0rd" not in message


def test_test_connection_reports_credit(hook):
    ok, message = hook.test_connection()
    assert ok
    assert "100000.00 points" in message


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("api.e8d.tw", "https://api.e8d.tw", id="bare-host"),
        pytest.param("https://api.e8d.tw/", "https://api.e8d.tw", id="trailing-slash"),
        pytest.param("http://127.0.0.1:8765/tenant/", "http://127.0.0.1:8765/tenant", id="prefix"),
        pytest.param("https://x.example/ent/API21/HTTP", "https://x.example/ent", id="api-path-given"),
    ],
)
def test_base_url_normalization(host, expected):
    assert normalize_base_url(host) == expected


def test_extras_and_arguments(sandbox, monkeypatch):
    conn = json.loads(sandbox.connection_json())
    conn["extra"] = {
        "timeout": "7",
        "connect_timeout": 2,
        "verify": "false",
        "validity_minutes": 60,
        "read_retries": 1,
    }
    monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_DEFAULT", json.dumps(conn))
    settings = Every8dHook().settings
    assert (settings.read_timeout, settings.connect_timeout, settings.verify) == (7.0, 2.0, False)
    assert (settings.validity_minutes, settings.read_retries) == (60, 1)
    assert Every8dHook(timeout=3, validity_minutes=10).settings.read_timeout == 3.0
    hook = Every8dHook()
    hook.send_sms("validity from extras", ["0912000001"])
    [request] = gateway_requests(sandbox, "sendSMS.ashx")
    assert form_of(request)["RETRYTIME"] == "60"


def test_missing_credentials_are_refused(sandbox, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_EVERY8D_DEFAULT", json.dumps({"conn_type": "every8d", "host": sandbox.base_url})
    )
    with pytest.raises(ValueError, match="login"):
        Every8dHook().get_credit()


# -- faults ---------------------------------------------------------------------------------------


def test_reads_retry_5xx_and_honour_retry_after(hook, sandbox):
    sandbox.inject_fault("getCredit", "http500", count=1)
    sandbox.inject_fault("getCredit", "http503", count=1, retry_after=1)
    assert hook.get_credit() == Decimal("100000.00")
    assert len(gateway_requests(sandbox, "getCredit.ashx")) == 3


def test_reads_give_up_with_a_clear_http_error(every8d_conn_env, sandbox):
    sandbox.inject_fault("getCredit", "http500", count=-1)
    hook = Every8dHook(read_retries=1)
    with pytest.raises(HttpStatusError, match=r"getCredit\.ashx answered HTTP 500"):
        hook.get_credit()


@pytest.mark.parametrize("kind", ["reset", "drop", "slow"])
def test_reads_survive_lost_answers(hook, sandbox, kind):
    batch = hook.send_sms("read faults", numbers(2)).batch_id
    sandbox.inject_fault("getDeliveryStatus", kind, count=1, delay=3)
    hook_with_short_timeout = Every8dHook(timeout=1)
    assert len(list(hook_with_short_timeout.iter_delivery_status(batch))) == 2


@pytest.mark.parametrize("kind", ["http500", "http503", "reset", "drop", "reset_after"])
def test_a_send_that_left_is_never_retried(hook, sandbox, kind):
    sandbox.inject_fault("sendSMS", kind, count=1, retry_after=0)
    with pytest.raises(SendOutcomeUnknownError) as raised:
        hook.send_sms("outcome unknown", numbers(5))
    assert raised.value.recipients == 5
    assert not raised.value.retry_safe
    assert len(gateway_requests(sandbox, "sendSMS.ashx")) == 1
    executed = kind in {"drop", "reset_after"}
    assert len(sandbox.messages()) == (5 if executed else 0)


def test_accept_then_drop_charges_the_account(hook, sandbox):
    sandbox.inject_fault("sendSMS", "drop", count=1)
    with pytest.raises(SendOutcomeUnknownError, match="connection closed"):
        hook.send_sms("charged but unanswered", numbers(4))
    assert hook.get_credit() == Decimal("99996.00")


def test_slow_send_times_out_as_outcome_unknown(every8d_conn_env, sandbox):
    sandbox.inject_fault("sendSMS", "slow", count=1, delay=3)
    hook = Every8dHook(timeout=0.5)
    with pytest.raises(SendOutcomeUnknownError, match="read timeout"):
        hook.send_sms("slow", numbers(1))
    assert len(sandbox.messages()) == 1


def test_param_send_drop_is_outcome_unknown(hook, sandbox):
    sandbox.inject_fault("SendParamSMS", "drop", count=1)
    with pytest.raises(SendOutcomeUnknownError):
        hook.send_param_sms([ParamRecipient("0912000001", ["a"])], template="%field1%")


def test_unreachable_gateway_is_safe_to_retry(sandbox, monkeypatch):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_EVERY8D_DEFAULT",
        json.dumps(
            {
                "conn_type": "every8d",
                "host": f"http://127.0.0.1:{port}",
                "login": "u",
                "password": "p",
                "extra": {"read_retries": 0},
            }
        ),
    )
    with pytest.raises(GatewayUnreachableError) as raised:
        Every8dHook().send_sms("never left", ["0912000001"])
    assert raised.value.retry_safe


def test_gateway_error_99(hook, sandbox):
    sandbox.inject_fault("sendSMS", "error", count=1)
    with pytest.raises(GatewayError) as raised:
        hook.send_sms("x", ["0912000001"])
    assert raised.value.code == -99
    assert "unknown error on the gateway" in str(raised.value)


def test_temporary_gateway_code_is_retry_safe(hook, sandbox):
    later = sandbox.now() + timedelta(days=1)
    batch = hook.send_sms("x", ["0912000001"], schedule_at=later).batch_id
    sandbox.inject_fault("eraseBooking", "error", count=1, code=-8, message="系統忙碌中")
    with pytest.raises(GatewayError) as raised:
        hook.erase_booking(batch)
    assert raised.value.code == -8 and raised.value.retry_safe


@pytest.mark.parametrize(
    ("kind", "problem"), [("garbage", "unexpected format"), ("html", "HTML page"), ("empty", "empty answer")]
)
def test_protocol_errors_name_the_endpoint(hook, sandbox, kind, problem):
    sandbox.inject_fault("getCredit", kind, count=1)
    with pytest.raises(WireFormatError) as raised:
        hook.get_credit()
    assert raised.value.endpoint == "getCredit.ashx"
    assert problem in str(raised.value) or problem in raised.value.problem


@pytest.mark.parametrize("kind", ["garbage", "html", "empty"])
def test_unparseable_send_answer_leaves_the_outcome_unknown(hook, sandbox, kind):
    sandbox.inject_fault("sendSMS", kind, count=1)
    with pytest.raises(SendOutcomeUnknownError, match=r"sendSMS\.ashx"):
        hook.send_sms("x", ["0912000001"])
