"""Turn screened rows into a send plan: opt-outs, duplicates, routes and chunks, in a scratch DuckDB.

Dedupe and chunking need the whole audience at once; a million rows would
not fit comfortably in Python objects, so the screened batches go into a
throw-away DuckDB file (memory-capped, spilling to disk) and SQL window
functions do the rest.  The plan streams back out in Arrow batches.

Routes: a text shared by at least ``min_group_size`` recipients (default
``DEFAULT_MIN_GROUP_SIZE``, 250; with the same send time), or by every recipient of its template
(a text with no personal fields), goes out as one ``sendSMS`` call per chunk of numbers; every other
text goes through ``SendParamSMS``, one personalized text per recipient with
its own ``Mr`` (record id); MMS always groups by text.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from every8d.arrow_types import UTC_TIME
from every8d.campaign.screen import KEPT_SCHEMA, REJECT_SCHEMA

DEFAULT_CHUNK_SIZE = 500
#: A text goes out as its own ``sendSMS`` batches only when this many recipients share it.  Every
#: batch costs a send call and then a status poll every cycle for up to a day, while a recipient
#: in a personalized ``SendParamSMS`` chunk rides in a batch that exists anyway; so a group is worth
#: its own batch only when it fills at least half a default chunk.  Coincidental groups of a
#: personalized audience (the same name and points: 2-3 recipients) never reach it, so such an
#: audience goes out in ceil(recipients / chunk_size) batches.
DEFAULT_MIN_GROUP_SIZE = DEFAULT_CHUNK_SIZE // 2
DEDUPE_COLUMNS = ("mobile", "recipient_key", "text", "name", "template_id")

PLAN_SCHEMA = pa.schema(
    [
        pa.field("chunk", pa.int32(), nullable=False),
        pa.field("route", pa.string(), nullable=False),
        *KEPT_SCHEMA,
        pa.field("record_id", pa.string(), nullable=False),
    ]
)
CHUNK_SCHEMA = pa.schema(
    [
        pa.field("chunk", pa.int32(), nullable=False),
        pa.field("route", pa.string(), nullable=False),
        pa.field("recipients", pa.int32(), nullable=False),
        pa.field("points", pa.int64(), nullable=False),
        pa.field("send_at", UTC_TIME),
    ]
)


def record_tag(campaign_id: str) -> str:
    """Short stable prefix of the campaign's record ids (``Mr``), unique enough across campaigns."""
    return hashlib.sha1(campaign_id.encode("utf-8")).hexdigest()[:10]


@dataclass
class PlanStats:
    """What the plan holds: counts and points, no numbers."""

    audience_rows: int = 0
    recipients: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    points: Decimal = Decimal(0)
    chunks: int = 0
    calls_by_route: dict[str, int] = field(default_factory=dict)
    recipients_by_route: dict[str, int] = field(default_factory=dict)
    by_template: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "audience_rows": self.audience_rows,
            "recipients": self.recipients,
            "rejected": self.rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "points": str(self.points),
            "chunks": self.chunks,
            "calls_by_route": dict(sorted(self.calls_by_route.items())),
            "recipients_by_route": dict(sorted(self.recipients_by_route.items())),
            "by_template": self.by_template,
        }


