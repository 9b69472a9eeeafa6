"""From an audience to a cut plan: read, screen and plan in one pass; write the rejects file.

Shared by the dry run (which keeps the plan in scratch space) and the send
(which records it in the ledger), so both see exactly the same plan.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from every8d.campaign.audience import iter_audience
from every8d.campaign.config import CampaignSpec
from every8d.campaign.plan import Planner, PlanStats
from every8d.campaign.screen import REJECT_SCHEMA, Screen
from every8d.phones import PhoneNormalizer

if TYPE_CHECKING:
    from every8d.campaign.runner import RunOptions

log = logging.getLogger(__name__)


def plan_audience(
    spec: CampaignSpec,
    audience: Any,
    *,
    campaign_id: str,
    now: datetime,
    suppressed: pa.Array | None,
    options: RunOptions,
) -> tuple[Planner, PlanStats]:
    """Screen the audience batch by batch into a scratch planner and cut the plan (the caller closes it)."""
    templates = spec.templates()
    needed = [*spec.columns.columns(), *templates.source_columns]
    screen = Screen(
        columns=spec.columns,
        templates=templates,
        phones=PhoneNormalizer(
            spec.region, allow_international=spec.allow_international, require_mobile=spec.require_mobile
        ),
        now=now,
        schedule_at=spec.schedule_at,
        quiet_hours=spec.quiet(),
        send_time_zone=spec.send_time_zone,
        mms_points=spec.mms_points(),
    )
    planner = Planner(memory_limit=options.plan_memory_limit)
    try:
        for batch in iter_audience(
            audience, needed, batch_rows=options.batch_rows, file_format=options.audience_format
        ):
            planner.add(*screen(batch))
        stats = planner.finish(
            campaign_id=campaign_id,
            dedupe_on=spec.dedupe_on,
            suppressed=suppressed,
            chunk_size=spec.chunk_size,
            min_group_size=spec.min_group_size,
            kind=spec.kind,
        )
    except BaseException:
        planner.close()
        raise
    log.info(
        "campaign %s planned: %d audience row(s), %d recipient(s), %d rejected %s, "
        "%s points in %d chunk(s) %s",
        campaign_id,
        stats.audience_rows,
        stats.recipients,
        stats.rejected,
        stats.rejected_by_reason,
        stats.points,
        stats.chunks,
        stats.calls_by_route,
    )
    return planner, stats


def write_rejects(path: Any, batches: Iterable[pa.RecordBatch], campaign_id: str) -> int:
    """Rejected rows as one Parquet file at ``path`` (any ObjectStoragePath), written under a
    temporary name and renamed, so readers never see half a file."""
    import pyarrow.parquet as pq
    from airflow.sdk import ObjectStoragePath

    target = path if isinstance(path, ObjectStoragePath) else ObjectStoragePath(str(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    # An object store has no os.replace: this one keeps its own rename (every8d.atomic is for local files).
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    schema = pa.schema([pa.field("campaign_id", pa.string()), *REJECT_SCHEMA])
    rows = 0
    try:
        with temporary.open("wb") as handle, pq.ParquetWriter(handle, schema) as writer:
            for batch in batches:
                campaign = pa.repeat(pa.scalar(campaign_id, pa.string()), batch.num_rows)
                writer.write_batch(pa.RecordBatch.from_arrays([campaign, *batch.columns], schema=schema))
                rows += batch.num_rows
        temporary.rename(target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return rows
