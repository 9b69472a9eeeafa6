"""Whether a batch is final, read straight from the gateway's status pages (no warehouse needed).

Shared by the sensor's poke and the deferrable trigger.  Counts per page are
taken with Arrow kernels, so a big batch costs one pass over its pages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from every8d.client.statuses import STATUS_CODES

if TYPE_CHECKING:
    from every8d.client import Every8dClient

FINAL_CODES = pa.array(sorted(code for code, info in STATUS_CODES.items() if info.final), pa.int32())


@dataclass(frozen=True)
class BatchProgress:
    """How far a batch is: the gateway's count, rows read, and how many of those are final."""

    total: int
    listed: int
    final_count: int

    @property
    def final(self) -> bool:
        return self.total > 0 and self.listed >= self.total and self.final_count >= self.listed

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def batch_progress(client: Every8dClient, batch_id: str, *, mms: bool = False) -> BatchProgress:
    """Page through a batch's status and count final messages (stops early at the first open one)."""
    total = listed = final = 0
    for page in client.iter_delivery_status_pages(batch_id, mms=mms):
        total = max(total, page.total)
        listed += page.rows
        final += pc.sum(pc.is_in(page.table.column("status"), value_set=FINAL_CODES)).as_py() or 0
        if final < listed:  # one open message is enough to know: no need to read further
            break
    return BatchProgress(total=total, listed=listed, final_count=final)
