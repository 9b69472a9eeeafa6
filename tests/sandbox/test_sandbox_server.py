"""The server process, the client wrapper and the pytest fixtures."""

from __future__ import annotations

import json
import os
import socket

import pytest
import requests

from every8d.sandbox import SandboxServer


def test_server_starts_and_stops_cleanly():
    server = SandboxServer(uid="u1", pwd="p1", credit=12.5)
    with server:
        assert server.running
        port = int(server.root_url.rsplit(":", 1)[1])
        session = requests.Session()
        session.trust_env = False
        response = session.post(
            server.base_url + "/API21/HTTP/getCredit.ashx", data={"UID": "u1", "PWD": "p1"}
        )
        assert response.text == "12.50"
    assert server.process.returncode == 0, server.output()
    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_stop_with_an_idle_keep_alive_connection():
    session = requests.Session()
    session.trust_env = False
    with SandboxServer() as server:
        assert session.post(
            server.base_url + "/API21/HTTP/getCredit.ashx", data={"UID": "demo", "PWD": "secret"}
        ).ok
    assert server.process.returncode == 0


def test_fixture_url_has_prefix(sandbox_server, sandbox):
    assert sandbox.base_url == sandbox_server.root_url + "/tenant"
    assert sandbox.health()["ok"] is True


def test_connection_json(sandbox):
    assert json.loads(sandbox.connection_json()) == {
        "conn_type": "every8d",
        "host": sandbox.base_url,
        "login": "demo",
        "password": "secret",
    }


def test_conn_env_fixture(every8d_conn_env):
    assert json.loads(os.environ["AIRFLOW_CONN_EVERY8D_DEFAULT"])["host"] == every8d_conn_env.base_url


def test_reset_forgets_everything(sandbox, gw):
    sandbox.create_account("x", "y", 5)
    sandbox.inject_fault("*", "http500", count=-1)
    sandbox.advance(3600)
    sandbox.reset()
    assert gw.call("getCredit") == "100000.00"
    assert gw.call("getCredit", uid="x", pwd="y") == "-100,帳號或密碼錯誤"
    assert sandbox.faults() == [] and sandbox.batches() == []
    assert sandbox.clock()["frozen"] is True


def test_clock_control(sandbox):
    sandbox.set_clock("2026-03-01T01:00:00Z")
    assert sandbox.clock()["now"] == "2026-03-01T01:00:00.000+00:00"
    assert sandbox.advance(90)["now"] == "2026-03-01T01:01:30.000+00:00"
    sandbox.freeze(False)
    assert sandbox.clock()["frozen"] is False
    sandbox.freeze(True)
    assert sandbox.now().year == 2026


def test_accounts(sandbox):
    created = sandbox.create_account("acct", "pw", "12.3", international=True, status_columns=5)
    assert created["credit"] == "12.30" and created["international"] is True
    assert sandbox.account("acct")["status_columns"] == 5
    with pytest.raises(RuntimeError, match="404"):
        sandbox.account("nobody")


def test_messages_stream_is_compact_for_large_batches(sandbox, gw):
    dest = ",".join(f"09{i:08d}" for i in range(5000))
    gw.send(dest)
    messages = sandbox.messages()
    assert len(messages) == 5000
    assert messages[-1]["mobile"] == "+886900004999" and messages[-1]["points"] == "1.0"