class Planner:
    """Spools screened batches to Parquet, then cuts the plan with DuckDB over those files.

    Screened rows are written as they come (one Parquet row group per batch),
    so memory holds one batch, not the audience; DuckDB then reads the files
    and keeps only narrow (row number, key) tables of its own, spilling to the
    scratch directory above ``memory_limit``.

    :param memory_limit: DuckDB's cap, e.g. ``"128MB"``.
    """

    def __init__(self, *, memory_limit: str = "128MB", threads: int = 2, workdir: str | None = None) -> None:
        import duckdb
        import pyarrow.parquet as pq

        self._dir = Path(tempfile.mkdtemp(prefix="every8d-plan-", dir=workdir))
        self.con = duckdb.connect(str(self._dir / "plan.duckdb"))
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute(f"SET temp_directory = '{self._dir / 'spill'}'")
        self.con.execute("SET preserve_insertion_order = false")  # every read here says ORDER BY
        self.con.execute("SET enable_progress_bar = false")
        self._kept_path = self._dir / "kept.parquet"
        self._rejects_path = self._dir / "rejects.parquet"
        self._kept = pq.ParquetWriter(self._kept_path, KEPT_SCHEMA)
        self._rejects = pq.ParquetWriter(self._rejects_path, REJECT_SCHEMA)
        self.audience_rows = 0
        self._finished = False

    def add(self, kept: pa.RecordBatch, rejected: pa.RecordBatch) -> None:
        """Spool one screened batch."""
        self.audience_rows += kept.num_rows + rejected.num_rows
        if kept.num_rows:
            self._kept.write_batch(kept)
        if rejected.num_rows:
            self._rejects.write_batch(rejected)

    def _open_spools(self) -> None:
        """Close the writers and expose the files to SQL (``kept``, ``rejects``)."""
        self._kept.close()
        self._rejects.close()
        self.con.execute(f"CREATE VIEW kept AS SELECT * FROM read_parquet('{self._kept_path}')")
        self.con.register("_empty", REJECT_SCHEMA.empty_table())
        self.con.execute("CREATE TABLE more_rejects AS SELECT * FROM _empty")
        self.con.unregister("_empty")
        self.con.execute(
            f"""CREATE VIEW rejects AS
                SELECT * FROM read_parquet('{self._rejects_path}') UNION ALL SELECT * FROM more_rejects"""
        )

    def finish(
        self,
        *,
        campaign_id: str,
        dedupe_on: Sequence[str] = ("mobile",),
        suppressed: pa.Array | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
        kind: str = "sms",
    ) -> PlanStats:
        """Apply opt-outs and dedupe, then assign routes and chunks; return the plan's figures.

        Besides ``dedupe_on``, a number never gets the same text twice in one
        campaign: rows repeating ``(mobile, text)`` are duplicates whatever the key.
        """
        unknown = [c for c in dedupe_on if c not in DEDUPE_COLUMNS]
        if unknown or not dedupe_on:
            raise ValueError(f"dedupe_on must name some of {list(DEDUPE_COLUMNS)}, not {list(dedupe_on)}")
        if chunk_size < 1 or min_group_size < 1:
            raise ValueError("chunk_size and min_group_size must be at least 1")
        if self._finished:
            raise RuntimeError("the plan is already cut")
        self._finished = True
        self._open_spools()
        con = self.con
        supp = pa.table({"mobile": suppressed if suppressed is not None else pa.array([], pa.string())})
        con.register("_supp", supp.cast(pa.schema([("mobile", pa.string())])))
        con.execute("CREATE TABLE supp AS SELECT DISTINCT mobile FROM _supp")
        con.unregister("_supp")
        con.execute(
            """INSERT INTO more_rejects SELECT k.row_number, 'suppressed', 'opted out (suppression list)',
                   k.recipient_key, NULL, k.mobile
               FROM kept k SEMI JOIN supp s ON k.mobile = s.mobile"""
        )
        # Windows over narrow (row number, key) projections, then one join back to the wide rows:
        # DuckDB never sorts or copies whole rows more than once.
        keys = ", ".join(f'"{c}"' for c in dedupe_on)
        # With the number in the key, a repeated (number, text) is already a repeated key.
        by_text = (
            "first_by_key" if "mobile" in dedupe_on else "min(row_number) OVER (PARTITION BY mobile, text)"
        )
        con.execute(
            f"""CREATE TABLE firsts AS
               SELECT row_number, first_by_key, {by_text} AS first_by_text
               FROM (SELECT row_number, mobile, text,
                            min(row_number) OVER (PARTITION BY {keys}) AS first_by_key
                     FROM kept k ANTI JOIN supp s ON k.mobile = s.mobile)"""
        )
        label = "+".join(dedupe_on)
        con.execute(
            f"""INSERT INTO more_rejects SELECT k.row_number, 'duplicate',
                   CASE WHEN f.first_by_key <> f.row_number THEN 'same {label} as row ' || f.first_by_key
                        ELSE 'same number and text as row ' || f.first_by_text END,
                   k.recipient_key, NULL, k.mobile
               FROM kept k JOIN firsts f ON k.row_number = f.row_number
               WHERE f.first_by_key <> f.row_number OR f.first_by_text <> f.row_number"""
        )
        con.execute(
            """CREATE TABLE groups AS
               SELECT k.row_number,
                      count(*) OVER (PARTITION BY k.text, k.send_at) AS group_size,
                      min(k.row_number) OVER (PARTITION BY k.text, k.send_at) AS group_first,
                      count(*) OVER (PARTITION BY k.template_id, k.send_at) AS template_size
               FROM kept k SEMI JOIN firsts f
                 ON k.row_number = f.row_number AND f.first_by_key = f.row_number
                    AND f.first_by_text = f.row_number"""
        )
        con.execute("DROP TABLE firsts")
        # A text everyone of its template gets is not personalized at all: one sendSMS stream whatever
        # its size (SendParamSMS would make as many batches).  The threshold is for coincidences.
        grouped = (
            "TRUE"
            if kind == "mms"
            else f"(group_size >= {int(min_group_size)} OR group_size = template_size)"
        )
        route = "'mms'" if kind == "mms" else "CASE WHEN grouped THEN 'sms' ELSE 'param' END"
        con.execute(
            f"""CREATE TABLE assigned AS
               WITH routed AS (
                   SELECT row_number, {grouped} AS grouped,
                          CASE WHEN {grouped} THEN group_first ELSE 0 END AS group_key  -- 0: the personalized
                   FROM groups
               ), placed AS (
                   SELECT *, (row_number() OVER (PARTITION BY group_key ORDER BY row_number) - 1)
                             // {int(chunk_size)} AS sub
                   FROM routed
               )
               SELECT row_number, {route} AS route,
                      CAST(dense_rank() OVER (ORDER BY CASE WHEN grouped THEN 0 ELSE 1 END,
                                                       group_key, sub) - 1
                           AS INTEGER) AS chunk
               FROM placed"""
        )
        con.execute("DROP TABLE groups")
        tag = record_tag(campaign_id)
        con.execute(
            f"""CREATE VIEW planned AS
               SELECT a.chunk, a.route, k.row_number, k.recipient_key, k.mobile, k.name, k.template_id,
                      k.text, k.send_at, k.international, k.points, '{tag}-' || k.row_number AS record_id
               FROM kept k JOIN assigned a ON k.row_number = a.row_number"""
        )
        con.execute("DROP TABLE supp")
        return self.stats()

    def stats(self) -> PlanStats:
        con = self.con
        stats = PlanStats(audience_rows=self.audience_rows)
        totals = con.execute(
            "SELECT count(*), coalesce(sum(points), 0), count(DISTINCT chunk) FROM planned"
        ).fetchone()
        assert totals is not None  # an aggregate without GROUP BY answers one row
        recipients, points, chunks = totals
        stats.recipients, stats.points, stats.chunks = int(recipients), Decimal(int(points)), int(chunks)
        stats.rejected_by_reason = dict(
            con.execute("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall()
        )
        stats.rejected = sum(stats.rejected_by_reason.values())
        for route, calls, people in con.execute(
            "SELECT route, count(DISTINCT chunk), count(*) FROM planned GROUP BY route ORDER BY route"
        ).fetchall():
            stats.calls_by_route[route] = int(calls)
            stats.recipients_by_route[route] = int(people)
        rows = con.execute(
            """SELECT template_id, count(*), sum(points), count(DISTINCT text),
                      count(*) FILTER (WHERE international), count(*) FILTER (WHERE send_at IS NOT NULL)
               FROM planned GROUP BY template_id ORDER BY template_id"""
        ).fetchall()
        stats.by_template = [
            {
                "template_id": t,
                "recipients": int(n),
                "points": str(int(p)),
                "distinct_texts": int(d),
                "international": int(i),
                "scheduled": int(s),
            }
            for t, n, p, d, i, s in rows
        ]
        return stats

    def iter_plan(self, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """The planned rows in chunk order."""
        reader = self.con.sql(
            f"SELECT {', '.join(PLAN_SCHEMA.names)} FROM planned ORDER BY chunk, row_number"
        )
        for batch in reader.to_arrow_reader(batch_rows):
            yield batch.cast(PLAN_SCHEMA)

    def iter_rejects(self, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """Every rejected row, in audience order."""
        reader = self.con.sql(f"SELECT {', '.join(REJECT_SCHEMA.names)} FROM rejects ORDER BY row_number")
        for batch in reader.to_arrow_reader(batch_rows):
            yield batch.cast(REJECT_SCHEMA)

    def chunks(self) -> pa.Table:
        """One row per chunk: route, recipients, points, and the shared send time of grouped chunks."""
        table = self.con.sql(
            """SELECT chunk, any_value(route) AS route, CAST(count(*) AS INTEGER) AS recipients,
                      CAST(sum(points) AS BIGINT) AS points,
                      CASE WHEN any_value(route) = 'param' THEN NULL ELSE min(send_at) END AS send_at
               FROM planned GROUP BY chunk ORDER BY chunk"""
        ).to_arrow_table()
        return table.cast(CHUNK_SCHEMA)

    def close(self) -> None:
        """Drop the scratch files (they hold numbers: never leave them behind)."""
        try:
            if not self._finished:
                self._kept.close()
                self._rejects.close()
            self.con.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Planner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
