"""The status sync in shards: a few task instances per run, each polling many batches.

One task instance per batch costs about 3 s of Airflow overhead (process,
imports, XCom) for well under a second of work, and on DuckDB every one of
them waits for the file lock.  So a run cuts its due batches into at most
``max_shards`` shards (a batch's shard is a hash of its id, so shards never
overlap and a retried shard finds the same batches), and each shard:

- reads its due batches at its own start, by the wall clock;
- fetches ``concurrency`` batches at a time (each with the hook's page
  concurrency) into local Arrow spools, while
- the shard's one merging thread merges fetched batches in groups, one
  warehouse transaction per group.  A group is the oldest fetched batches, at
  most ``merge_group`` batches and ``merge_rows`` rows; it is merged once it is
  full, once nothing is being fetched, or once its oldest batch has waited
  ``merge_every`` seconds.  The DuckDB file is opened once per group, its lock
  held only for that merge.

The commit unit is the group: a batch counts as polled only when its group's
transaction commits (its rows, its history, its poll booked, all at once).  A
crash (SIGKILL included) loses the batches in progress: those being fetched,
those fetched and waiting for their group, and the group being merged, at most
``concurrency + 2 * merge_group`` batches; the retry finds exactly those still due
and polls them again.  ``merge_group=1`` commits batch by batch.

Why groups and not batch by batch: on DuckDB a merge no longer reads the whole
tables (batches seen for the first time are plain inserts, known ones are
compared with their own rows only, see :func:`every8d.tracking.merge.merge_staged`),
so its cost is flat as the tables grow, but every transaction pays a floor: the
file opened, and a checkpoint when it commits and closes (~0.2 s however few the
rows).  The merging thread alone (1 DuckDB thread, 1,000 messages per batch, 2
cores at load ~2): 100 batches per transaction, 1,000 batches in 3.3 s (0.05 s
staging, 0.08 s merge, 0.04 s bookkeeping, 0.16 s commit each); 10 per
transaction 14.1 s (the checkpoint at close is 8.1 s of it); batch by batch 49
ms a batch (200 batches in 9.7 s), ~49 s per 1,000: a third of the 5x goal's
whole pass in commits alone.  So the default group stays at 100,000 rows.

A batch whose messages pushes already made all final closes without a poll
(:func:`close_settled_batches`).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from every8d.tracking import merge
from every8d.tracking.replies import fetch_replies, record_replies
from every8d.tracking.spool import PageSpool, staged_rows
from every8d.tracking.sync import DueBatch, SyncOptions, apply_close_rules, due_batches, fetch_status_pages
from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import BATCHES, MESSAGES, STATUS_STAGING, ensure_tracking_tables

if TYPE_CHECKING:
    from every8d.client import Every8dClient

log = logging.getLogger(__name__)

#: Task instances polling in one run at most, on a warehouse that merges in parallel (Postgres).
#: Each costs 315-433 MB and ~3 s of Airflow overhead, and two leave the rest of a small host's
#: ``parallelism`` to campaigns.  Raise it (``shards`` param, ``[every8d] status_shards``) with the pool.
DEFAULT_MAX_SHARDS = 2
#: On DuckDB the merges are serialized by the file lock, so a second process only waits and adds
#: its overhead: 1,000 batches x 1,000 messages on 2 cores took 22 s in 1 shard, 32 s in 2, 153 s in 4.
DUCKDB_MAX_SHARDS = 1
#: Fewer shards when there is little to do: a shard is worth its overhead from this many batches.
MIN_BATCHES_PER_SHARD = 50
#: Batches a shard fetches at once (each with the hook's page concurrency).  The gateway's round
#: trip dominates a poll (1,000 batches x 2 requests x 50 ms is 100 s one after another), so many.
DEFAULT_CONCURRENCY = 32
#: Batches merged in one transaction at most (what a crash can cost: their polls, redone by the retry).
DEFAULT_MERGE_GROUP = 256
#: Status rows merged in one transaction at most.  Each DuckDB transaction costs a checkpoint
#: (~0.2 s whatever its size), so few big merges beat many small ones; the group's rows are in
#: memory while it merges (100,000 rows: ~65 MB at the commit, the most of a shard's peak).
DEFAULT_MERGE_ROWS = 100_000
#: Seconds a fetched batch waits at most for its merge group to fill (a slow gateway still commits).
DEFAULT_MERGE_EVERY = 10.0
#: Batches a shard takes per run at most.
DEFAULT_SHARD_LIMIT = 10_000


def shard_of(batch_id: str, shards: int) -> int:
    """The shard a batch belongs to among ``shards``: stable across runs, processes and retries."""
    return zlib.crc32(batch_id.encode()) % max(int(shards), 1)


def default_max_shards(dialect: str) -> int:
    """The shard cap for a warehouse: one on DuckDB (one writer at a time), else ``DEFAULT_MAX_SHARDS``."""
    return DUCKDB_MAX_SHARDS if dialect == "duckdb" else DEFAULT_MAX_SHARDS


def shard_count(due: int, max_shards: int = DEFAULT_MAX_SHARDS) -> int:
    """How many shards ``due`` batches need: none for none, one per ``MIN_BATCHES_PER_SHARD``, capped."""
    if due <= 0:
        return 0
    return max(1, min(int(max_shards), math.ceil(due / MIN_BATCHES_PER_SHARD)))


def wall_clock() -> datetime:
    return datetime.now(UTC)


CLOSE_SETTLED = f"""
UPDATE {BATCHES.name}
SET state = 'closed', closed_reason = 'all_final', closed_at = CAST(? AS {{timestamp}}),
    final_count = recipients, next_poll_at = NULL
