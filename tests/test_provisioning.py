"""`make test` provisions what the suite needs: the embedded PostgreSQL fallback, for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import provisioning
import psycopg2
import pytest

REPO = Path(__file__).resolve().parent.parent


def test_embedded_postgres_serves_sql_on_loopback_tcp():
    server = provisioning.start_embedded_postgres()
    try:
        assert provisioning.answers("127.0.0.1", server.port)
        with psycopg2.connect(server.dsn) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2); SELECT sum(x) FROM t")
            assert cursor.fetchone() == (3,)
    finally:
        server.stop()
    assert not provisioning.answers("127.0.0.1", server.port)
    assert not server.root.exists()


def test_the_suite_falls_back_to_an_embedded_server_when_no_postgres_answers(tmp_path):
    """Point the suite at a port where nothing listens: its Postgres tests still pass, on the embedded
    server."""
    dead = provisioning.free_port()
    assert not provisioning.answers("127.0.0.1", dead)
    env = {**os.environ, "EVERY8D_TEST_POSTGRES": f"postgresql://postgres@127.0.0.1:{dead}/postgres"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-s",
            "tests/campaign/test_campaign_audience.py::test_sql_audience_streams_from_postgres",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"no PostgreSQL at 127.0.0.1:{dead}: using an embedded server" in output
    assert "1 passed" in output


def test_a_missing_service_is_named_in_one_sentence(monkeypatch):
    monkeypatch.setattr(provisioning, "MARIADB_ADDRESS", ("127.0.0.1", provisioning.free_port()))
    with pytest.raises(provisioning.MissingService, match=r"^No MariaDB server answers at 127\.0\.0\.1:\d+"):
        provisioning.ensure_mariadb()


def test_missing_chromium_that_may_not_be_installed_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(provisioning, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(provisioning, "_may_install_packages", lambda: None)
    with pytest.raises(
        provisioning.MissingService, match=r"^The browser tests need Chromium and ChromeDriver"
    ):
        provisioning.ensure_chromium()
