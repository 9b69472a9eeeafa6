"""The sandbox's gateway endpoints, byte for byte, over real HTTP."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone

import pytest

TAIPEI = timezone(timedelta(hours=8))
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
START = datetime(2026, 3, 1, 9, 0, 0, tzinfo=TAIPEI)


@pytest.fixture
def at_start(sandbox):
    sandbox.set_clock(START)
    return sandbox


# ---------------------------------------------------------------- credentials and routing


@pytest.mark.parametrize(
    ("uid", "pwd", "body"),
    [
        pytest.param("", "", "-300,帳號密碼不得為空值", id="empty"),
        pytest.param("nobody", "secret", "-100,帳號或密碼錯誤", id="unknown-uid"),
        pytest.param("demo", "wrong", "-101,密碼錯誤", id="wrong-pwd"),
    ],
)
@pytest.mark.parametrize(
    "endpoint", ["getCredit", "sendSMS", "getDeliveryStatus", "eraseBooking", "MMS/sendMMS"]
)
def test_credentials_refused(gw, endpoint, uid, pwd, body):
    assert gw.call(endpoint, uid=uid, pwd=pwd, MSG="x", DEST="0912345678", BID="x") == body


def test_get_credit(gw):
    assert gw.call("getCredit") == "100000.00"


def test_legacy_get_with_query(gw):
    response = gw.session.get(gw.url("getCredit"), params={"UID": "demo", "PWD": "secret"})
    assert response.text == "100000.00"


@pytest.mark.parametrize(
    "path",
    [
        "/API21/HTTP/getCredit.ashx",
        "/acme/sms/api21/http/GETCREDIT.ashx",
        "/tenant/Api21/Http/getcredit.ASHX",
    ],
)
def test_any_prefix_any_case(sandbox_server, sandbox, gw, path):
    response = gw.session.post(sandbox_server.root_url + path, data={"UID": "demo", "PWD": "secret"})
    assert (response.status_code, response.text) == (200, "100000.00")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    [
        "/API21/HTTP/nothing.ashx",
        "/API21/HTTP/MMS/sendSMS.ashx",
        "/API21/HTTP/sendMMS.ashx",
        "/getCredit.ashx",
        "/tenant/index.html",
    ],
)
def test_unknown_paths_are_404(sandbox_server, sandbox, gw, path):
    response = gw.session.post(sandbox_server.root_url + path, data={"UID": "demo", "PWD": "secret"})
    assert response.status_code == 404


# ---------------------------------------------------------------- sendSMS


def test_send_sms_success_body(gw):
    body = gw.call("sendSMS", SB="test", MSG="您好", DEST="+886912345678,0922333444")
    assert re.fullmatch(rf"99998\.00,2,2\.0,0,{UUID}", body), body
    assert gw.call("getCredit") == "99998.00"


def test_send_sms_prices_long_and_international(sandbox, gw):
    sandbox.create_account("intl", "pw", 100, international=True)
    credit, sended, cost, unsend, _ = gw.send("0912345678,+14155550123", msg="x" * 71, uid="intl", pwd="pw")
    # 71 characters = 2 points to Taiwan, times 3 abroad
    assert (credit, sended, cost, unsend) == ("92.00", "2", "8.0", "0")


def test_international_not_enabled_is_500_and_free(sandbox, gw):
    credit, sended, cost, unsend, batch_id = gw.send("0912345678,+14155550123")
    assert (credit, sended, cost, unsend) == ("99999.00", "1", "1.0", "0")
    rows = gw.status_rows(batch_id)
    assert [(r[1], r[3], r[4]) for r in rows] == [
        ("+886912345678", "1.0", "0"),
        ("+14155550123", "0.0", "500"),
    ]


@pytest.mark.parametrize(
    ("form", "body"),
    [
        pytest.param({"MSG": "", "DEST": "0912345678"}, "-24,簡訊內容不得為空值", id="empty-msg"),
        pytest.param({"MSG": "hi", "DEST": ""}, "-27,門號不得為空值", id="empty-dest"),
        pytest.param(
            {"MSG": "hi", "DEST": "0912345678,12345,0922333444"}, "-306,手機格式不符:12345", id="bad-number"
        ),
        pytest.param(
            {"MSG": "hi", "DEST": "0912345678", "ST": "2026-03-01"}, "-6,預約時間格式錯誤", id="bad-st"
        ),
        pytest.param(
            {"MSG": "hi", "DEST": "0912345678", "ST": "20261399000000"}, "-6,預約時間格式錯誤", id="bad-date"
        ),
    ],
)
def test_send_sms_errors(sandbox, gw, form, body):
    assert gw.call("sendSMS", **form) == body
    assert sandbox.batches() == []
    assert gw.call("getCredit") == "100000.00"


def test_partial_credit_sends_what_fits(sandbox, gw):
    sandbox.create_account("poor", "pw", 3)
    body = gw.call(
        "sendSMS",
        uid="poor",
        pwd="pw",
        MSG="hi",
        DEST="0911000001,0911000002,0911000003,0911000004,0911000005",
    )
    credit, sended, cost, unsend, batch_id = body.split(",")
    assert (credit, sended, cost, unsend) == ("0.00", "3", "3.0", "2")
    statuses = [(r[3], r[4]) for r in gw.status_rows(batch_id, uid="poor", pwd="pw")]
    assert statuses == [("1.0", "0")] * 3 + [("0.0", "301")] * 2
    assert sandbox.account("poor")["credit"] == "0.00"


def test_scheduled_send_is_charged_and_stays_300(at_start, gw):
    st = (START + timedelta(hours=2)).strftime("%Y%m%d%H%M%S")
    credit, *_, batch_id = gw.send("0912345678", ST=st)
    assert credit == "99999.00"
    assert gw.status_rows(batch_id) == [["", "+886912345678", "2026/03/01 11:00:00", "1.0", "300", ""]]
    at_start.advance(2 * 3600)
    assert gw.status_rows(batch_id)[0][4] == "0"
    at_start.advance(60)
    assert gw.status_rows(batch_id)[0][4] == "100"


def test_past_st_means_now(at_start, gw):
    *_, batch_id = gw.send("0912345678", ST="20200101000000")
    assert gw.status_rows(batch_id)[0][2:5] == ["2026/03/01 09:00:00", "1.0", "0"]


def test_plain_send_sends_duplicates(gw):
    gw.send("0912345678")
    credit, sended, *_ = gw.send("0912345678")
    assert (credit, sended) == ("99998.00", "1")


# ---------------------------------------------------------------- lifecycle


def test_lifecycle_by_suffix_and_overrides(at_start, gw):
    at_start.set_outcomes({"5555": 104})
    *_, batch_id = gw.send("0912345600,0912345697,0912345698,0912345699,0912345555")
    assert [r[4] for r in gw.status_rows(batch_id)] == ["0"] * 5
    at_start.advance(4)  # every delay is at least 5 s
    assert [r[4] for r in gw.status_rows(batch_id)] == ["0"] * 5
    at_start.advance(60)
    rows = gw.status_rows(batch_id)
    assert [r[4] for r in rows] == ["100", "101", "103", "107", "104"]
    received = rows[0][5]
    assert re.fullmatch(r"2026/03/01 09:01:\d\d|2026/03/01 09:00:[0-5]\d", received)
    assert [r[5] for r in rows[1:]] == [""] * 4
    messages = at_start.messages(batch_id)
    assert messages[0]["received_at"] is not None and messages[0]["status"] == 100
    assert messages[0]["final_at"] == messages[0]["received_at"]


def test_validity_shorter_than_delivery_expires(at_start, gw):
    *_, batch_id = gw.send("0912345678", RETRYTIME="0")
    at_start.advance(61)
    assert gw.status_rows(batch_id)[0][4] == "107"


def test_delay_is_deterministic_per_message(at_start, gw):
    *_, batch_id = gw.send(",".join(f"09110000{i:02d}" for i in range(20)))
    finals = [m["final_at"] for m in at_start.messages(batch_id)]
    assert len(set(finals)) > 1  # spread over 5-60 s
    assert finals == [m["final_at"] for m in at_start.messages(batch_id)]


# ---------------------------------------------------------------- getDeliveryStatus


def test_status_paging_2345(sandbox, gw):
    dest = ",".join(f"09{i:08d}" for i in range(2345))
    _credit, sended, *_, batch_id = gw.send(dest)
    assert sended == "2345"
    pages = [gw.status(batch_id, PNO=str(p)).split("\r\n") for p in (1, 2, 3)]
    assert [len(p) - 1 for p in pages] == [1000, 1000, 345]
    assert all(p[0] == "2345" for p in pages)
    assert pages[0][1].split("\t")[1] == "+886900000000"
    assert pages[2][-1].split("\t")[1] == "+886900002344"
    assert gw.status(batch_id) == gw.status(batch_id, PNO="1")
    assert gw.status(batch_id, PNO="4") == "2345\r\n"
    assert len(sandbox.messages(batch_id)) == 2345


def test_status_five_columns(sandbox, gw):
    sandbox.create_account("old", "pw", 10, status_columns=5)
    *_, batch_id = gw.call("sendSMS", uid="old", pwd="pw", MSG="hi", DEST="0912345678").split(",")
    lines = gw.status(batch_id, uid="old", pwd="pw").split("\r\n")
    assert lines[0] == "1" and len(lines[1].split("\t")) == 5


@pytest.mark.parametrize(("newline", "body"), [(True, "0\r\n"), (False, "0")])
def test_status_of_unknown_batch(sandbox, gw, newline, body):
    sandbox.create_account("acct", "pw", 10, empty_status_newline=newline)
    assert gw.status("no-such-batch", uid="acct", pwd="pw") == body


def test_status_of_another_accounts_batch_is_unknown(sandbox, gw):
    *_, batch_id = gw.send("0912345678")
    sandbox.create_account("other", "pw", 10)
    assert gw.status(batch_id, uid="other", pwd="pw") == "0\r\n"


def test_status_json_form_with_mr(at_start, gw):
    response = gw.session.post(
        gw.url("SendParamSMS"),
        json={
            "UID": "demo",
            "PWD": "secret",
            "SB": "",
            "MSG": "Hi %field1%",
            "ST": "",
            "RETRYTIME": "",
            "RecipientDataList": [
                {
                    "Name": "王小明",
                    "Mobile": "0912345678",
                    "Email": "",
                    "SendTime": "",
                    "Param": "Ming",
                    "Mr": "rec-1",
                }
            ],
        },
    )
    batch_id = response.json()["Msg"].split(",")[-1]
    at_start.advance(61)
    data = json.loads(gw.status(batch_id, RESPFORMAT="1"))
    assert data["Count"] == 1
    record = data["Records"][0]
    assert record["Name"] == "王小明" and record["Mobile"] == "+886912345678" and record["MR"] == "rec-1"
    assert record["SendTime"] == "2026/03/01 09:00:00" and record["Cost"] == "1.0" and record["Status"] == 100
    assert re.fullmatch(r"2026/03/01 09:0\d:\d\d", record["ReceivedTime"])
    assert json.loads(gw.status("nope", RESPFORMAT="1")) == {"Count": 0, "Records": []}


# ---------------------------------------------------------------- sendSMS4FilterMessage


def test_filter_endpoint(at_start, gw):
    gw.send("0912345678", msg="promo")
    body = gw.call("sendSMS4FilterMessage", MSG="promo", DEST="0912345678,0922333444,+886912345678")
    _credit, sended, cost, unsend, batch_id, filtered = body.split(",")
    assert (sended, cost, unsend, filtered) == ("1", "1.0", "0", "0912345678/+886912345678")
    assert [m["mobile"] for m in at_start.messages(batch_id)] == ["+886922333444"]
    assert (
        gw.call("sendSMS4FilterMessage", MSG="promo", DEST="0922333444,0912345678")
        == "-98,0922333444/0912345678"
    )
    # another text is not a duplicate; nothing filtered gives an empty sixth field
    assert gw.call("sendSMS4FilterMessage", MSG="other", DEST="0912345678").endswith(",")
    at_start.advance(24 * 3600)
    assert gw.call("sendSMS4FilterMessage", MSG="promo", DEST="0912345678").split(",")[1] == "1"


def test_filter_ignores_unsent_messages(sandbox, gw):
    sandbox.create_account("poor", "pw", 0)
    gw.call("sendSMS", uid="poor", pwd="pw", MSG="promo", DEST="0912345678")  # 301, not sent
    body = gw.call("sendSMS4FilterMessage", uid="poor", pwd="pw", MSG="promo", DEST="0912345678")
    assert body.split(",")[3] == "1" and body.endswith(",")


# ---------------------------------------------------------------- SendParamSMS


def _param_sms(gw, **overrides):
    payload = {
        "UID": "demo",
        "PWD": "secret",
        "SB": "subject",
        "MSG": "%field1%您好，您的點數%field2%點%field3%",
        "ST": "",
        "RETRYTIME": "1440",
        "RecipientDataList": [
            {"Name": "A", "Mobile": "0912345678", "Email": "", "SendTime": "", "Param": "王|10", "Mr": "m1"},
            {
                "Name": "B",
                "Mobile": "+886922333444",
                "Email": "b@x",
                "SendTime": "20260301120000",
                "Param": "李|20|!",
                "Mr": "m2",
            },
        ],
    }
    payload.update(overrides)
    response = gw.session.post(
        gw.url("SendParamSMS"),
        data=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    return response.json()


def test_send_param_sms(at_start, gw):
    result = _param_sms(gw)
    assert result["Result"] is True and result["Status"] == "0"
    assert re.fullmatch(rf"99998\.00,2,2\.0,0,{UUID}", result["Msg"])
    messages = at_start.messages(result["Msg"].split(",")[-1])
    assert [(m["name"], m["text"], m["mr"]) for m in messages] == [
        ("A", "王您好，您的點數10點", "m1"),
        ("B", "李您好，您的點數20點!", "m2"),
    ]
    assert messages[1]["send_at"] == "2026-03-01T04:00:00.000+00:00"
    assert [m["status"] for m in messages] == [0, 300]


def test_send_param_sms_verbatim_texts(at_start, gw):
    result = _param_sms(gw, MSG="")
    messages = at_start.messages(result["Msg"].split(",")[-1])
    assert [m["text"] for m in messages] == ["王|10", "李|20|!"]


@pytest.mark.parametrize(
    ("overrides", "status", "msg"),
    [
        pytest.param({"PWD": "bad"}, "-101", "密碼錯誤", id="pwd"),
        pytest.param({"UID": "who"}, "-100", "帳號或密碼錯誤", id="uid"),
        pytest.param({"RecipientDataList": []}, "-27", "門號不得為空值", id="no-recipients"),
        pytest.param(
            {"RecipientDataList": [{"Mobile": "0912"}]}, "-306", "手機格式不符:0912", id="bad-number"
        ),
        pytest.param(
            {"MSG": "", "RecipientDataList": [{"Mobile": "0912345678", "Param": ""}]},
            "-24",
            "簡訊內容不得為空值",
            id="empty-text",
        ),
    ],
)
def test_send_param_sms_errors(sandbox, gw, overrides, status, msg):
    assert _param_sms(gw, **overrides) == {"Result": False, "Status": status, "Msg": msg}
    assert sandbox.batches() == []


def test_send_param_sms_invalid_json(gw):
    response = gw.session.post(
        gw.url("SendParamSMS"), data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.json() == {"Result": False, "Status": "-99", "Msg": "主機端發生不明錯誤"}


# ---------------------------------------------------------------- MMS


def _image(size: int) -> str:
    return base64.b64encode(b"\x89PNG" + b"\0" * (size - 4)).decode()


def test_send_mms_and_its_own_status_endpoint(at_start, gw):
    body = gw.call(
        "MMS/sendMMS",
        SB="新品",
        MSG="看圖",
        DEST="0912345678,+14155550123",
        ATTACHMENT=_image(1000),
        TYPE="PNG",
    )
    credit, sended, cost, unsend, batch_id = body.split(",")
    assert (credit, sended, cost, unsend) == ("99997.00", "1", "3.0", "0")
    assert gw.status(batch_id) == "0\r\n"  # the SMS endpoint does not list MMS batches
    at_start.advance(61)
    rows = [line.split("\t") for line in gw.status(batch_id, endpoint="MMS/getDeliveryStatus").split("\r\n")]
    assert rows[0] == ["2"]
    assert [(r[1], r[3], r[4], r[5]) for r in rows[1:]] == [
        ("+886912345678", "3.0", "700", ""),
        ("+14155550123", "0.0", "500", ""),
    ]


def test_large_mms_costs_five(gw):
    body = gw.call(
        "MMS/sendMMS", SB="s", MSG="m", DEST="0912345678", ATTACHMENT=_image(60 * 1024), TYPE="jpg"
    )
    assert body.split(",")[:4] == ["99995.00", "1", "5.0", "0"]


@pytest.mark.parametrize(
    ("form", "body"),
    [
        pytest.param(
            {"SB": "一二三四五六七八九十一二三四五六"}, "-303,主旨長度超過限制", id="subject-16-chinese"
        ),
        pytest.param({"SB": "a" * 96}, "-303,主旨長度超過限制", id="subject-96-ascii"),
        pytest.param({"ATTACHMENT": ""}, "-304,圖檔錯誤", id="no-image"),
        pytest.param({"ATTACHMENT": "not base64!"}, "-304,圖檔錯誤", id="bad-base64"),
        pytest.param({"TYPE": "bmp"}, "-305,圖檔格式錯誤", id="bad-type"),
        pytest.param({"ATTACHMENT": _image(300 * 1024 + 1)}, "-314,圖檔大小超過限制", id="too-big"),
    ],
)
def test_send_mms_errors(sandbox, gw, form, body):
    base = {
        "SB": "一二三四五六七八九十一二三四五",
        "MSG": "m",
        "DEST": "0912345678",
        "ATTACHMENT": _image(100),
        "TYPE": "gif",
    }
    assert gw.call("MMS/sendMMS", **{**base, **form}) == body
    assert sandbox.batches() == []


def test_mms_subject_limits_accept_edges(gw):
    for subject in ("一二三四五六七八九十一二三四五", "a" * 95):
        body = gw.call(
            "MMS/sendMMS", SB=subject, MSG="m", DEST="0912345678", ATTACHMENT=_image(100), TYPE="jpeg"
        )
        assert not body.startswith("-"), body


# ---------------------------------------------------------------- eraseBooking


def test_erase_booking_refunds(at_start, gw):
    st = (START + timedelta(hours=1)).strftime("%Y%m%d%H%M%S")
    credit, *_, batch_id = gw.send("0912345678,0922333444", msg="x" * 80, ST=st)
    assert credit == "99996.00"
    assert gw.call("eraseBooking", BID=batch_id) == "2,4.0"
    assert gw.call("getCredit") == "100000.00"
    assert [r[3:5] for r in gw.status_rows(batch_id)] == [["0.0", "303"]] * 2
    assert gw.call("eraseBooking", BID=batch_id) == "-4,簡訊已刪除或已發送"
    at_start.advance(7200)
    assert [r[4] for r in gw.status_rows(batch_id)] == ["303", "303"]


def test_erase_booking_unknown_is_empty(gw):
    response = gw.post("eraseBooking", BID="no-such-batch")
    assert (response.status_code, response.content) == (200, b"")


def test_erase_booking_after_send_time(at_start, gw):
    st = (START + timedelta(minutes=5)).strftime("%Y%m%d%H%M%S")
    *_, batch_id = gw.send("0912345678", ST=st)
    at_start.advance(300)
    assert gw.call("eraseBooking", BID=batch_id) == "-4,簡訊已刪除或已發送"


def test_mms_erase_booking(at_start, gw):
    st = (START + timedelta(hours=1)).strftime("%Y%m%d%H%M%S")
    body = gw.call(
        "MMS/sendMMS", SB="s", MSG="m", DEST="0912345678", ATTACHMENT=_image(100), TYPE="png", ST=st
    )
    batch_id = body.split(",")[-1]
    assert gw.post("eraseBooking", BID=batch_id).content == b""  # the SMS endpoint does not know MMS batches
    assert gw.call("MMS/eraseBooking", BID=batch_id) == "1,3.0"
    assert gw.call("getCredit") == "100000.00"


# ---------------------------------------------------------------- getReplyMessage


def test_reply_messages_paged_by_ten(at_start, gw):
    *_, batch_id = gw.send("0912345678")
    assert gw.call("getReplyMessage", BID=batch_id) == "0"
    for i in range(12):
        at_start.add_reply(
            batch_id, "0912345678", f"reply {i}\tand\r\nmore", at=(START + timedelta(minutes=i)).isoformat()
        )
    page1 = gw.call("getReplyMessage", BID=batch_id).split("\r\n")
    page2 = gw.call("getReplyMessage", BID=batch_id, PNO="2").split("\r\n")
    assert page1[0] == page2[0] == "12"
    assert len(page1) == 11 and len(page2) == 3
    assert page1[1] == "\t+886912345678\treply 0 and  more\t2026/03/01 09:00:00"
    assert page2[2] == "\t+886912345678\treply 11 and  more\t2026/03/01 09:11:00"


# ---------------------------------------------------------------- request log


def test_requests_are_recorded_verbatim(sandbox, gw):
    gw.call("getCredit")
    gw.session.get(gw.url("getCredit"), params={"UID": "demo", "PWD": "secret"})
    recorded = sandbox.requests()
    assert [r["method"] for r in recorded] == ["POST", "GET"]
    assert recorded[0]["body"] == "UID=demo&PWD=secret" and recorded[0]["endpoint"] == "getCredit"
    assert recorded[0]["path"] == "/tenant/API21/HTTP/getCredit.ashx"
    assert "secret" in recorded[1]["query_string"]
    assert ["content-type", "application/x-www-form-urlencoded"] in recorded[0]["headers"]
    sandbox.set_recording(False)
    gw.call("getCredit")
    assert len(sandbox.requests()) == 2


def test_batches_listing(sandbox, gw):
    *_, batch_id = gw.send("0912345678,0922333444")
    [batch] = sandbox.batches()
    assert batch["batch_id"] == batch_id and batch["count"] == 2 and batch["cost"] == "2.0"
    assert batch["endpoint"] == "sendSMS" and batch["kind"] == "sms"
