"""What the delivery-status and report DAGs' tasks do, kept out of the DAG files so parsing them stays cheap.

Each function takes the run's params (which may be empty), decides with the wall
clock (a run that starts late must not decide in the past; the merge rules make
a rerun idempotent whatever its clock), resolves the warehouse, Parquet root and
gateway connection at run time
(params first, then the ``[every8d]`` options of :mod:`every8d.settings`, then
defaults), and returns JSON-friendly results for XCom.  The options: ``warehouse``,
``parquet_root`` (``none`` turns the Parquet copy off), ``parquet_conn_id``,
``status_page_concurrency``, ``status_with_record_ids``, ``status_shards``,
``status_batch_concurrency`` and ``status_merge_group``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from every8d import settings

if TYPE_CHECKING:
    from every8d.warehouse.base import Warehouse

log = logging.getLogger(__name__)

OPTION_PAGE_CONCURRENCY = "status_page_concurrency"
OPTION_WITH_RECORD_IDS = "status_with_record_ids"
OPTION_SHARDS = "status_shards"
OPTION_BATCH_CONCURRENCY = "status_batch_concurrency"
OPTION_MERGE_GROUP = "status_merge_group"
#: Batches one run takes at most when ``max_batches`` is not given.
DEFAULT_SHARD_LIMIT_FALLBACK = 10_000
PARQUET_OFF = ("none", "off", "false", "0")


def _param(
    params: Mapping[str, Any] | None, name: str, option: str | None = None, default: Any = None
) -> Any:
    """The DAG param ``name``, else the ``[every8d]`` option, else ``default``."""
    value = (params or {}).get(name)
    if value is None or value == "":
        value = settings.get(option) if option else ""
    return default if value is None or value == "" else value


def warehouse_from(params: Mapping[str, Any] | None):
    """The warehouse of the ``warehouse`` param, else ``[every8d] warehouse``, else the DuckDB default."""
    from every8d.warehouse import open_warehouse

    return open_warehouse(_param(params, "warehouse"))


def parquet_root_from(params: Mapping[str, Any] | None) -> Any:
    """The Parquet root (None when turned off), as an ``ObjectStoragePath`` when a connection is named."""
    from every8d.warehouse.parquet import default_parquet_root

    root = _param(params, "parquet_root", "parquet_root") or default_parquet_root()
    if str(root).strip().lower() in PARQUET_OFF:
        return None
    conn_id = _param(params, "parquet_conn_id", "parquet_conn_id")
    if conn_id:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(str(root), conn_id=str(conn_id))
    return str(root)


def sync_options_from(params: Mapping[str, Any] | None):
    from every8d.tracking.schedule import DEFAULT_EXPIRY_GRACE
    from every8d.tracking.sync import SyncOptions

    grace = _param(params, "expiry_grace_minutes")
    return SyncOptions(
        with_record_ids=settings.parse_bool(_param(params, "with_record_ids", OPTION_WITH_RECORD_IDS, False)),
        page_concurrency=max(1, int(_param(params, "page_concurrency", OPTION_PAGE_CONCURRENCY, 2))),
        expiry_grace=DEFAULT_EXPIRY_GRACE if grace is None else timedelta(minutes=int(grace)),
    )


def utc(moment: datetime | None) -> datetime:
    return (moment or datetime.now(UTC)).astimezone(UTC)


def merge_pushes(params: Mapping[str, Any] | None, now: datetime | None) -> dict[str, int]:
    """Flush this host's push journal (if the push endpoint runs here), then merge push events."""
    from dataclasses import asdict

    from every8d.callbacks.flush import flush_journal
    from every8d.campaign.adoption import adopt_pushed_batches
    from every8d.tracking.pushes import merge_push_events

    with warehouse_from(params) as warehouse:
        flushed = flush_journal(warehouse)
        adopted = adopt_pushed_batches(
            warehouse
        )  # batches whose send answer was lost: registered from here on
        merged = asdict(merge_push_events(warehouse, now=utc(now)))
    return {**merged, "journal_pushes_flushed": flushed.read, "batches_adopted": adopted["adopted"]}


def plan_shards(params: Mapping[str, Any] | None, now: datetime | None = None) -> list[dict[str, int]]:
    """Close batches that pushes already settled, then cut the due batches into shards.

    :return: one ``{"shard": k, "shards": n}`` per shard task (none when nothing is due).
    """
    from every8d.tracking.shards import close_settled_batches, default_max_shards, shard_count
    from every8d.tracking.sync import due_batches

    limit = int(_param(params, "max_batches", default=DEFAULT_SHARD_LIMIT_FALLBACK))
    with warehouse_from(params) as warehouse:
        max_shards = max(
            1, int(_param(params, "shards", OPTION_SHARDS, default_max_shards(warehouse.dialect)))
        )
        closed = close_settled_batches(warehouse, now=utc(now))
        due = len(due_batches(warehouse, utc(now), limit))
    shards = shard_count(due, max_shards)
    log.info("%d batch(es) closed by pushes without a poll; %d due, in %d shard(s)", closed, due, shards)
    return [{"shard": k, "shards": shards} for k in range(shards)]


