"""The receiver as an Airflow plugin, served by a real ``airflow api-server`` on loopback.

The api-server answers unknown paths with its UI page and HTTP 200, so every
check here reads the body: a JSON answer of ours, not the UI.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from urllib.parse import urlencode

import pytest
import requests

from every8d.callbacks.journal import Journal


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def api_server(airflow_home, tmp_path):
    token = secrets.token_urlsafe(32)
    journal = tmp_path / "journal.sqlite3"
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__EVERY8D__PUSH_TOKEN": token,
        "AIRFLOW__EVERY8D__PUSH_JOURNAL": str(journal),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow",
            "api-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    output: deque[str] = deque(maxlen=2000)
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, "api-server exited:\n" + "\n".join(output)
        try:
            response = session.get(f"{base}/every8d/health", timeout=5)
            if response.headers.get("content-type", "").startswith("application/json"):
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "api-server did not come up:\n" + "\n".join(output)
        time.sleep(0.5)
    yield base, token, journal, session, output
    session.close()
    os.killpg(process.pid, signal.SIGTERM)  # the server and its uvicorn worker
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail("api-server did not stop on SIGTERM")


def test_the_plugin_answers_pushes_under_every8d(api_server):
    base, token, journal, session, output = api_server
    push = {
        "BatchID": "api-1",
        "RM": "0912345678",
        "RT": "20260301090000",
        "STATUS": "100",
        "SM": "",
        "MR": "7",
        "USERID": "demo",
        "CHARGE": "1.0",
    }

    response = session.get(f"{base}/every8d/push?{urlencode({'token': token, **push})}", timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "recorded" and body["duplicate"] is False and len(body["event_key"]) == 32

    refused = session.get(f"{base}/every8d/push?{urlencode({'token': 'x' * 43, **push})}", timeout=30)
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"

    ui = session.get(f"{base}/every8d-not-ours/push", timeout=30)
    assert ui.status_code == 200 and not ui.headers["content-type"].startswith(
        "application/json"
    )  # the UI page

    with Journal(journal) as j:
        assert [row[2:6] for row in j.read_after(0, 10)] == [("api-1", "+886912345678", "7", 100)]
    log = "\n".join(output)
    assert "path=/every8d/push" in log and "BatchID=api-1" in log  # the access log did log the push...
    assert token not in log and "0912345678" not in log  # ...without its token or phone number
