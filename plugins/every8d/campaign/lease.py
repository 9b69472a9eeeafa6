"""The campaign lease: one runner at a time plans, claims, writes requests and records answers.

Airflow can run a task and its retry at once (a worker that lost its
heartbeat keeps going), and a frozen process can wake after its retry
finished.  So every ledger write of a run happens inside :meth:`Lease.fenced`:
a transaction that first renews the lease *only if this runner still holds
it*.  The expiry comes from the warehouse's clock (its dialect's ``now``:
``now()``, MySQL's ``NOW(6)`` in a UTC session), never a worker's.  On Postgres
and MySQL/MariaDB the renewing ``UPDATE`` locks the campaign row until the
transaction ends, so a takeover waits for it; DuckDB lets one process write
the file at a time, which serializes the same way.

Another runner takes the lease over only once it has expired; then it
resolves what the old owner wrote only after the settle time, counted from
the moment each request was written (:mod:`.runner`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from every8d.campaign import errors

log = logging.getLogger(__name__)

CAMPAIGNS_TABLE = "every8d_campaigns"


def now_plus_ms(warehouse: Any) -> str:
    """``now() + ? ms`` as the warehouse spells it."""
    return warehouse.sql.plus_ms(warehouse.sql.now)


def db_now(warehouse: Any) -> datetime:
    """The warehouse's clock: the one clock every runner of a campaign agrees on."""
    return warehouse.query_arrow(f"SELECT {warehouse.sql.now} AS now").column("now")[0].as_py()