WHERE state = 'open' AND recipients IS NOT NULL AND recipients > 0
  AND recipients <= (SELECT count(*) FROM {MESSAGES.name} m
                     WHERE m.batch_id = {BATCHES.name}.batch_id AND m.is_final)
"""


def close_settled_batches(warehouse: Warehouse, *, now: datetime) -> int:
    """Close, without a poll, open batches whose every sent message a push already made final.

    A batch qualifies when it holds at least ``recipients`` final messages (the count the
    sender registered); a batch without that count is left to the poll.
    """
    ensure_tracking_tables(warehouse)
    with warehouse.transaction():
        return max(warehouse.execute(CLOSE_SETTLED.format(timestamp=warehouse.sql.timestamp), [now]), 0)


@dataclass(frozen=True)
class Fetched:
    """One batch's gateway answers, spooled locally, waiting for its merge."""

    batch: DueBatch
    spool: PageSpool
    replies: pa.Table | None
    seconds: float


@dataclass
class ShardResult:
    """What one shard did (JSON-friendly for XCom)."""

    shard: int
    shards: int
    batches: int = 0
    polled: int = 0
    failed: int = 0
    listed: int = 0
    history_rows: int = 0
    message_rows: int = 0
    expired: int = 0
    replies: int = 0
    closed: int = 0
    merges: int = 0
    fetch_seconds: float = 0.0
    merge_seconds: float = 0.0
    #: Where the merging went, summed over merges: staging, merge, bookkeeping, commit (seconds).
    phases: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
        out["phases"] = {k: round(v, 3) for k, v in self.phases.items()}
        return out

    def timed(self, phase: str, since: float) -> float:
        """Add the seconds from ``since`` to ``phase``; returns now (the next phase's start)."""
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - since
        return now


class ShardIncomplete(RuntimeError):
    """Some batches of the shard could not be polled; the others are merged. A retry polls the rest."""

    def __init__(self, result: ShardResult) -> None:
        self.result = result
        kinds = sorted(set(result.errors))
        super().__init__(
            f"shard {result.shard}/{result.shards}: {result.failed} of {result.batches} batch(es) not polled "
            f"({', '.join(kinds[:5])}); the rest are merged, a retry polls them again"
        )


#: A spool above this many rows is staged on its own (streamed), not read into memory with others.
GROUP_STAGE_ROWS = 50_000


def _in_memory(group: Sequence[Fetched]) -> list[Fetched]:
    return [f for f in group if f.spool.rows <= GROUP_STAGE_ROWS]


def _staged_rows(group: Sequence[Fetched], now: datetime) -> pa.Table:
    """The small spools of ``group`` as one Arrow table in the staging shape (a few MB)."""
    small = _in_memory(group)
    return staged_rows(
        [f.spool.read_table() for f in small],
        [f.batch.batch_id for f in small],
        source="poll",
        observed_at=now,
    )


