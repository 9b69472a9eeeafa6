"""``tests.metadata_db`` keeps a WAL database whole while this process has it open (see its docstring)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.metadata_db import copy_metadata_db, file_texts


def _open_wal(path: Path) -> sqlite3.Connection:
    live = sqlite3.connect(path, isolation_level=None)
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("CREATE TABLE t (x TEXT)")
    live.execute("INSERT INTO t VALUES ('first')")
    live.execute("SELECT count(*) FROM t").fetchall()
    return live


def _other_process(path: Path, statement: str) -> str:
    script = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "print(c.execute(sys.argv[2]).fetchall()); c.close()"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(path), statement], capture_output=True, text=True, check=True
    ).stdout.strip()


def _writes_stay_visible(path: Path, live: sqlite3.Connection) -> bool:
    _other_process(path, "INSERT INTO t VALUES ('second')")  # its close is the last but ours
    live.execute("INSERT INTO t VALUES ('third')")
    return "third" in _other_process(path, "SELECT x FROM t")


def test_the_hazard_is_real_a_raw_read_loses_this_process_writes(tmp_path):
    """The control: reading the file outside SQLite makes this process's next commit invisible."""
    path = tmp_path / "airflow.db"
    live = _open_wal(path)
    path.read_bytes()
    assert not _writes_stay_visible(path, live)
    live.close()


@pytest.mark.parametrize("step", ["copy", "scan"])
def test_copy_and_scan_leave_the_live_connection_whole(tmp_path, step):
    path = tmp_path / "airflow.db"
    live = _open_wal(path)
    if step == "copy":
        copy_metadata_db(path, tmp_path / "copy.db")
        with sqlite3.connect(tmp_path / "copy.db") as copy:  # the copy has what only the WAL held
            assert copy.execute("SELECT x FROM t").fetchall() == [("first",)]
    else:
        texts = file_texts([tmp_path])
        assert any("first" in text for text in texts.values())
    assert _writes_stay_visible(path, live)
    live.close()
