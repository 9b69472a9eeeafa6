"""Status and reply pushes: retries, duplicates, reordering, replies."""

from __future__ import annotations

import socket
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

START = datetime(2026, 3, 1, 9, 0, 0, tzinfo=timezone(timedelta(hours=8)))
KEYS = {"BatchID", "RM", "RT", "STATUS", "SM", "MR", "USERID", "ST", "NAME", "CHARGE", "MSGID", "token"}


def test_status_pushes_follow_the_clock(sandbox, gw, receiver):
    sandbox.set_clock(START)
    sandbox.set_push(receiver.url)
    *_, batch_id = gw.send("0912345678,0912345699")
    assert sandbox.drain_pushes()
    assert sorted((p["RM"], p["STATUS"]) for p in receiver.received) == [
        ("+886912345678", "0"),
        ("+886912345699", "0"),
    ]
    first = receiver.received[0]
    assert set(first) == KEYS  # the receiver URL's own query is kept
    assert first["BatchID"] == batch_id and first["USERID"] == "demo" and first["RT"] == "20260301090000"
    assert first["token"] == "abc" and first["CHARGE"] == "1.0" and first["SM"] == ""
    sandbox.advance(60)
    assert sandbox.drain_pushes()
    finals = {p["RM"]: p["STATUS"] for p in receiver.received[2:]}
    assert finals == {"+886912345678": "100", "+886912345699": "107"}
    assert len(receiver.received) == 4
    sandbox.advance(3600)
    assert sandbox.drain_pushes() and len(receiver.received) == 4  # nothing changes any more


def test_push_retries_up_to_ten_attempts(sandbox, gw, receiver):
    receiver.fail_first = 3
    sandbox.set_push(receiver.url, retry_delay=0.01)
    gw.send("0912345678")
    assert sandbox.drain_pushes()
    log = sandbox.pushes()
    assert [(e["attempt"], e["status"]) for e in log] == [(1, 500), (2, 500), (3, 500), (4, 200)]
    assert len({e["push_id"] for e in log}) == 1


def test_push_gives_up_after_ten(sandbox, gw, receiver):
    receiver.fail_first = 100
    sandbox.set_push(receiver.url, retry_delay=0.005)
    gw.send("0912345678")
    assert sandbox.drain_pushes()
    assert [e["attempt"] for e in sandbox.pushes()] == list(range(1, 11))
    assert len(receiver.received) == 10


def test_push_connection_errors_are_logged_and_retried(sandbox, gw):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sandbox.set_push(f"http://127.0.0.1:{port}/nothing-listens", retry_delay=0.005, attempts=3)
    gw.send("0912345678")
    assert sandbox.drain_pushes()
    log = sandbox.pushes()
    assert [e["attempt"] for e in log] == [1, 2, 3]
    assert all(e["status"] is None and "Connect" in e["error"] for e in log)


def test_duplicates(sandbox, gw, receiver):
    sandbox.set_push(receiver.url, duplicates=2)
    gw.send("0912345678,0922333444")
    assert sandbox.drain_pushes()
    assert Counter(p["RM"] for p in receiver.received) == {"+886912345678": 3, "+886922333444": 3}


def test_reorder_shuffles_within_a_tick(sandbox, gw, receiver):
    sandbox.set_push(receiver.url, reorder=True, concurrency=1)
    numbers = [f"09110000{i:02d}" for i in range(40)]
    gw.send(",".join(numbers))
    assert sandbox.drain_pushes()
    got = [p["RM"] for p in receiver.received]
    expected = ["+886" + n[1:] for n in numbers]
    assert sorted(got) == sorted(expected) and got != expected


def test_in_order_without_reorder(sandbox, gw, receiver):
    sandbox.set_push(receiver.url, concurrency=1)
    numbers = [f"09110000{i:02d}" for i in range(20)]
    gw.send(",".join(numbers))
    assert sandbox.drain_pushes()
    assert [p["RM"] for p in receiver.received] == ["+886" + n[1:] for n in numbers]


def test_reply_and_cancel_pushes(sandbox, gw, receiver):
    sandbox.set_clock(START)
    sandbox.set_push(receiver.url)
    st = (START + timedelta(hours=1)).strftime("%Y%m%d%H%M%S")
    *_, scheduled = gw.send("0912345678", ST=st)
    *_, sent = gw.send("0922333444")
    sandbox.add_reply(sent, "+886922333444", "好的 收到", at=(START + timedelta(seconds=30)).isoformat())
    gw.call("eraseBooking", BID=scheduled)
    assert sandbox.drain_pushes()
    by_status = {p["STATUS"]: p for p in receiver.received}
    assert set(by_status) == {"0", "999", "303"}
    assert by_status["999"]["SM"] == "好的 收到" and by_status["999"]["RT"] == "20260301090030"
    assert by_status["303"]["BatchID"] == scheduled
    sandbox.advance(7200)
    assert sandbox.drain_pushes()
    assert [p["STATUS"] for p in receiver.received].count("303") == 1  # the cancelled one never moves again


def test_other_accounts_push_elsewhere(sandbox, gw, receiver):
    sandbox.create_account("quiet", "pw", 10)
    sandbox.set_push(receiver.url)
    gw.call("sendSMS", uid="quiet", pwd="pw", MSG="x", DEST="0912345678")
    assert sandbox.drain_pushes()
    assert receiver.received == []


def test_background_tick_pushes_without_drain(sandbox, gw, receiver):
    sandbox.set_push(receiver.url)
    gw.send("0912345678")
    deadline = time.monotonic() + 5
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.received and receiver.received[0]["STATUS"] == "0"
