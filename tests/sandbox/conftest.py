"""Helpers for the sandbox's own tests: a raw gateway caller and a push receiver.

The fixtures ``sandbox_server`` / ``sandbox`` come from
``every8d.sandbox.pytest_plugin`` (root conftest, or ``-p every8d.sandbox.pytest_plugin``).
Gateway calls here are hand-built on purpose: these tests pin the wire
format the client's parsers will be tested against.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

UID, PWD = "demo", "secret"


class Gateway:
    """Posts form-encoded requests to the sandbox's gateway endpoints."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False

    def url(self, endpoint: str) -> str:
        return f"{self.base_url}/API21/HTTP/{endpoint}.ashx"

    def post(self, endpoint: str, *, uid: str = UID, pwd: str = PWD, timeout=10, **form) -> requests.Response:
        response = self.session.post(
            self.url(endpoint), data={"UID": uid, "PWD": pwd, **form}, timeout=timeout
        )
        assert response.headers["content-type"].startswith(("text/plain; charset=utf-8", "application/json"))
        return response

    def call(self, endpoint: str, **form) -> str:
        response = self.post(endpoint, **form)
        assert response.status_code == 200
        return response.text

    def send(self, dest: str, msg: str = "hello", **form) -> list[str]:
        """sendSMS; returns the comma-separated fields of a success body."""
        body = self.call("sendSMS", MSG=msg, DEST=dest, **form)
        assert not body.startswith("-"), body
        return body.split(",")

    def status(self, batch_id: str, endpoint: str = "getDeliveryStatus", **form) -> str:
        return self.call(endpoint, BID=batch_id, **form)

    def status_rows(self, batch_id: str, **form) -> list[list[str]]:
        lines = self.status(batch_id, **form).split("\r\n")
        return [line.split("\t") for line in lines[1:] if line]


@pytest.fixture
def gw(sandbox) -> Gateway:
    gateway = Gateway(sandbox.base_url)
    yield gateway
    gateway.session.close()


class PushReceiver:
    """A tiny threaded HTTP server recording pushes; fails the first ``fail_first`` requests."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []  # every request, failed ones too
        self.fail_first = 0
        self.fail_status = 500
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
                with receiver._lock:
                    receiver.received.append(params)
                    failing = len(receiver.received) <= receiver.fail_first
                body = b"FAIL" if failing else b"OK"
                self.send_response(receiver.fail_status if failing else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/every8d/push?token=abc"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = PushReceiver()
    yield r
    r.close()
