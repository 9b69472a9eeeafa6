"""Progress lines for long campaigns: counts, points, rate and ETA, never a number or a text."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


@dataclass
class Progress:
    """Counts settled recipients and logs a line every ``every_chunks`` chunks (and at the end).

    :param total: recipients this run expects to settle.
    """

    campaign_id: str
    total: int
    log: logging.Logger
    every_chunks: int = 20
    done: int = 0
    chunks: int = 0
    points: Decimal = Decimal(0)
    started: float = field(default_factory=time.monotonic)
    _last_logged: int = 0

    def add(self, recipients: int, chunks: int, points: Decimal) -> None:
        self.done += recipients
        self.chunks += chunks
        self.points += points
        if self.chunks - self._last_logged >= self.every_chunks:
            self.report()

    def report(self) -> None:
        self._last_logged = self.chunks
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        share = 100.0 * self.done / self.total if self.total else 100.0
        self.log.info(
            "campaign %s: %d/%d recipients settled (%.0f%%), %d chunk(s), %s points so far, "
            "%.0f recipients/s, ETA %s",
            self.campaign_id,
            self.done,
            self.total,
            share,
            self.chunks,
            self.points,
            rate,
            _duration(eta),
        )
