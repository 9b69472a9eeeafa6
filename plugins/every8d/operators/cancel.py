"""``Every8dCancelCampaignOperator``: erase every still-scheduled batch of a campaign and book the refunds.

Cancelling is a read of the ledger plus one ``eraseBooking`` per batch, so it
is safe to run twice: a batch with nothing left to erase answers empty (or
-3/-4) and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from every8d.hooks import DEFAULT_CONN_NAME

if TYPE_CHECKING:
    from airflow.sdk import Context

    from every8d.client import Every8dClient

#: eraseBooking codes that mean "nothing (left) to cancel" rather than a failure.
NOTHING_TO_ERASE = frozenset({-3, -4})


def cancel_campaign(client: Every8dClient, warehouse: Any, campaign_id: str) -> dict[str, Any]:
    """Erase the campaign's scheduled batches (SMS and MMS); return counts and refunded points."""
    from every8d.campaign.ledger import SendLedger
    from every8d.errors import GatewayError

    ledger = SendLedger(warehouse, campaign_id)
    ledger.ensure_tables()
    if ledger.campaign() is None:
        raise ValueError(f"no campaign {campaign_id!r} in the send ledger")
    batches = ledger.batches_to_cancel()
    summary: dict[str, Any] = {
        "campaign_id": campaign_id,
        "batches_checked": len(batches),
        "batches_cancelled": 0,
        "messages_cancelled": 0,
        "recipients_marked": 0,
        "points_refunded": Decimal(0),
        "nothing_to_cancel": 0,
    }
    for batch_id, kind in batches:
        try:
            result = client.erase_booking(batch_id, mms=kind == "mms")
        except GatewayError as error:
            if error.code not in NOTHING_TO_ERASE:
                raise
            summary["nothing_to_cancel"] += 1
            continue
        if not result.found or result.deleted == 0:
            summary["nothing_to_cancel"] += 1
            continue
        summary["batches_cancelled"] += 1
        summary["messages_cancelled"] += result.deleted
        summary["points_refunded"] += result.refunded
        summary["recipients_marked"] += ledger.record_cancel(
            batch_id, result.deleted, result.refunded, datetime.now(UTC)
        )
    summary["points_refunded"] = str(summary["points_refunded"])
    return summary


class Every8dCancelCampaignOperator(BaseOperator):
    """Cancel a campaign's still-scheduled messages and record the refunded points in the ledger.

    :param campaign_id: the campaign to cancel (as the send operator logged and returned it).
    :param warehouse: the warehouse holding the send ledger (default: as the send operator).
    :param every8d_conn_id: the EVERY8D connection.
    """

    template_fields: Sequence[str] = ("campaign_id", "warehouse", "every8d_conn_id")

    def __init__(
        self,
        *,
        campaign_id: str,
        warehouse: str | None = None,
        every8d_conn_id: str = DEFAULT_CONN_NAME,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.campaign_id = campaign_id
        self.warehouse = warehouse
        self.every8d_conn_id = every8d_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from every8d.errors import Every8dError
        from every8d.hooks.every8d import Every8dHook
        from every8d.warehouse import open_warehouse

        hook = Every8dHook(self.every8d_conn_id)
        warehouse = open_warehouse(self.warehouse)
        try:
            summary = cancel_campaign(hook.get_client(), warehouse, self.campaign_id)
        except Every8dError as error:
            if error.retry_safe:
                raise
            raise AirflowFailException(f"{self.task_id}: {error}") from error  # a retry cannot fix it
        finally:
            hook.close()
            warehouse.close()
        self.log.info("campaign %s cancellation: %s", self.campaign_id, json.dumps(summary))
        return summary