def _stage(warehouse: Warehouse, group: Sequence[Fetched], now: datetime) -> None:
    """Fill the staging table with every spool of ``group``; on DuckDB the big ones streamed, the
    small ones together, as one Arrow table in one statement (one statement per batch cost more
    than the merge itself)."""
    if not warehouse.sql.scans_arrow:
        for fetched in group:
            with fetched.spool.staged(fetched.batch.batch_id, source="poll", observed_at=now) as staged:
                warehouse.append(STATUS_STAGING.name, staged)
        return
    names = ", ".join(STATUS_STAGING.schema.names)
    insert = f"INSERT INTO {STATUS_STAGING.name} ({names}) "
    for fetched in group:
        if fetched.spool.rows > GROUP_STAGE_ROWS:
            with fetched.spool.reader() as rows:
                warehouse.execute_over(
                    rows,
                    lambda source, spool=fetched.spool: insert + spool.staging_select(source),
                    [fetched.batch.batch_id, now, "poll"],
                )
    if _in_memory(group):
        warehouse.execute_over(
            _staged_rows(group, now), lambda source: f"{insert} SELECT {names} FROM {source}"
        )


_GROUP_COUNTS = f"""
SELECT batch_id, count(*) AS messages, COALESCE(sum(CASE WHEN is_final THEN 1 ELSE 0 END), 0) AS final
FROM {MESSAGES.name} WHERE batch_id IN (SELECT DISTINCT batch_id FROM {STATUS_STAGING.name}) GROUP BY batch_id
"""


#: The same counts when the staged batches had no message rows before the merge: the staged rows
#: of registered batches are then exactly their rows (no scan of every8d_messages).
_FIRST_SIGHT_COUNTS = f"""
SELECT s.batch_id, count(*) AS messages,
       COALESCE(sum(CASE WHEN COALESCE(c.is_final, FALSE) THEN 1 ELSE 0 END), 0) AS final
FROM {STATUS_STAGING.name} s
JOIN {BATCHES.name} b ON b.batch_id = s.batch_id
LEFT JOIN every8d_status_codes c ON c.status = s.status
GROUP BY s.batch_id
"""


def merge_fetched(
    warehouse: Warehouse,
    group: Sequence[Fetched],
    *,
    now: datetime,
    options: SyncOptions,
    result: ShardResult,
) -> None:
    """One transaction for ``group``: stage every spool, merge once, then per batch the close
    rules and the poll's bookkeeping, and the replies (the same rules as ``sync.merge_spool``)."""
    mark = time.perf_counter()
    # On DuckDB a group of small spools is not copied into a staging table: the merge reads the
    # group's Arrow table in place, under the staging table's name.
    in_place = warehouse.sql.scans_arrow and len(_in_memory(group)) == len(group)
    with warehouse.transaction(), ExitStack() as staging:
        if in_place:
            staging.enter_context(warehouse.arrow_view(STATUS_STAGING.name, _staged_rows(group, now)))
        else:
            merge.clear_staging(warehouse)
            _stage(warehouse, group, now)
        mark = result.timed("stage", mark)
        counts = merge.merge_staged(warehouse, now=now)
        mark = result.timed("merge", mark)
        held = {
            r["batch_id"]: (int(r["messages"]), int(r["final"]))
            for r in warehouse.query_arrow(
                _FIRST_SIGHT_COUNTS if counts.first_sight else _GROUP_COUNTS
            ).to_pylist()
        }
        changed = counts.changed
        polls = []
        for fetched in group:
            batch, spool = fetched.batch, fetched.spool
            messages, final = held.get(batch.batch_id, (0, 0))
            poll, expired = apply_close_rules(
                warehouse, batch, spool, messages=messages, final=final, now=now, grace=options.expiry_grace
            )
            polls.append(poll)
            changed = changed or expired > 0
            result.listed += spool.total
            result.expired += expired
            result.closed += 1 if poll.closed_reason else 0
        merge.record_polls(warehouse, polls, now=now)
        if changed:
            merge.mark_dirty(warehouse)
        staging.close()
        if not in_place:
            merge.clear_staging(warehouse)
        replies = [f.replies for f in group if f.replies is not None and f.replies.num_rows]
        if replies:
            result.replies += record_replies(warehouse, pa.concat_tables(replies), now=now)
        mark = result.timed("book", mark)
    result.timed("commit", mark)
    result.history_rows += counts.history
    result.message_rows += counts.messages
    result.polled += len(group)
    result.merges += 1


def _group_full(ready: Sequence[Fetched], group_size: int, merge_rows: int) -> bool:
    return len(ready) >= group_size or sum(f.spool.rows for f in ready) >= merge_rows


def _take_group(ready: list[Fetched], group_size: int, merge_rows: int) -> list[Fetched]:
    """The oldest fetched batches, up to ``group_size`` of them and ``merge_rows`` rows (at least one)."""
    count, rows = 0, 0
    for fetched in ready[:group_size]:
        if count and rows + fetched.spool.rows > merge_rows:
            break
        count, rows = count + 1, rows + fetched.spool.rows
    group = ready[:count]
    del ready[:count]
    return group


