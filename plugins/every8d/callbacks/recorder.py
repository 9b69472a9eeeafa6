"""Group commit: many concurrent pushes, one journal transaction and one fsync.

Each request appends its event to the pending list of its event loop and
awaits a future.  One writer coroutine per loop takes everything pending
while the previous commit was on disk and commits it as one transaction in a
single writer thread, so the fsync cost is shared and throughput grows with
load.  The futures are resolved on the loop itself (no per-push thread hop).
When a write fails or takes longer than ``record_timeout``, every push of the
group gets an error, the request answers 503, and the gateway retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from every8d.callbacks.events import PushEvent
from every8d.callbacks.journal import Journal, journal_row

log = logging.getLogger(__name__)

MAX_GROUP = 2048


class RecorderClosed(RuntimeError):
    """The recorder is shutting down; the push was not recorded."""


class Recorder:
    """Owns the journal and the one thread that writes it (started on first use: creating one does no I/O).

    :param path: the journal file.
    :param busy_timeout: SQLite lock wait, seconds.
    :param record_timeout: seconds a group may take before its pushes are answered 503.
    :param report_every: seconds between count-only log lines.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 2.0,
        record_timeout: float = 5.0,
        report_every: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.record_timeout = record_timeout
        self.report_every = report_every
        self._journal = Journal(self.path, busy_timeout=busy_timeout)
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[PushEvent, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._closed = False
        self._last_report = time.monotonic()
        self.counts = {"recorded": 0, "duplicates": 0, "failed": 0, "commits": 0}

    async def record(self, event: PushEvent) -> bool:
        """Wait until ``event`` is on disk; True if new, False for a duplicate; raises when not recorded."""
        if self._closed:
            raise RecorderClosed("the push receiver is shutting down")
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._writer is None or self._writer.done():
            self._start(loop)
        future = loop.create_future()
        self._pending.append((event, future))
        self._wakeup.set()
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="every8d-push-journal")
        self._loop, self._pending, self._wakeup = loop, [], asyncio.Event()
        self._writer = loop.create_task(self._write_loop(), name="every8d-push-journal")

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                await self._commit(loop, group)
            self._maybe_report()
            if self._closed:
                return

    async def _commit(
        self, loop: asyncio.AbstractEventLoop, group: list[tuple[PushEvent, asyncio.Future]]
    ) -> None:
        rows = [journal_row(event) for event, _ in group]  # Python work here, not in the writer thread
        try:
            write = loop.run_in_executor(self._executor, self._journal.append_rows, rows)
            inserted = await asyncio.wait_for(write, self.record_timeout)
        except Exception as error:  # disk full, lock timeout, slow disk: 503, the gateway retries
            self.counts["failed"] += len(group)
            log.warning("push journal write failed for %d push(es): %s", len(group), type(error).__name__)
            if not isinstance(error, asyncio.TimeoutError) and self._executor is not None:
                self._executor.submit(self._journal.close)  # reopen next time: the file may be the problem
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        self.counts["commits"] += 1
        for (_, future), new in zip(group, inserted, strict=True):
            self.counts["recorded" if new else "duplicates"] += 1
            if not future.done():  # the request may have been cancelled (client went away)
                future.set_result(new)

    def _maybe_report(self, force: bool = False) -> None:
        now = time.monotonic()
        if (force or now - self._last_report >= self.report_every) and any(self.counts.values()):
            self._last_report = now
            log.info(
                "push journal: %(recorded)d recorded, %(duplicates)d duplicates, %(failed)d failed, "
                "%(commits)d commits",
                self.counts,
            )

    async def aclose(self) -> None:
        """Write what is pending, then close the journal (call on the serving loop, at shutdown)."""
        self._closed = True
        if self._writer is not None and not self._writer.done() and self._loop is asyncio.get_running_loop():
            self._wakeup.set()
            await asyncio.wait([self._writer], timeout=self.record_timeout * 2)
        self.close()

    def close(self) -> None:
        """Stop writing and close the journal (pending pushes are not waited for: they get no 200)."""
        self._closed = True
        if self._executor is not None:
            self._executor.submit(self._journal.close)
            self._executor.shutdown(wait=True)
            self._executor = None
        self._maybe_report(force=True)