class Lease:
    """This runner's hold on one campaign.

    :param warehouse: the run's warehouse (shared with the run; every use is under ``lock``).
    :param owner: this runner's token.
    :param seconds: how long a renewal holds; longer than any request's deadline.
    :param lock: serializes this process's threads on ``warehouse`` (it is not thread-safe).
    """

    def __init__(
        self, warehouse: Any, campaign_id: str, owner: str, seconds: float, lock: threading.RLock
    ) -> None:
        if seconds <= 0:
            raise ValueError("lease seconds must be positive")
        self.wh = warehouse
        self.campaign_id = campaign_id
        self.owner = owner
        self.seconds = seconds
        self.lock = lock
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def _ms(self) -> int:
        return int(self.seconds * 1000)

    def try_acquire(self, placeholder: dict[str, Any]) -> bool:
        """Take the lease if nobody holds it (or its holder let it expire); create the campaign row if new.

        :param placeholder: columns for a campaign row that does not exist yet (state ``planning``).
        """
        now = self.wh.sql.now
        with self.lock, self.wh.transaction():
            taken = self.wh.execute(
                f"""UPDATE {CAMPAIGNS_TABLE} SET lease_owner = ?, lease_until = {now_plus_ms(self.wh)},
                        lease_epoch = coalesce(lease_epoch, 0) + 1, updated_at = {now}
                    WHERE campaign_id = ?
                        AND (lease_owner IS NULL OR lease_owner = ? OR lease_until <= {now})""",
                [self.owner, self._ms, self.campaign_id, self.owner],
            )
            if taken == 1:
                return True
            exists = (
                self.wh.query_arrow(
                    f"SELECT count(*) AS n FROM {CAMPAIGNS_TABLE} WHERE campaign_id = ?", [self.campaign_id]
                )
                .column("n")[0]
                .as_py()
            )
            if exists:
                return False
            columns = {**placeholder, "campaign_id": self.campaign_id, "state": "planning"}
            names = list(columns)
            self.wh.execute(
                f"""INSERT INTO {CAMPAIGNS_TABLE} ({", ".join(names)}, lease_owner, lease_until, lease_epoch,
                        updated_at)
                    VALUES ({", ".join("?" for _ in names)}, ?, {now_plus_ms(self.wh)}, 1, {now})""",
                [*columns.values(), self.owner, self._ms],
            )
            return True

    def holder(self) -> tuple[str | None, datetime | None, str | None]:
        """``(owner, expiry, campaign state)`` as the warehouse has them now."""
        with self.lock, self.wh.transaction():
            rows = self.wh.query_arrow(
                f"SELECT lease_owner, lease_until, state FROM {CAMPAIGNS_TABLE} WHERE campaign_id = ?",
                [self.campaign_id],
            ).to_pylist()
        if not rows:
            return None, None, None
        return rows[0]["lease_owner"], rows[0]["lease_until"], rows[0]["state"]

    def renew(self) -> None:
        """Extend the lease, or raise :class:`LeaseLostError` when another runner holds it now.

        Inside a transaction this is the fence: on Postgres the row stays locked
        until the transaction ends, so nobody takes over halfway through it.
        """
        renewed = self.wh.execute(
            f"UPDATE {CAMPAIGNS_TABLE} SET lease_until = {now_plus_ms(self.wh)} "
            "WHERE campaign_id = ? AND lease_owner = ?",
            [self._ms, self.campaign_id, self.owner],
        )
        if renewed != 1:
            self.lost.set()
            raise errors.LeaseLostError(
                f"campaign {self.campaign_id}: another runner took the lease over; this one stops without "
                "sending anything more"
            )

    @contextmanager
    def fenced(self) -> Iterator[None]:
        """A ledger transaction that only commits while this runner holds the lease (renewing it)."""
        if self.lost.is_set():
            raise errors.LeaseLostError(f"campaign {self.campaign_id}: this runner lost its lease; it stops")
        with self.lock, self.wh.transaction():
            # A runner frozen inside this transaction would hold the campaign row's lock for
            # good: where the engine can, the server ends such a session after a lease.
            timeout = self.wh.sql.lock_timeout_sql(self._ms)
            if timeout:
                self.wh.execute(timeout)
            self.renew()
            yield

    def release(self) -> None:
        """Let the lease go at once (the run ends): the next runner need not wait for its expiry."""
        self.stop_heartbeat()
        try:
            with self.lock, self.wh.transaction():
                self.wh.execute(
                    f"""UPDATE {CAMPAIGNS_TABLE} SET lease_owner = NULL, lease_until = NULL
                        WHERE campaign_id = ? AND lease_owner = ?""",
                    [self.campaign_id, self.owner],
                )
        except Exception as error:
            log.warning(
                "campaign %s: could not release the lease (%s); it expires in %.0fs",
                self.campaign_id,
                type(error).__name__,
                self.seconds,
            )

    # -- heartbeat --------------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        """Renew every third of the lease while the run works (waits, long plans, slow waves)."""
        if self._beat is not None:
            return
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="every8d-lease", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(self.seconds)
            self._beat = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                with self.lock, self.wh.transaction():
                    self.renew()
            except errors.LeaseLostError:
                log.error("campaign %s: lease lost to another runner; stopping", self.campaign_id)
                return
            except Exception as error:
                log.warning("campaign %s: lease renewal failed (%s)", self.campaign_id, type(error).__name__)


def wait_for_lease(lease: Lease, placeholder: dict[str, Any], timeout: float, poll: float = 0.5) -> bool:
    """Acquire the lease, waiting while another live runner holds it.

    False if the campaign got done meanwhile.

    Raises :class:`CampaignBusyError` (retryable) after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    logged = False
    while True:
        if lease.try_acquire(placeholder):
            return True
        _owner, until, state = lease.holder()
        if state == "done":
            return False
        if not logged:
            log.warning(
                "campaign %s: another runner holds the lease (until %s); waiting for it",
                lease.campaign_id,
                until,
            )
            logged = True
        if time.monotonic() >= deadline:
            raise errors.CampaignBusyError(
                f"campaign {lease.campaign_id}: another runner still holds the lease after {timeout:.0f}s; "
                "retry later (nothing was sent by this run)"
            )
        time.sleep(poll)
