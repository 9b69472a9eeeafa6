"""The alert ledger: a durable claim per (alert, recipient), taken before the SMS is sent.

Airflow may run the same callback more than once for one task try: a list
holding the notifier twice, a task-level and a DAG-level default, or the DAG
processor re-running a failure callback for a task whose worker died.  XCom is
cleared on retry and Variables have no atomic check-and-set, so the claim
lives in a small SQL table, written in one locked transaction that also
enforces the per-DAG rate limit:

* ``sqlite:///path`` or a plain path (default ``$AIRFLOW_HOME/every8d/alerts.sqlite3``):
  one file shared by every process on the host; survives retries, restarts and crashes.
* ``airflow://<conn_id>``: a Postgres connection, for workers and DAG processors on
  several hosts.

Claims are taken before the send and never released: a crash between claim
and send loses that alert rather than sending it twice.  Numbers are stored
as SHA-256 digests, so the table holds no phone numbers in plain text.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from every8d import settings
from every8d.paths import default_path

TABLE = "every8d_alert_ledger"
CLAIMED, SENT, FAILED, UNKNOWN, RATE_LIMITED = "claimed", "sent", "failed", "unknown", "rate_limited"

_DDL = (
    (
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        " alert_key TEXT NOT NULL,"
        " recipient TEXT NOT NULL,"
        " dag_id TEXT NOT NULL,"
        " claimed_at DOUBLE PRECISION NOT NULL,"
        " outcome TEXT NOT NULL,"
        " batch_id TEXT,"
        " detail TEXT,"
        " PRIMARY KEY (alert_key, recipient))"
    ),
    f"CREATE INDEX IF NOT EXISTS {TABLE}_dag_time ON {TABLE} (dag_id, claimed_at)",
)


def default_target() -> str:
    """``[every8d] alert_ledger``, else a SQLite file under ``$AIRFLOW_HOME/every8d/``."""
    configured = settings.get("alert_ledger")
    if configured:
        return configured
    return "sqlite:///" + str(default_path("alerts.sqlite3"))


def recipient_digest(number: str) -> str:
    """What the ledger stores instead of a phone number."""
    return hashlib.sha256(number.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Admission:
    """The ledger's answer to "may this alert go to these numbers?".

    :param numbers: numbers newly claimed: send to exactly these.
    :param already: recipients this alert had already been claimed for (skipped).
    :param rate_limited: the DAG reached its limit: nothing is sent, and the claim
        is kept so that the same alert is not sent later either.
    :param recent: alerts of the DAG counted in the window, this one excluded.
    """

    numbers: list[str]
    already: int
    rate_limited: bool
    recent: int


class AlertLedger:
    """Durable claims and the per-DAG rate limit for :class:`~every8d.notifications.every8d.Every8dNotifier`.

    :param target: ``sqlite:///abs/path``, a plain file path, or ``airflow://<conn_id>`` (Postgres);
        None uses :func:`default_target`.
    """

    def __init__(self, target: str | None = None) -> None:
        self.target = (target or default_target()).strip()
        if self.target.startswith("airflow://"):
            self.dialect = "postgres"
            self.conn_id = self.target[len("airflow://") :].strip("/")
            self.path: Path | None = None
        else:
            self.dialect = "sqlite"
            self.conn_id = ""
            if self.target.startswith("sqlite://"):  # sqlite:///abs/path and sqlite:////abs/path alike
                self.path = Path("/" + self.target[len("sqlite://") :].lstrip("/"))
            else:
                self.path = Path(self.target).expanduser()

    def __repr__(self) -> str:
        where = f"connection {self.conn_id!r}" if self.conn_id else f"file {self.path}"
        return f"AlertLedger({self.dialect} {where})"

    # -- transactions ------------------------------------------------------------------

    def _q(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("?", "%s")

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        """A cursor in a transaction that holds the ledger's write lock until commit."""
        if self.dialect == "sqlite":
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                cursor = conn.cursor()
                cursor.execute("BEGIN IMMEDIATE")  # the write lock first: no two claimers read the same count
                try:
                    for statement in _DDL:
                        cursor.execute(statement)
                    yield cursor
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            finally:
                conn.close()
            return
        conn = self._postgres_connection()
        try:
            cursor = conn.cursor()
            try:
                for statement in _DDL:
                    cursor.execute(statement)
                cursor.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
                yield cursor
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            conn.close()

    def _postgres_connection(self) -> Any:
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(self.conn_id)
        if connection.conn_type not in ("postgres", "postgresql"):
            raise ValueError(
                f"alert ledger connection {self.conn_id!r} is of type {connection.conn_type!r}; "
                "only postgres is supported (or use a sqlite:/// file)"
            )
        conn = connection.get_hook().get_conn()
        conn.autocommit = False
        return conn

    # -- the two operations ------------------------------------------------------------------

    def admit(
        self,
        alert_key: str,
        dag_id: str,
        numbers: Sequence[str],
        *,
        limit: int | None,
        window_seconds: float,
        now: float | None = None,
    ) -> Admission:
        """Claim ``alert_key`` for each number not yet claimed, unless the DAG is over its limit.

        An alert already admitted for some recipients is not counted again, so a
        second notifier adding recipients to the same event is not rate limited.
        """
        now = time.time() if now is None else now
        by_digest = {recipient_digest(number): number for number in numbers}
        with self._locked() as cursor:
            cursor.execute(
                self._q(f"SELECT recipient, outcome FROM {TABLE} WHERE alert_key = ?"), (alert_key,)
            )
            existing = dict(cursor.fetchall())
            new = [digest for digest in by_digest if digest not in existing]
            if not new:
                return Admission([], len(existing), False, 0)
            admitted_before = any(outcome != RATE_LIMITED for outcome in existing.values())
            recent = 0
            if limit is not None and not admitted_before:
                cursor.execute(
                    self._q(
                        f"SELECT COUNT(DISTINCT alert_key) FROM {TABLE} "
                        "WHERE dag_id = ? AND claimed_at >= ? AND outcome <> ? AND alert_key <> ?"
                    ),
                    (dag_id, now - window_seconds, RATE_LIMITED, alert_key),
                )
                recent = int(cursor.fetchone()[0])
            rate_limited = limit is not None and not admitted_before and recent >= limit
            outcome = RATE_LIMITED if rate_limited else CLAIMED
            won = []
            for digest in new:
                cursor.execute(
                    self._q(
                        f"INSERT INTO {TABLE} (alert_key, recipient, dag_id, claimed_at, outcome) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (alert_key, recipient) DO NOTHING"
                    ),
                    (alert_key, digest, dag_id, now, outcome),
                )
                if cursor.rowcount == 1:  # the primary key decides, even if the lock were ever weaker
                    won.append(digest)
        claimed = [] if rate_limited else [by_digest[digest] for digest in won]
        return Admission(claimed, len(existing), rate_limited, recent)

    def settle(
        self, alert_key: str, numbers: Sequence[str], outcome: str, batch_id: str = "", detail: str = ""
    ) -> None:
        """Record what became of a claimed send (``sent``, ``failed`` or ``unknown``)."""
        with self._locked() as cursor:
            for number in numbers:
                cursor.execute(
                    self._q(
                        f"UPDATE {TABLE} SET outcome = ?, batch_id = ?, detail = ? "
                        "WHERE alert_key = ? AND recipient = ?"
                    ),
                    (outcome, batch_id or None, detail[:500] or None, alert_key, recipient_digest(number)),
                )

    def entries(self, dag_id: str | None = None) -> list[dict[str, Any]]:
        """The ledger's rows (oldest first), for operators and tests."""
        sql = f"SELECT alert_key, recipient, dag_id, claimed_at, outcome, batch_id, detail FROM {TABLE}"
        params: tuple = ()
        if dag_id is not None:
            sql += " WHERE dag_id = ?"
            params = (dag_id,)
        with self._locked() as cursor:
            cursor.execute(self._q(sql + " ORDER BY claimed_at, alert_key, recipient"), params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
