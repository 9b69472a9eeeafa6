"""Opt-outs: numbers that must never be texted again.

The send operators filter audiences on :func:`load_suppressed`; the push
endpoint and the status sync add repliers who opted out.  Adding a number
twice keeps the first reason and time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import SUPPRESSIONS

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"


def load_suppressed(warehouse: Warehouse) -> pa.Array:
    """Every suppressed number (E.164) as an Arrow string array."""
    SUPPRESSIONS.ensure(warehouse)
    table = warehouse.query_arrow(f"SELECT mobile FROM {SUPPRESSIONS.name}")
    return table.column("mobile").combine_chunks().cast(pa.string())


def add_suppressions(
    warehouse: Warehouse,
    mobiles: Iterable[str] | pa.Array | pa.ChunkedArray,
    reason: str,
    source: str,
    *,
    now: datetime | None = None,
) -> int:
    """Suppress ``mobiles`` (E.164); returns how many were new.

    :raises ValueError: when a number is not E.164 (the message gives counts, never numbers).
    """
    if isinstance(mobiles, pa.ChunkedArray):
        mobiles = mobiles.combine_chunks()
    array = mobiles if isinstance(mobiles, pa.Array) else pa.array(list(mobiles), pa.string())
    array = pc.unique(pc.drop_null(array.cast(pa.string())))
    if len(array) == 0:
        return 0
    bad = len(array) - pc.sum(pc.match_substring_regex(array, E164_PATTERN)).as_py()
    if bad:
        raise ValueError(f"{bad} of {len(array)} number(s) to suppress are not E.164 (+<country><number>)")
    created_at = (now or datetime.now(UTC)).astimezone(UTC)
    count = len(array)
    table = pa.table(
        {
            "mobile": array,
            "reason": pa.repeat(pa.scalar(reason, pa.string()), count),
            "source": pa.repeat(pa.scalar(source, pa.string()), count),
            "created_at": pa.repeat(
                pa.scalar(created_at, SUPPRESSIONS.schema.field("created_at").type), count
            ),
        },
        schema=SUPPRESSIONS.schema,
    )
    with warehouse.transaction():
        SUPPRESSIONS.ensure(warehouse)
        before = (
            warehouse.query_arrow(f"SELECT count(*) AS n FROM {SUPPRESSIONS.name}").column("n")[0].as_py()
        )
        warehouse.upsert(SUPPRESSIONS.name, table, SUPPRESSIONS.primary_key, update_columns=[])
        after = warehouse.query_arrow(f"SELECT count(*) AS n FROM {SUPPRESSIONS.name}").column("n")[0].as_py()
    return int(after - before)
