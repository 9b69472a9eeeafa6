"""Push receivers for the callbacks tests: real uvicorn subprocesses on free loopback ports.

A receiver costs about a second to start, so one serves a whole module;
tests tell their pushes apart by batch id and read the receiver's journal
(the SQLite file itself) to see what was recorded.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from every8d.callbacks.journal import Journal
from every8d.callbacks.server import PushServer
from every8d.callbacks.settings import ENV_JOURNAL, ENV_TOKEN


@dataclass
class Receiver:
    """A running receiver: where it is, its token, its journal."""

    server: PushServer
    token: str
    journal_path: Path

    @property
    def push_url(self) -> str:
        return self.server.base_url + "/push"

    @property
    def registered_url(self) -> str:
        """The URL one registers with the gateway (token in the query)."""
        return f"{self.push_url}?{urlencode({'token': self.token})}"

    def get(self, query: bytes | str, path: str = "/push", method: str = "GET") -> tuple[int, dict, dict]:
        """Send a raw request (bytes go out exactly as given); status, JSON body, headers."""
        parts = urlsplit(self.server.base_url)
        raw = query.encode() if isinstance(query, str) else query
        target = (parts.path + path).encode() + (b"?" + raw if raw else b"")
        request = (
            method.encode() + b" " + target + b" HTTP/1.1\r\nHost: loopback\r\nConnection: close\r\n\r\n"
        )
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
            sock.sendall(request)  # by hand: http.client would refuse the raw non-ASCII bytes some tests send
            response = http.client.HTTPResponse(sock)
            response.begin()
            body = response.read()
            headers = dict(response.getheaders())
            if not headers.get("content-type", "").startswith("application/json"):
                return response.status, {"text": body.decode("utf-8", "replace")}, headers
            return response.status, json.loads(body), headers

    def push(self, **params: str) -> tuple[int, dict, dict]:
        return self.get(urlencode({"token": self.token, **params}))

    def rows(self, batch_id: str | None = None) -> list[dict]:
        """Journal rows (all, or one batch's), oldest first."""
        with Journal(self.journal_path) as journal:
            sql = "SELECT * FROM push_journal" + (" WHERE batch_id = ?" if batch_id else "") + " ORDER BY seq"
            cursor = journal.conn.execute(sql, (batch_id,) if batch_id else ())
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def count(self) -> int:
        with Journal(self.journal_path) as journal:
            return journal.count()


def start_receiver(directory: Path, **env: str) -> Receiver:
    token = secrets.token_urlsafe(32)
    journal_path = directory / "push-journal.sqlite3"
    server = PushServer({ENV_TOKEN: token, ENV_JOURNAL: str(journal_path), **env}).start()
    return Receiver(server, token, journal_path)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory) -> Iterator[Receiver]:
    """A push receiver shared by a test module."""
    running = start_receiver(tmp_path_factory.mktemp("receiver"))
    yield running
    assert running.server.stop() == 0, running.server.output()


@pytest.fixture
def fresh_receiver(tmp_path) -> Iterator[Receiver]:
    """A push receiver of one's own (for tests that kill it or lock its journal)."""
    running = start_receiver(
        tmp_path, AIRFLOW__EVERY8D__PUSH_BUSY_TIMEOUT="0.2", AIRFLOW__EVERY8D__PUSH_RECORD_TIMEOUT="2"
    )
    yield running
    running.server.stop()


@pytest.fixture
def batch_id(request) -> str:
    """A batch id unique to the test."""
    return "t-" + secrets.token_hex(6)


PG_CONN_ID = "every8d_callbacks_test_warehouse"


@pytest.fixture
def duckdb_target(tmp_path) -> str:
    return f"duckdb://{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture
def postgres_target(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``airflow://...`` of the session's Postgres test database, emptied of the provider's tables."""
    from every8d.warehouse import open_warehouse
    from every8d.warehouse.tables import TRACKING_TABLES

    monkeypatch.setenv(f"AIRFLOW_CONN_{PG_CONN_ID.upper()}", postgres_database)
    target = f"airflow://{PG_CONN_ID}"
    with open_warehouse(target) as warehouse:
        for spec in TRACKING_TABLES:
            warehouse.execute(f"DROP TABLE IF EXISTS {spec.name} CASCADE")
    return target


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_target(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_target")
