"""A trigger that waits in the triggerer until EVERY8D batches have a final status for every message.

The triggerer runs many triggers on one event loop, so the hook's blocking
HTTP calls run in a worker thread (``asyncio.to_thread``).  Only the
connection id travels in the serialized kwargs: credentials are read from
the connection inside the triggerer, never stored in the metadata DB.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from every8d.batch_state import BatchProgress, batch_progress
from every8d.hooks import DEFAULT_CONN_NAME

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 60.0


class Every8dBatchTrigger(BaseTrigger):
    """Fires once every listed batch is final (or with an error event when the gateway refuses).

    :param batches: ``[{"batch_id": ..., "mms": bool}, ...]``.
    :param every8d_conn_id: the connection (its id only; no secrets in the trigger row).
    :param poll_interval: seconds between polls of the still-open batches.
    """

    def __init__(
        self,
        batches: Sequence[dict[str, Any]],
        every8d_conn_id: str = DEFAULT_CONN_NAME,
        poll_interval: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        super().__init__()
        self.batches: list[dict[str, Any]] = [
            {"batch_id": str(b["batch_id"]), "mms": bool(b.get("mms", False))} for b in batches
        ]
        self.every8d_conn_id = every8d_conn_id
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batches": self.batches,
                "every8d_conn_id": self.every8d_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    def _progress(self, hook: Any, batch: dict[str, Any]) -> BatchProgress:
        return batch_progress(hook.get_client(), batch["batch_id"], mms=batch["mms"])

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from every8d.errors import Every8dError
        from every8d.hooks.every8d import Every8dHook

        hook = Every8dHook(self.every8d_conn_id)
        waiting = list(self.batches)
        done: dict[str, dict[str, int]] = {}
        try:
            while True:
                still = []
                for batch in waiting:
                    try:
                        progress = await asyncio.to_thread(self._progress, hook, batch)
                    except Every8dError as error:
                        if error.retry_safe:
                            log.warning("batch %s: %s; will poll again", batch["batch_id"], error)
                            still.append(batch)
                            continue
                        yield TriggerEvent(
                            {"status": "error", "batch_id": batch["batch_id"], "message": str(error)}
                        )
                        return
                    if progress.final:
                        done[batch["batch_id"]] = progress.as_dict()
                    else:
                        still.append(batch)
                waiting = still
                if not waiting:
                    yield TriggerEvent({"status": "success", "batches": done})
                    return
                log.info(
                    "%d batch(es) not final yet; polling again in %.0fs", len(waiting), self.poll_interval
                )
                await asyncio.sleep(self.poll_interval)
        finally:
            await asyncio.to_thread(hook.close)
