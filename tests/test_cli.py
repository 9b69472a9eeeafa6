"""The ``every8d`` command against the sandbox gateway over HTTP.

Happy paths run ``main()`` in-process (fast, output captured); bad input, wrong
passwords and the prompt run the installed command as a subprocess, because
exit codes, tracebacks and echoed secrets are properties of the process.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from every8d.cli import main

EVERY8D = str(Path(sys.executable).with_name("every8d"))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


@pytest.fixture
def cli_env(every8d_conn_env, monkeypatch):
    """The sandbox as ``every8d_default``, looked up the way the command looks it up."""
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")  # restored after the test
    return every8d_conn_env


def run(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EVERY8D, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def later(hours: int = 48) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def gateway_requests(sandbox, endpoint: str) -> list[dict]:
    return [r for r in sandbox.requests() if r["endpoint"] == endpoint]


# -- verbs, in-process ------------------------------------------------------------------------------


def test_credit(cli_env, capsys):
    assert main(["credit"]) == 0
    assert capsys.readouterr().out == "100000.00\n"
    [request] = gateway_requests(cli_env, "getCredit")
    assert request["method"] == "POST" and "PWD" not in request["query_string"]


def test_send_then_status_then_cancel_a_scheduled_batch(cli_env, capsys):
    sandbox = cli_env
    assert (
        main(
            [
                "send",
                "-m",
                "Maintenance tonight 22:00",
                "0912000011",
                "+886912000012,0912000013",
                "--at",
                later(),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    batch_id = out.split()[1].rstrip(":")
    assert out.startswith(f"batch {batch_id}: 3 sent, 3")
    [request] = gateway_requests(sandbox, "sendSMS")
    assert "DEST=%2B886912000011%2C%2B886912000012%2C%2B886912000013" in request["body"]

    assert main(["status", batch_id]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["MOBILE", "NAME", "STATUS", "MEANING", "SENT_AT", "POINTS", "RECEIVED_AT"]
    assert [line.split()[:3] for line in table[1:4]] == [
        ["+886912000011", "300", "scheduled"],
        ["+886912000012", "300", "scheduled"],
        ["+886912000013", "300", "scheduled"],
    ]
    assert table[4] == "3 message(s): 3 scheduled"

    assert main(["status", batch_id, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [m["status"] for m in document["messages"]] == [300, 300, 300]
    assert document["messages"][0]["sent_at"].endswith("Z")

    assert main(["cancel", batch_id]) == 0
    assert capsys.readouterr().out == f"batch {batch_id}: 3 message(s) cancelled, 3.0 point(s) refunded\n"
    assert Decimal(sandbox.account()["credit"]) == 100000

    assert main(["cancel", batch_id]) == 3  # already cancelled: the gateway says so
    assert "code -4: booking already deleted or already sent" in capsys.readouterr().err


def test_status_of_a_delivered_batch_and_its_replies(cli_env, capsys):
    sandbox = cli_env
    assert main(["send", "-m", "Reply YES to confirm", "0912000021", "0912000098"]) == 0
    batch_id = capsys.readouterr().out.split()[1].rstrip(":")
    sandbox.advance(3600)

    assert main(["status", batch_id]) == 0
    out = capsys.readouterr().out
    assert "100     delivered" in out and "103     no such mobile number" in out
    assert out.rstrip().endswith("2 message(s): 1 delivered, 1 failed")

    assert main(["replies", batch_id]) == 0
    assert capsys.readouterr().out == f"batch {batch_id}: no replies\n"
    sandbox.add_reply(batch_id, "0912000021", "YES please")
    assert main(["replies", batch_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["REPLIED_AT", "MOBILE", "NAME", "CONTENT"]
    assert lines[1].split()[1:] == ["+886912000021", "YES", "please"]
    assert main(["replies", batch_id, "--json"]) == 0
    [reply] = json.loads(capsys.readouterr().out)["replies"]
    assert (reply["mobile"], reply["content"]) == ("+886912000021", "YES please")


def test_mms_batches_use_the_mms_endpoints(cli_env, capsys):
    from every8d.hooks.every8d import Every8dHook

    sandbox = cli_env
    result = Every8dHook().send_mms(
        "poster",
        ["0912000031"],
        image=PNG,
        subject="poster",
        schedule_at=datetime.now(UTC) + timedelta(days=2),
    )
    assert main(["status", result.batch_id, "--mms"]) == 0
    assert "+886912000031" in capsys.readouterr().out
    assert main(["cancel", result.batch_id, "--mms"]) == 0
    assert "1 message(s) cancelled" in capsys.readouterr().out
    assert len(gateway_requests(sandbox, "mms/getDeliveryStatus")) == 1
    assert len(gateway_requests(sandbox, "mms/eraseBooking")) == 1


def test_dry_run_prices_each_number_and_sends_nothing(cli_env, capsys):
    message = "量" * 71  # two points in Taiwan, three times that abroad
    assert main(["send", "--dry-run", "-m", message, "0912000041", "+14155550100"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["+886912000041", "TW", "2"]
    assert out[2].split() == ["+14155550100", "international", "6"]
    assert out[3] == "total: 8 point(s) for 2 number(s), 71 character(s) each"
    assert cli_env.requests() == []


def test_a_send_whose_answer_is_lost_exits_4_and_is_not_retried(cli_env, capsys):
    cli_env.inject_fault("sendSMS", "drop")
    assert main(["send", "-m", "hello", "0912000051"]) == 4
    assert "outcome unknown" in capsys.readouterr().err
    assert len(gateway_requests(cli_env, "sendSMS")) == 1


def test_a_send_short_of_credit_exits_3(cli_env, capsys, monkeypatch):
    cli_env.create_account("poor", "pw", credit=1)
    monkeypatch.setenv("EVERY8D_PASSWORD", "pw")
    assert (
        main(["send", "-m", "hi", "0912000061", "0912000062", "--url", cli_env.base_url, "--uid", "poor"])
        == 3
    )
    captured = capsys.readouterr()
    assert "1 sent" in captured.out and "1 message(s) not sent: not enough credit" in captured.err


# -- the process: exit codes, no tracebacks, no echoed secrets -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param([], "the following arguments are required: VERB", id="no-verb"),
        pytest.param(["frobnicate"], "invalid choice", id="unknown-verb"),
        pytest.param(
            ["send", "0912000001"], "the following arguments are required: -m/--message", id="no-message"
        ),
        pytest.param(["send", "-m", "  ", "0912000001"], "the message is empty", id="empty-message"),
        pytest.param(
            ["send", "-m", "hi", "0912000001", "12345"],
            "number 2 is not a valid phone number",
            id="bad-number",
        ),
        pytest.param(
            ["send", "-m", "hi", "0912000001", "--at", "tomorrow"], "--at must be an ISO time", id="bad-time"
        ),
        pytest.param(["status"], "the following arguments are required: BATCH_ID", id="no-batch"),
        pytest.param(
            ["credit", "--url", "http://127.0.0.1:9"], "--url and --uid go together", id="url-without-uid"
        ),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args, expected):
    if args[:1] == ["send"]:
        args = [*args, "--dry-run"]  # should validation ever let one through, nothing is sent
    result = run(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_password_typed_as_an_argument_is_refused_and_not_repeated():
    result = run("credit", "--password", "s3cret-typed-here")
    assert result.returncode == 2
    assert "s3cret-typed-here" not in result.stderr + result.stdout
    assert "set EVERY8D_PASSWORD" in result.stderr


@pytest.mark.parametrize("how", ["url", "connection"])
def test_a_wrong_password_exits_3_with_the_gateway_code_and_no_secret(sandbox, how):
    wrong = "Wr0ng-passw0rd-zz"
    if how == "url":
        result = run(
            "credit", "--url", sandbox.base_url, "--uid", sandbox.uid, env={"EVERY8D_PASSWORD": wrong}
        )
    else:
        conn = json.dumps(
            {"conn_type": "every8d", "host": sandbox.base_url, "login": sandbox.uid, "password": wrong}
        )
        result = run("credit", "--conn-id", "ops", env={"AIRFLOW_CONN_OPS": conn})
    assert result.returncode == 3
    assert result.stderr.strip().endswith("the gateway refused (getCredit.ashx): code -101: bad password")
    assert wrong not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_without_a_password_or_a_terminal_it_exits_2(sandbox):
    result = run("credit", "--url", sandbox.base_url, "--uid", "demo", env={"EVERY8D_PASSWORD": ""})
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "every8d: no password: set EVERY8D_PASSWORD (no terminal to prompt on)",
    )
    assert sandbox.requests() == []


def test_an_unknown_connection_exits_2(cli_env, capsys):
    assert main(["credit", "--conn-id", "no_such_conn"]) == 2
    assert (
        "connection 'no_such_conn' is not defined: set AIRFLOW_CONN_NO_SUCH_CONN" in capsys.readouterr().err
    )


def test_the_password_prompt_does_not_echo(sandbox):
    """Run under a pseudo-terminal, type the password, and read back everything the terminal showed."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "EVERY8D_PASSWORD"}
    process = subprocess.Popen(
        [EVERY8D, "credit", "--url", sandbox.base_url, "--uid", sandbox.uid],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        start_new_session=True,
    )
    os.close(secondary)
    shown, typed = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the command exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if not typed and b"EVERY8D password:" in shown:
                os.write(primary, sandbox.pwd.encode() + b"\n")
                typed = True
        elif process.poll() is not None:
            break
    os.close(primary)
    assert process.wait(30) == 0
    assert b"100000.00" in shown
    assert sandbox.pwd.encode() not in shown


def test_a_connection_in_the_metadata_db_is_found(airflow_home, sandbox):
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(
            Connection(
                conn_id="every8d_ops",
                conn_type="every8d",
                host=sandbox.base_url,
                login=sandbox.uid,
                password=sandbox.pwd,
            )
        )
    try:
        result = run("credit", "--conn-id", "every8d_ops")  # same AIRFLOW_HOME, no AIRFLOW_CONN_* variable
        assert (result.returncode, result.stdout) == (0, "100000.00\n"), result.stderr[-2000:]
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "every8d_ops").delete()


def test_python_dash_m_and_the_sandbox_verb(tmp_path):
    assert (
        "credit"
        in subprocess.run(
            [sys.executable, "-m", "every8d", "--help"], capture_output=True, text=True, timeout=60
        ).stdout
    )
    process = subprocess.Popen(
        [EVERY8D, "sandbox", "--port", "0", "--uid", "ops", "--pwd", "pw"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("EVERY8D sandbox listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert requests.get(f"{url}/_sandbox/accounts/ops", timeout=10).json()["uid"] == "ops"
    finally:
        process.terminate()
        process.wait(20)
