"""Recorded means on disk: 200 only after the journal commit, 503 when it cannot be written."""

from __future__ import annotations

import http.client
import ipaddress
import json
import signal
import sqlite3
import threading
import time
from urllib.parse import urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from bench.loadgen import make_pushes, run_load
from every8d.callbacks.app import create_app
from every8d.callbacks.settings import ENV_TOKEN, ENV_TOKEN_FILE, PushSettings

TOKEN = "Zq8-vT3nW_pL6yR1xK9mB4cF7hJ2dS5g"
PUSH = {"BatchID": "b-1", "RM": "+886912345678", "RT": "20260301090000", "STATUS": "100", "SM": "", "MR": "1"}


def test_unconfigured_app_answers_503_and_starts_anyway(monkeypatch):
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    monkeypatch.delenv(ENV_TOKEN_FILE, raising=False)
    with TestClient(create_app()) as client:
        response = client.get("/push", params={"token": TOKEN, **PUSH})
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.json()["error"] == "not_configured" and ENV_TOKEN in response.json()["detail"]
        assert client.get("/health").json() == {"service": "every8d-pushes", "configured": False}


def test_a_placeholder_token_in_the_environment_is_not_configured(monkeypatch):
    monkeypatch.setenv(ENV_TOKEN, "changethis")
    with TestClient(create_app()) as client:
        body = client.get("/push", params={"token": "changethis", **PUSH}).json()
    assert body["error"] == "not_configured" and "changethis" not in body["detail"]


@pytest.mark.parametrize(
    ("client_host", "allowed"),
    [
        ("203.0.113.7", True),
        ("198.51.100.1", False),
        ("2001:db8::1", True),
        ("::ffff:203.0.113.9", True),
        ("testclient", False),
    ],
)
def test_client_allowlist(tmp_path, client_host, allowed):
    networks = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8::/32"))
    settings = PushSettings(tokens=(TOKEN,), journal_path=tmp_path / "j.sqlite3", allowed_networks=networks)
    with TestClient(create_app(settings), client=(client_host, 5000)) as client:
        response = client.get("/push", params={"token": TOKEN, **PUSH})
    if allowed:
        assert response.status_code == 200 and response.json()["status"] == "recorded"
    else:
        assert response.status_code == 403 and response.json()["error"] == "forbidden"
        assert not (tmp_path / "j.sqlite3").exists()  # refused before anything was opened


def test_every_200_survives_a_kill(fresh_receiver):
    """SIGKILL right after the answers: everything answered 200 is in the journal."""
    pushes, keys = make_pushes(600, 0.0, seed=11)
    result = run_load(fresh_receiver.push_url, fresh_receiver.token, pushes, concurrency=16)
    fresh_receiver.server.process.send_signal(signal.SIGKILL)
    fresh_receiver.server.process.wait(10)
    assert result.statuses == {200: 600}
    assert {r["event_key"] for r in fresh_receiver.rows()} == keys


def test_503_while_the_journal_cannot_be_written_then_recovery(fresh_receiver):
    assert fresh_receiver.push(**PUSH)[0] == 200  # the journal exists
    blocker = sqlite3.connect(fresh_receiver.journal_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
    try:
        status, body, headers = fresh_receiver.push(**{**PUSH, "STATUS": "101"})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (status, body["error"]) == (503, "not_recorded") and headers["retry-after"]
    assert [r["status"] for r in fresh_receiver.rows("b-1")] == [100]
    status, body, _ = fresh_receiver.push(**{**PUSH, "STATUS": "101"})  # the gateway's retry
    assert (status, body["duplicate"]) == (200, False)
    assert [r["status"] for r in fresh_receiver.rows("b-1")] == [100, 101]


def test_shutdown_writes_what_is_pending(fresh_receiver):
    """SIGTERM while pushes are in flight: each one answered 200 is in the journal."""
    pushes, _ = make_pushes(3000, 0.0, seed=12)
    answered: list[str] = []
    url = fresh_receiver.push_url

    def load() -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        for push in pushes:
            try:
                conn.request("GET", f"{parts.path}?{urlencode({'token': fresh_receiver.token, **push})}")
                response = conn.getresponse()
                body = response.read()
            except OSError:
                return
            if response.status == 200:
                answered.append(json.loads(body)["event_key"])

    thread = threading.Thread(target=load)
    thread.start()
    while len(answered) < 200:
        time.sleep(0.01)
    assert fresh_receiver.server.stop() == 0
    thread.join(30)
    assert 200 <= len(answered) < 3000
    assert set(answered) <= {r["event_key"] for r in fresh_receiver.rows()}