def _fetch(client: Every8dClient, batch: DueBatch, options: SyncOptions, folder: Path) -> Fetched:
    started = time.perf_counter()
    spool = PageSpool(folder / f"{batch.batch_id}.arrows").write(
        fetch_status_pages(
            client, batch, with_record_ids=options.with_record_ids, concurrency=options.page_concurrency
        )
    )
    replies = fetch_replies(client, batch.batch_id) if options.poll_replies else None
    return Fetched(batch, spool, replies, time.perf_counter() - started)


def sync_shard(
    warehouse: Warehouse,
    client: Every8dClient,
    *,
    shard: int,
    shards: int,
    options: SyncOptions = SyncOptions(),
    concurrency: int = DEFAULT_CONCURRENCY,
    merge_group: int = DEFAULT_MERGE_GROUP,
    merge_rows: int = DEFAULT_MERGE_ROWS,
    merge_every: float = DEFAULT_MERGE_EVERY,
    limit: int = DEFAULT_SHARD_LIMIT,
    clock: Callable[[], datetime] = wall_clock,
) -> ShardResult:
    """Poll this shard's due batches (due at ``clock()`` when it starts) and merge them as they arrive.

    :param merge_group: batches merged per transaction at most (1: commit batch by batch).
    :param merge_rows: status rows merged per transaction at most (a bigger batch goes alone).
    :param merge_every: seconds a fetched batch waits at most for its group to fill before it is merged.
    :param clock: "now" for the due choice and for each merge (the wall clock; tests pass their own).
    :raises ShardIncomplete: after merging everything else, when some batches could not be polled.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in [0, {shards}), not {shard}")
    started = time.perf_counter()
    ensure_tracking_tables(warehouse)
    mine = [b for b in due_batches(warehouse, clock(), limit) if shard_of(b.batch_id, shards) == shard]
    result = ShardResult(shard=shard, shards=shards, batches=len(mine))
    group_size = max(int(merge_group), 1)
    workers = max(int(concurrency), 1)
    with tempfile.TemporaryDirectory(prefix="every8d-shard-", dir=options.spool_dir) as folder:
        ready: list[Fetched] = []

        def flush(group: list[Fetched]) -> None:
            merged = time.perf_counter()
            merge_fetched(warehouse, group, now=clock(), options=options, result=result)
            result.merge_seconds += time.perf_counter() - merged
            for fetched in group:
                fetched.spool.path.unlink(missing_ok=True)

        def fetch(batch: DueBatch) -> Fetched:
            return _fetch(client, batch, options, Path(folder))

        todo = deque(mine)
        window = workers + group_size  # fetched-but-unmerged spools wait on local disk, bounded
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="every8d-shard") as pool:
            running: dict[Future, DueBatch] = {}
            waiting_since: float | None = None  # when the oldest unmerged spool arrived
            while todo or running or ready:
                while todo and len(running) + len(ready) < window:
                    batch = todo.popleft()
                    running[pool.submit(fetch, batch)] = batch
                due = ready and (
                    not running
                    or _group_full(ready, group_size, merge_rows)
                    or time.monotonic() - (waiting_since or 0) >= merge_every
                )
                if running and not due:
                    timeout = (
                        None if not ready else max(merge_every - (time.monotonic() - (waiting_since or 0)), 0)
                    )
                    done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
                    for future in done:
                        batch = running.pop(future)
                        error = future.exception()
                        if error is not None:
                            result.failed += 1
                            result.errors.append(type(error).__name__)
                            log.warning("batch %s not polled: %s", batch.batch_id, error)
                            continue
                        fetched = future.result()
                        result.fetch_seconds += fetched.seconds
                        if not ready:
                            waiting_since = time.monotonic()
                        ready.append(fetched)
                    continue
                if due:
                    group = _take_group(ready, group_size, merge_rows)
                    waiting_since = time.monotonic() if ready else None
                    flush(group)
    result.seconds = time.perf_counter() - started
    log.info(
        "shard %d/%d: %d batch(es) polled in %d merge(s), %d failed, %d listed, %d change(s), %d closed; "
        "%.1fs (fetching %.1fs summed over threads, merging %.1fs)",
        shard,
        shards,
        result.polled,
        result.merges,
        result.failed,
        result.listed,
        result.history_rows,
        result.closed,
        result.seconds,
        result.fetch_seconds,
        result.merge_seconds,
    )
    if result.failed:
        raise ShardIncomplete(result)
    return result
