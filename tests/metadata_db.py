"""The session's Airflow metadata DB (SQLite in WAL mode) is only ever read through SQLite.

Airflow opens its SQLite DB in WAL mode, and every connection of this process
holds POSIX locks on it.  POSIX locks belong to the process, not to the file
descriptor: opening the file any other way (``shutil.copy``, ``read_bytes``)
and closing it drops all of them.  The next process to close its last
connection then finds the file unlocked, checkpoints, and deletes the WAL and
its index while this process still writes to them: its later commits vanish
for every other process and the file ends "malformed" (SQLite's "How To
Corrupt An SQLite Database File", 2.2).  So a copy goes through SQLite's
backup API (a consistent snapshot, WAL included), and a raw scan of files that
a live SQLite or DuckDB may hold open runs in a child process, whose opens and
closes cannot touch this process's locks.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path


def copy_metadata_db(source: Path, target: Path) -> None:
    """Copy the SQLite DB ``source`` to ``target`` through SQLite: whole, WAL included, locks kept."""
    with sqlite3.connect(source) as reader, sqlite3.connect(target) as writer:
        reader.backup(writer)
    reader.close()
    writer.close()


_READ_FILES = """
import json, sys
from pathlib import Path
import pyarrow.parquet as pq
texts = {}
for root in map(Path, json.loads(sys.argv[1])):
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            texts[str(path)] = json.dumps(pq.read_table(path).to_pylist(), default=str)
        else:
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
json.dump(texts, sys.stdout)
"""


def file_texts(roots: list[Path]) -> dict[str, str]:
    """Every file under ``roots`` as text (Parquet as rows, databases as raw bytes), read by a child."""
    done = subprocess.run(
        [sys.executable, "-c", _READ_FILES, json.dumps([str(root) for root in roots])],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout)
