"""The append-only push journal: a local SQLite file in WAL mode, fsync'ed at every commit.

A push is answered 200 only once its row is on disk here, so a crash, a
locked warehouse or a slow network never loses one.  The journal is local and
small-write friendly (one fsync per group of pushes), unlike a warehouse; the
flush moves rows on later.  How far it got is kept in the warehouse, under the
journal's own random ``journal_id``, in the transaction that writes the rows;
``flushed_seq`` here is a copy of it, for pruning.
Rows are deduplicated on the event key, so retried pushes add nothing.

A :class:`Journal` object is not thread-safe: the recorder's writer thread
owns one, the flush opens another (several processes may share the file).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from every8d.callbacks.events import PushEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS push_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so the flush watermark only moves forward
    event_key TEXT NOT NULL UNIQUE,
    batch_id TEXT NOT NULL,
    mobile TEXT NOT NULL,
    mr TEXT NOT NULL,
    status INTEGER NOT NULL,
    rt TEXT NOT NULL,
    reported_at_us INTEGER NOT NULL,
    received_at_us INTEGER NOT NULL,
    sm TEXT NOT NULL,
    user_id TEXT NOT NULL,
    extra TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS flush_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    flushed_seq INTEGER NOT NULL,
    flushed_at_us INTEGER
);
INSERT OR IGNORE INTO flush_state (id, flushed_seq, flushed_at_us) VALUES (1, 0, NULL);
CREATE TABLE IF NOT EXISTS journal_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    journal_id TEXT NOT NULL  -- names this journal's watermark in the warehouse
);
INSERT OR IGNORE INTO journal_identity (id, journal_id) VALUES (1, lower(hex(randomblob(16))));
"""

_INSERT = (
    "INSERT OR IGNORE INTO push_journal (event_key, batch_id, mobile, mr, status, rt, reported_at_us, "
    "received_at_us, sm, user_id, extra) VALUES "
)
_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_CHUNK = 500  # rows per statement: 11 parameters each stays far below SQLite's variable limit

#: Columns :meth:`Journal.read_after` returns, in order.
ROW_COLUMNS = (
    "seq",
    "event_key",
    "batch_id",
    "mobile",
    "mr",
    "status",
    "rt",
    "reported_at_us",
    "received_at_us",
    "sm",
)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch (UTC) of an aware datetime, exactly (no float rounding)."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def journal_row(event: PushEvent) -> tuple:
    """The journal row of ``event``, event key first."""
    return (
        event.key,
        event.batch_id,
        event.mobile,
        event.mr,
        event.status,
        event.rt,
        to_micros(event.reported_at),
        to_micros(event.received_at),
        event.text,
        event.user_id,
        json.dumps(event.extra, ensure_ascii=False, separators=(",", ":")),
    )


class Journal:
    """One SQLite journal file.

    :param path: the file (its folder is created, private to this user).
    :param busy_timeout: seconds to wait for another connection's write lock.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 2.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def open(self) -> Journal:
        """Create or open the file: WAL, ``synchronous=FULL`` (commit = fsync), the tables."""
        if self._conn is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():  # phone numbers and replies inside: readable by the owner only
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return self

    @property
    def conn(self) -> sqlite3.Connection:
        return self.open()._conn  # type: ignore[return-value]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the receiver's side ---------------------------------------------------------

    def append(self, events: Sequence[PushEvent]) -> list[bool]:
        """Write ``events`` in one durable transaction; per event, whether it was new (not a duplicate)."""
        return self.append_rows([journal_row(event) for event in events])

    def append_rows(self, rows: Sequence[tuple]) -> list[bool]:
        """:meth:`append` for rows made by :func:`journal_row` (the recorder makes them on its loop).

        Few SQLite calls on purpose: each one releases the GIL, and getting it
        back from a busy event loop can take a whole switch interval (5 ms).
        So: one SELECT for keys already there, one multi-row INSERT, one COMMIT.
        """
        keys = [row[0] for row in rows]
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            known: set[str] = set()
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                known.update(
                    k
                    for (k,) in conn.execute(
                        f"SELECT event_key FROM push_journal WHERE event_key IN ({_marks(len(chunk))})",
                        chunk,
                    )
                )
            new_rows, flags = [], []
            for key, row in zip(keys, rows, strict=True):
                flags.append(key not in known)
                if key not in known:
                    known.add(key)  # a second copy in the same group is a duplicate too
                    new_rows.append(row)
            for start in range(0, len(new_rows), _CHUNK):
                chunk = new_rows[start : start + _CHUNK]
                conn.execute(_INSERT + ", ".join([_VALUES] * len(chunk)), [v for row in chunk for v in row])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return flags

    # -- the flush's side -------------------------------------------------------------

    def journal_id(self) -> str:
        """This journal's id (random, made with the file): names its watermark in the warehouse."""
        return str(self.conn.execute("SELECT journal_id FROM journal_identity WHERE id = 1").fetchone()[0])

    def flushed_seq(self) -> int:
        return int(self.conn.execute("SELECT flushed_seq FROM flush_state WHERE id = 1").fetchone()[0])

    def read_after(self, seq: int, limit: int) -> list[tuple]:
        """Up to ``limit`` rows with a sequence number above ``seq``, oldest first (:data:`ROW_COLUMNS`)."""
        return self.conn.execute(
            f"SELECT {', '.join(ROW_COLUMNS)} FROM push_journal WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()

    def mark_flushed(self, seq: int, now: datetime | None = None) -> None:
        """Move the local copy of the watermark forward to ``seq`` (never back), once the warehouse has it."""
        stamp = to_micros(now or datetime.now(UTC))
        self.conn.execute(
            "UPDATE flush_state SET flushed_seq = max(flushed_seq, ?), flushed_at_us = ? WHERE id = 1",
            (seq, stamp),
        )

    def prune(self, received_before: datetime, chunk: int = 10_000) -> int:
        """Delete flushed rows received before ``received_before``, in short transactions; rows deleted.

        Flushed rows stay a while so that a late duplicate is still recognised
        here (the warehouse dedupes it anyway) and for forensics.
        """
        cutoff = to_micros(received_before)
        deleted = 0
        while True:
            cursor = self.conn.execute(
                "DELETE FROM push_journal WHERE seq IN (SELECT seq FROM push_journal WHERE "
                "seq <= (SELECT flushed_seq FROM flush_state WHERE id = 1) AND received_at_us < ? "
                "ORDER BY seq LIMIT ?)",
                (cutoff, chunk),
            )
            deleted += cursor.rowcount
            if cursor.rowcount < chunk:
                return deleted

    def count(self, pending_only: bool = False) -> int:
        """Rows in the journal (only those not flushed yet with ``pending_only``)."""
        sql = "SELECT count(*) FROM push_journal"
        if pending_only:
            sql += " WHERE seq > (SELECT flushed_seq FROM flush_state WHERE id = 1)"
        return int(self.conn.execute(sql).fetchone()[0])
