"""What one chunk's send (or resolution) did, as plain values the ledger can record.

Kept apart from the sender and the ledger so neither imports the other: the
sender turns gateway answers and errors into :class:`ChunkOutcome`, the
ledger writes them, the runner reads ``stop`` to decide whether to go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

#: Why the campaign must stop after this wave (None: carry on).
StopReason = Literal["outcome_unknown", "unreachable", "refused", "no_credit", "quiet_hours"]


@dataclass(frozen=True)
class RowUpdate:
    """New state for some recipients of a chunk.

    :param row_numbers: the recipients (audience row numbers); None means every
        recipient of the chunk still ``in_flight``.
    """

    state: str
    row_numbers: Sequence[int] | None = None
    batch_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class BatchSent:
    """A batch the gateway accepted: registered for the status sync, counted in the summary."""

    batch_id: str
    kind: str
    sent_at: datetime
    scheduled_at: datetime | None
    recipients: int
    points: Decimal
    unsent: int = 0


@dataclass
class ChunkOutcome:
    """The result of one request (or one resolution) for a chunk."""

    chunk: int
    state: str  # the chunk's new ChunkState
    rows: list[RowUpdate] = field(default_factory=list)
    batches: list[BatchSent] = field(default_factory=list)
    error: str | None = None
    stop: StopReason | None = None
    calls: int = 0
    sent: int = 0
    unsent: int = 0
    filtered: int = 0
    cost: Decimal = Decimal(0)
    unsent_resolved: bool = True
