"""Status and reply pushes, delivered like the gateway does: GET, retried, unsigned.

The real gateway retries a push up to 10 times on anything but HTTP 200, so
receivers see duplicates and out-of-order deliveries; the options here make
those cases happen on purpose.  Deliveries are asyncio tasks on the server's
loop (httpx), bounded by a semaphore, so they never block gateway endpoints.
Every attempt is logged for tests to read.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import httpx

from every8d.sandbox.state import Account, Notification, PushConfig, iso_utc, points_text, taipei_compact

log = logging.getLogger(__name__)


def push_params(n: Notification) -> dict[str, str]:
    """The query parameters of one push (extra keys on purpose: receivers must tolerate them)."""
    m = n.message
    return {
        "BatchID": n.batch.id,
        "RM": n.mobile,
        "RT": taipei_compact(n.at),
        "STATUS": str(n.status),
        "SM": n.text,
        "MR": m.mr if m is not None else "",
        "USERID": n.batch.uid,
        "ST": taipei_compact(m.send_at) if m is not None else "",
        "NAME": n.name,
        "CHARGE": points_text(m.points) if m is not None else "0.0",
        "MSGID": str(m.id) if m is not None else "",
    }


class PushDispatcher:
    """Delivers pushes with retries, duplicates and reordering; keeps a log of attempts."""

    def __init__(self, concurrency: int = 8, seed: int | None = None) -> None:
        self.log: list[dict] = []
        self.default_concurrency = concurrency
        self.concurrency = concurrency
        self._rng = random.Random(seed)
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task] = set()
        self._idle: asyncio.Event | None = None
        self._seq = 0

    async def start(self) -> None:
        # trust_env=False: a proxy from the environment must never see loopback pushes.
        self._client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=256))
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self._idle = asyncio.Event()
        self._idle.set()

    async def close(self) -> None:
        self.reset()
        if self._client is not None:
            await self._client.aclose()

    def reset(self) -> None:
        """Forget queued deliveries and the log (sandbox reset)."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self.log = []
        if self._idle is not None:
            self._idle.set()
            self.set_concurrency(self.default_concurrency)

    def set_concurrency(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._semaphore = asyncio.Semaphore(concurrency)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, notifications: list[Notification], accounts: dict[str, Account]) -> int:
        """Queue pushes for ``notifications`` (one tick's worth); returns deliveries queued."""
        by_account: dict[str, list[Notification]] = {}
        for n in notifications:
            by_account.setdefault(n.batch.uid, []).append(n)
        queued = 0
        for uid, items in by_account.items():
            account = accounts.get(uid)
            config = account.push if account is not None else None
            if config is None or not config.url:
                continue
            jobs = [push_params(n) for n in items for _ in range(1 + config.duplicates)]
            if config.reorder:
                self._rng.shuffle(jobs)
            for params in jobs:
                self._start(config, params)
            queued += len(jobs)
        return queued

    def _start(self, config: PushConfig, params: dict[str, str]) -> None:
        self._seq += 1
        task = asyncio.get_running_loop().create_task(self._deliver(self._seq, config, params))
        self._tasks.add(task)
        assert self._idle is not None, "start() first"
        self._idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not self._tasks and self._idle is not None:
            self._idle.set()

    async def _deliver(self, push_id: int, config: PushConfig, params: dict[str, str]) -> None:
        # Merge, not replace: a receiver URL may carry its own query (a token, a tenant).
        url = httpx.URL(config.url).copy_merge_params(params)
        assert self._semaphore is not None and self._client is not None, "start() first"
        async with self._semaphore:
            for attempt in range(1, config.attempts + 1):
                status, error = None, None
                try:
                    response = await self._client.get(url, timeout=config.timeout)
                    status = response.status_code
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                self.log.append(
                    {
                        "push_id": push_id,
                        "attempt": attempt,
                        "url": config.url,
                        "params": params,
                        "status": status,
                        "error": error,
                        "at": iso_utc(time.time()),
                    }
                )
                if status == 200:
                    return
                if attempt < config.attempts:
                    await asyncio.sleep(config.retry_delay)
        log.info("push %s given up after %s attempts", push_id, config.attempts)

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued or retrying; False on timeout."""
        assert self._idle is not None, "start() first"
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