def _use_system_allocator_for_arrow() -> None:
    """Arrow's allocations in this (task) process from the C allocator instead of mimalloc.

    Every fetch thread parses its pages with Arrow, and mimalloc keeps a heap per thread: with 32
    threads that held ~270 MB more at peak than the 11 MB Arrow ever had allocated (200 batches x
    1,000 rows: +268 MB over the imports with mimalloc, +87 MB with the system allocator).
    """
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


#: The GIL's switch interval in a shard task (Python's default: 5 ms).  The shard's merging thread
#: hands the GIL over at every Arrow/DuckDB call and waited up to the interval to get it back from
#: 32 fetch threads parsing pages: 1,000 x 1,000 messages staged in 6.3 s at 5 ms, 2.8 s at 0.5 ms.
SHARD_SWITCH_INTERVAL = 0.0005


def sync_status_shard(params: Mapping[str, Any] | None, shard: Mapping[str, Any]) -> dict[str, Any]:
    """Poll one shard's due batches (by the wall clock) into the tables."""
    from every8d.hooks.every8d import Every8dHook
    from every8d.tracking.shards import DEFAULT_CONCURRENCY, DEFAULT_MERGE_GROUP, sync_shard

    _use_system_allocator_for_arrow()
    sys.setswitchinterval(min(sys.getswitchinterval(), SHARD_SWITCH_INTERVAL))  # a task process: ours
    options = sync_options_from(params)
    concurrency = max(
        1, int(_param(params, "batch_concurrency", OPTION_BATCH_CONCURRENCY, DEFAULT_CONCURRENCY))
    )
    group = max(1, int(_param(params, "merge_group", OPTION_MERGE_GROUP, DEFAULT_MERGE_GROUP)))
    limit = int(_param(params, "max_batches", default=DEFAULT_SHARD_LIMIT_FALLBACK))
    hook = Every8dHook(
        str(_param(params, "every8d_conn_id", default=Every8dHook.default_conn_name)),
        pool_size=max(concurrency * options.page_concurrency, 1),
    )
    try:
        with warehouse_from(params) as warehouse:
            result = sync_shard(
                warehouse,
                hook.get_client(),
                shard=int(shard["shard"]),
                shards=int(shard["shards"]),
                options=options,
                concurrency=concurrency,
                merge_group=group,
                limit=limit,
            )
    finally:
        hook.close()
    return result.to_json()


def find_due_batches(params: Mapping[str, Any] | None, now: datetime | None) -> list[dict[str, Any]]:
    """Batches to poll in this run (at most ``max_batches``)."""
    from every8d.tracking.sync import DEFAULT_DUE_LIMIT, due_batches

    limit = int(_param(params, "max_batches", default=DEFAULT_DUE_LIMIT))
    with warehouse_from(params) as warehouse:
        return [batch.to_json() for batch in due_batches(warehouse, utc(now), limit)]


def sync_one_batch(
    params: Mapping[str, Any] | None, batch: Mapping[str, Any], now: datetime | None
) -> dict[str, Any]:
    """Poll one batch into the tables."""
    from every8d.hooks.every8d import Every8dHook
    from every8d.tracking.sync import DueBatch, sync_batch

    options = sync_options_from(params)
    hook = Every8dHook(
        str(_param(params, "every8d_conn_id", default=Every8dHook.default_conn_name)),
        pool_size=max(options.page_concurrency, 1),
    )
    try:
        with warehouse_from(params) as warehouse:
            result = sync_batch(
                warehouse, hook.get_client(), DueBatch.from_json(dict(batch)), now=utc(now), options=options
            )
    finally:
        hook.close()
    return result.to_json()


def export_parquet(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Rewrite the Parquet partitions the sync (or an earlier, crashed run) changed.

    Then refresh the analysts' file.
    """
    from dataclasses import asdict

    from every8d.warehouse.parquet import ParquetExporter

    root = parquet_root_from(params)
    with warehouse_from(params) as warehouse:
        result: dict[str, Any] = (
            asdict(ParquetExporter(root).export(warehouse))
            if root is not None
            else {"partitions": 0, "rows": 0}
        )
        result.update(refresh_for(params, warehouse))  # the analysts' own file (every8d.tracking.analyst)
        return result


def refresh_for(params: Any, warehouse: Warehouse) -> dict[str, Any]:
    """The pipeline's step: refresh the analysts' file of the configured warehouse, if it has one."""
    from every8d.tracking.analyst import analyst_db_path, refresh_analyst_db

    path = analyst_db_path(_param(params, "warehouse"))
    if path is None:
        return {"analyst_db": None}
    root = parquet_root_from(params)
    result = refresh_analyst_db(warehouse, path, root if isinstance(root, (str, os.PathLike)) else None)
    return {
        "analyst_db": str(result.path),
        "parquet_views": list(result.parquet_views),
        "copied": list(result.copied),
        "views": list(result.views),
    }
