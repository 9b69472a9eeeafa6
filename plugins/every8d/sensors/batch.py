"""Wait until an EVERY8D batch (or every batch of a campaign) has a final status for every message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from every8d.hooks import DEFAULT_CONN_NAME
from every8d.triggers.batch import DEFAULT_POLL_SECONDS, Every8dBatchTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class Every8dBatchFailedWaiting(Exception):
    """The gateway refused a status query while waiting (bad batch id, bad credentials)."""


class Every8dBatchSensor(BaseSensorOperator):
    """Succeeds once every message of the batch(es) is final (delivered, failed, expired, ...).

    Give a ``batch_id``, or a ``campaign_id`` whose batches are read from the
    warehouse's ``every8d_batches`` table (what the send operators register).
    Deferrable by default: the waiting happens in the triggerer, not in a worker slot.

    :param batch_id: one batch id (templated).
    :param campaign_id: wait for every registered batch of this campaign (templated).
    :param mms: the batch is an MMS batch (only with ``batch_id``).
    :param warehouse: warehouse target for ``campaign_id`` (default ``[every8d] warehouse``).
    :param every8d_conn_id: the EVERY8D connection.
    :param deferrable: wait in the triggerer (default) or poke from a worker.
    :param poke_interval: seconds between status checks, in the triggerer or the worker.
    """

    template_fields: Sequence[str] = ("batch_id", "campaign_id")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        batch_id: str | None = None,
        campaign_id: str | None = None,
        mms: bool = False,
        warehouse: str | None = None,
        every8d_conn_id: str = DEFAULT_CONN_NAME,
        deferrable: bool = True,
        poke_interval: float = DEFAULT_POLL_SECONDS,
        **kwargs: Any,
    ) -> None:
        if (batch_id is None) == (campaign_id is None):
            raise ValueError("give exactly one of batch_id and campaign_id")
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.batch_id = batch_id
        self.campaign_id = campaign_id
        self.mms = mms
        self.warehouse = warehouse
        self.every8d_conn_id = every8d_conn_id
        self.deferrable = deferrable

    def batches(self) -> list[dict[str, Any]]:
        """The batches to wait for, as ``{"batch_id", "mms"}`` dicts."""
        if self.batch_id:
            return [{"batch_id": self.batch_id, "mms": self.mms}]
        from every8d.warehouse import open_warehouse
        from every8d.warehouse.tables import BATCHES

        with open_warehouse(self.warehouse) as warehouse:
            BATCHES.ensure(warehouse)
            rows = warehouse.query_arrow(
                f"SELECT batch_id, kind FROM {BATCHES.name} WHERE campaign_id = ? ORDER BY batch_id",
                [self.campaign_id],
            ).to_pylist()
        if not rows:
            raise ValueError(f"no batches registered for campaign {self.campaign_id!r}")
        return [{"batch_id": r["batch_id"], "mms": r["kind"] == "mms"} for r in rows]

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        batches = self.batches()
        if self.poke(context, batches):
            return None
        self.defer(
            trigger=Every8dBatchTrigger(batches, self.every8d_conn_id, self.poke_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def poke(self, context: Context, batches: list[dict[str, Any]] | None = None) -> bool:
        from every8d.batch_state import batch_progress
        from every8d.hooks.every8d import Every8dHook

        hook = Every8dHook(self.every8d_conn_id)
        try:
            return all(
                batch_progress(hook.get_client(), b["batch_id"], mms=b["mms"]).final
                for b in (batches or self.batches())
            )
        finally:
            hook.close()

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "success":
            raise Every8dBatchFailedWaiting(event.get("message") or "waiting for the batch failed")
        self.log.info("%d batch(es) final", len(event.get("batches", {})))
        return event.get("batches", {})
