"""pytest fixtures for a real sandbox gateway over loopback HTTP.

One server process per test session (starting one costs ~0.5 s); each test
gets it reset, with a frozen clock, so statuses only move when the test calls
``sandbox.advance(...)`` and no test ever sleeps.  The base URL carries a path
prefix (``/tenant``) so every test also proves prefixes work.

Enable with ``pytest_plugins = ["every8d.sandbox.pytest_plugin"]`` in the root
``conftest.py`` (or ``-p every8d.sandbox.pytest_plugin``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from every8d.sandbox.client import SandboxClient
from every8d.sandbox.server import SandboxServer

SANDBOX_PREFIX = "/tenant"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """A sandbox gateway subprocess for the whole session (frozen clock, ``/tenant`` prefix)."""
    server = SandboxServer(frozen_clock=True, prefix=SANDBOX_PREFIX)
    with server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxClient]:
    """A freshly reset sandbox: default account ``demo``/``secret`` with 100000 points."""
    client = sandbox_server.client()
    client.reset()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def every8d_conn_env(sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch) -> SandboxClient:
    """``AIRFLOW_CONN_EVERY8D_DEFAULT`` pointing at the reset sandbox."""
    monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_DEFAULT", sandbox.connection_json())
    return sandbox
