"""Run a campaign end to end: plan once, finish what an earlier run left, send the rest.

The order is dlt's: a run first finishes what a crashed run left pending.

1. **Plan** (only if the ledger has no complete plan): read, screen, dedupe,
   chunk; store every recipient ``pending`` and every reject.
2. **Budget**: ``max_points`` and the account's credit, before any request.
3. **Resolve** chunks left ``in_flight`` (:mod:`.resolve`) and look up
   recipients of batches that came back short (UNSEND > 0).
4. **Send** the pending chunks in waves: claim (commit ``in_flight``), send
   concurrently, record (commit ``sent`` + batch ids) and register the new
   batches for the status sync; the next wave is on the wire while one is
   recorded, and is claimed before it leaves.
5. **Summarize** from the ledger: counts and points, no numbers.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from every8d.campaign import errors
from every8d.campaign.config import CampaignSpec
from every8d.campaign.ledger import ChunkInfo, SendLedger
from every8d.campaign.outcomes import BatchSent, ChunkOutcome
from every8d.campaign.prepare import plan_audience, write_rejects
from every8d.campaign.progress import Progress
from every8d.campaign.resolve import InDoubtPolicy, park_reason, resolve_chunk
from every8d.campaign.sender import SendSettings, find_unsent, send_chunk

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
STATES_IN_SUMMARY = ("pending", "in_flight", "sent", "sent_unconfirmed", "unsent_no_credit",
                     "unsent_international", "needs_review", "cancelled")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to send): these may change between retries without touching the plan."""

    dry_run: bool = False
    max_points: Decimal | None = None
    check_credit: bool = True
    concurrency: int = DEFAULT_CONCURRENCY
    in_doubt: InDoubtPolicy = "resend_filtered"
    batch_rows: int = 50_000
    audience_format: str | None = None
    rejects_path: Any = None
    plan_memory_limit: str = "128MB"
    progress_every: int = 20
    #: Seconds a request left in doubt is given to finish at the gateway before it is resolved
    #: (None: the connection's connect timeout plus twice its read timeout).
    settle_seconds: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # dag_id, task_id, run_id for the campaign row


def _split_by_chunk(rows: pa.Table) -> dict[int, pa.Table]:
    if rows.num_rows == 0:
        return {}
    return {c: rows.filter(pc.equal(rows.column("chunk"), c)) for c in pc.unique(rows.column("chunk")).to_pylist()}


class CampaignRun:
    """One run of one campaign against one gateway and one warehouse.

    :param hook: an :class:`~every8d.hooks.every8d.Every8dHook` (its sessions are shared by the threads).
    :param warehouse: from :func:`every8d.warehouse.open_warehouse`.
    """

    def __init__(self, spec: CampaignSpec, *, campaign_id: str, hook: Any, warehouse: Any,
                 options: RunOptions | None = None) -> None:
        spec.validate()
        self.spec = spec
        self.campaign_id = campaign_id
        self.hook = hook
        self.wh = warehouse
        self.options = options or RunOptions()
        if self.options.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.ledger = SendLedger(warehouse, campaign_id)
        self.calls = 0  # HTTP requests made by this run (sends, credit, status lookups)
        self.plan_reused = False
        self.started = time.monotonic()
        self.token = uuid.uuid4().hex  # this run's claim on the chunks it sends

    # -- public -----------------------------------------------------------------------------------------

    def run(self, audience: Any) -> dict[str, Any]:
        """Dry run or send; returns the summary (raises a :class:`CampaignError` carrying it on a stop)."""
        return self.dry_run(audience) if self.options.dry_run else self.send(audience)

    def dry_run(self, audience: Any) -> dict[str, Any]:
        """Plan in scratch space and report; writes nothing to the ledger and sends nothing."""
        now = _now()
        planner, stats = plan_audience(self.spec, audience, campaign_id=self.campaign_id, now=now,
                                       suppressed=self._suppressed(), options=self.options)
        with planner:
            if self.options.rejects_path:
                write_rejects(self.options.rejects_path, planner.iter_rejects(), self.campaign_id)
        summary = {"campaign_id": self.campaign_id, "kind": self.spec.kind, "dry_run": True, **stats.as_dict()}
        summary["points_estimated"] = summary.pop("points")
        summary["over_max_points"] = bool(self.options.max_points is not None and stats.points > self.options.max_points)
        summary["credit"] = None
        if self.options.check_credit and stats.recipients:
            try:
                credit = self.hook.get_credit()
                self.calls += 1
                summary["credit"] = str(credit)
                summary["over_credit"] = bool(stats.points > credit)
            except Exception as error:  # informational in a dry run: report, do not fail
                log.warning("dry run: could not read the account's credit: %s", type(error).__name__)
        summary["calls"] = self.calls
        summary["seconds"] = round(time.monotonic() - self.started, 3)
        return summary

    def plan(self, audience: Any) -> dict[str, Any]:
        """Record the plan in the ledger (or find the one recorded) without sending; the campaign's row."""
        with self.wh.transaction():
            self.ledger.ensure_tables()
            campaign = self.ledger.campaign()
        return self._ensure_plan(audience, campaign)

    def send(self, audience: Any) -> dict[str, Any]:
        campaign = self.plan(audience)
        settings = SendSettings(
            kind=campaign["kind"], subject=campaign["subject"] or "", validity_minutes=campaign["validity_minutes"],
            image=campaign["image"], image_type=campaign["image_type"],
        )
        with self.wh.transaction():  # one snapshot of the work left (a few thousand chunk rows at most)
            chunks = self.ledger.chunks()
            open_points = self.ledger.open_points()
        self._check_budget(Decimal(campaign["points"] or 0), open_points)
        pending = [c for c in chunks if c.state == "pending"]
        doubtful = [c for c in chunks if c.state == "in_flight"]
        short = [c for c in chunks if c.state == "sent" and not c.unsent_resolved]
        defer_to = self._quiet_hours_defer() if pending or doubtful else None
        _ = (self.hook.send_session, self.hook.read_session)  # create the pooled sessions before threads share them
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="every8d-send") as pool:
            self._resolve_in_doubt(doubtful, settings, defer_to, pool)
            self._resolve_unsent(short)
            self._send_pending(pending, settings, defer_to, pool)
        return self._finish()

    # -- steps ----------------------------------------------------------------------------------------------

    def _suppressed(self) -> pa.Array | None:
        if not self.spec.apply_suppressions:
            return None
        from every8d.tracking.suppressions import load_suppressed

        return load_suppressed(self.wh)

    def _ensure_plan(self, audience: Any, campaign: dict[str, Any] | None) -> dict[str, Any]:
        """The campaign's row with a complete plan: the ledger's, or a new one (a crashed planning is redone)."""
        if campaign is not None and campaign["state"] in ("planned", "done"):
            self.plan_reused = True
            if campaign["fingerprint"] != self.spec.fingerprint():
                log.warning(
                    "campaign %s was planned with other settings; continuing with the recorded plan "
                    "(use a new campaign_id to send a different campaign)", self.campaign_id,
                )
            log.info("campaign %s: plan found in the ledger (%s recipients); resuming", self.campaign_id,
                     campaign["recipients"])
            return campaign
        now = _now()
        meta = {
            "kind": self.spec.kind, "fingerprint": self.spec.fingerprint(), "subject": self.spec.subject,
            "validity_minutes": self.spec.validity_minutes, "image": self.spec.image,
            "image_type": self.spec.image_type,
            **{k: self.options.meta.get(k) for k in ("dag_id", "task_id", "run_id")},
        }
        self.ledger.start_plan(meta, now)
        planner, stats = plan_audience(self.spec, audience, campaign_id=self.campaign_id, now=now,
                                       suppressed=self._suppressed(), options=self.options)
        with planner:
            self.ledger.write_plan(planner.iter_plan(), planner.chunks(), planner.iter_rejects(),
                                   kind=self.spec.kind, now=now)
            if self.options.rejects_path:
                write_rejects(self.options.rejects_path, planner.iter_rejects(), self.campaign_id)
            self.ledger.finish_plan(stats, now)
        campaign = self.ledger.campaign()
        assert campaign is not None
        return campaign

    def _check_budget(self, planned_points: Decimal, open_points: Decimal) -> None:
        cap = self.options.max_points
        if cap is not None and planned_points > cap:
            raise errors.BudgetExceededError(
                f"campaign {self.campaign_id} would cost {planned_points} points, above max_points={cap}: "
                "nothing was sent", self.summary(),
            )
        if self.options.check_credit and open_points > 0:
            credit = self.hook.get_credit()
            self.calls += 1
            if open_points > credit:
                raise errors.InsufficientCreditError(
                    f"campaign {self.campaign_id} needs {open_points} more points but the account has {credit}: "
                    "nothing was sent", self.summary(),
                )

    def _quiet_hours_defer(self) -> datetime | None:
        """At send time, quiet hours defer sends meant for "now" (or stop the run under ``reject``)."""
        if self._quiet_now():
            raise errors.QuietHoursError(
                f"campaign {self.campaign_id}: it is quiet hours ({self.spec.quiet_hours}) and the policy is "
                "'reject'; nothing more was sent, run the task again after they end", self.summary(),
            )
        quiet = self.spec.quiet()
        return quiet.next_allowed(_now()) if quiet is not None else None

    def _quiet_now(self) -> bool:
        """True when quiet hours under the ``reject`` policy forbid sending right now."""
        quiet = self.spec.quiet()
        return quiet is not None and quiet.policy == "reject" and quiet.next_allowed(_now()) is not None

    def _register(self, outcomes: Iterable[ChunkOutcome], settings: SendSettings) -> int:
        batches: list[BatchSent] = [b for o in outcomes for b in o.batches]
        if not batches:
            return 0
        from every8d.tracking.batches import register_batches

        validity = settings.validity_minutes or getattr(getattr(self.hook, "settings", None), "validity_minutes", None)
        register_batches(self.wh, [
            {
                "batch_id": b.batch_id, "campaign_id": self.campaign_id, "kind": b.kind, "sent_at": b.sent_at,
                "scheduled_at": b.scheduled_at, "recipients": b.recipients, "points": b.points,
                "validity_minutes": validity,
            }
            for b in batches
        ])
        return len(batches)

    def _resolve_in_doubt(self, doubtful: list[ChunkInfo], settings: SendSettings, defer_to: datetime | None,
                          pool: ThreadPoolExecutor) -> None:
        if not doubtful:
            return
        log.warning("campaign %s: %d chunk(s) left in flight by an earlier run; resolving them first (policy %s)",
                    self.campaign_id, len(doubtful), self.options.in_doubt)
        self._let_in_doubt_requests_settle(doubtful)
        stops = []
        for chunk in doubtful:
            rows = self.ledger.rows([chunk.chunk], ("in_flight",))
            now = _now()
            outcome = resolve_chunk(
                self.hook, chunk, rows, settings, policy=self.options.in_doubt, now=now, defer_to=defer_to,
                executor=pool,
                before_resend=lambda row_numbers, c=chunk.chunk, t=now: self.ledger.note_attempt(c, row_numbers, t),
            )
            self.calls += outcome.calls
            with self.wh.transaction():
                self.ledger.record([outcome], _now())
                self._register([outcome], settings)
            log.info("campaign %s: chunk %d resolved as %s (%d filtered as already sent, %d sent now, %d call(s))",
                     self.campaign_id, chunk.chunk, outcome.state, outcome.filtered, outcome.sent, outcome.calls)
            if not outcome.unsent_resolved:
                self._resolve_unsent(self.ledger.chunks("chunk = ?", [chunk.chunk]))
            if outcome.stop:
                stops.append(outcome)
        self._raise_for_stops(stops)

    def settle_seconds(self) -> float:
        """How long after its last request an in-doubt chunk is left alone (see :meth:`_let_in_doubt_requests_settle`)."""
        if self.options.settle_seconds is not None:
            return self.options.settle_seconds
        settings = getattr(self.hook, "settings", None)
        if settings is None:
            return 0.0
        return settings.connect_timeout + 2 * settings.read_timeout

    def _let_in_doubt_requests_settle(self, doubtful: list[ChunkInfo]) -> None:
        """Wait until the last request of each in-doubt chunk cannot still be running at the gateway.

        A request that timed out on our side may still be executing there; a
        filtered resend that arrived first would not see it, and the text would
        go out twice.  After a normal retry delay there is nothing to wait for.
        """
        now = _now()
        resent = [c for c in doubtful if park_reason(c, self.options.in_doubt, now) is None]  # parking needs no wait
        times = [c.updated_at or c.in_flight_at for c in resent if (c.updated_at or c.in_flight_at)]
        if not times:
            return
        wait = self.settle_seconds() - (now - max(times)).total_seconds()
        if wait > 0:
            log.info("campaign %s: waiting %.0fs for requests that may still be running at the gateway",
                     self.campaign_id, wait)
            time.sleep(wait)

    def _resolve_unsent(self, chunks: list[ChunkInfo]) -> None:
        """Mark per recipient which messages of short batches were not sent (status 301 / 500)."""
        for chunk in chunks:
            rows = self.ledger.rows([chunk.chunk], ("sent",))
            try:
                updates = find_unsent(self.hook, chunk, rows)
            except Exception as error:
                log.warning("campaign %s: could not list chunk %d's batch to find unsent messages (%s); "
                            "the next run retries", self.campaign_id, chunk.chunk, type(error).__name__)
                continue
            finally:
                self.calls += 1
            self.ledger.mark_unsent(chunk.chunk, updates, _now())
            log.warning("campaign %s: chunk %d: %s", self.campaign_id, chunk.chunk,
                        ", ".join(f"{len(r)} {state}" for state, r in updates) or "no unsent message listed")

    def _waves(self, chunks: list[ChunkInfo]) -> Iterator[list[ChunkInfo]]:
        size = self.options.concurrency * 2
        for start in range(0, len(chunks), size):
            yield chunks[start : start + size]

    def _submit(self, pool: ThreadPoolExecutor, wave: list[ChunkInfo], rows: pa.Table, settings: SendSettings,
                defer_to: datetime | None) -> tuple[list[tuple[ChunkInfo, pa.Table]], list[Any]]:
        """Start a claimed wave's requests; the chunks another runner won are not in ``rows`` and are skipped."""
        by_chunk = _split_by_chunk(rows)
        work = [(c, by_chunk[c.chunk]) for c in wave if c.chunk in by_chunk]
        return work, [pool.submit(send_chunk, self.hook, c, r, settings, defer_to) for c, r in work]

    def _send_pending(self, pending: list[ChunkInfo], settings: SendSettings, defer_to: datetime | None,
                      pool: ThreadPoolExecutor) -> None:
        """Send the pending chunks in waves, one wave on the wire while the previous one is recorded.

        Wave *i+1* is claimed (committed ``in_flight``) while wave *i* is on the
        wire, and leaves as soon as wave *i*'s answers are in; wave *i* is then
        recorded, and wave *i+2* claimed, in one transaction while *i+1* is out.
        A run that stops gives its claimed, unsent wave back (``pending``).
        """
        if not pending:
            return
        progress = Progress(self.campaign_id, sum(c.recipients for c in pending), log,
                            every_chunks=self.options.progress_every)
        waves = list(self._waves(pending))
        log.info("campaign %s: sending %d recipient(s) in %d chunk(s), %d at a time",
                 self.campaign_id, progress.total, len(pending), self.options.concurrency)
        with self.wh.transaction():
            claimed = {i: self.ledger.claim([c.chunk for c in waves[i]], _now(), self.token)
                       for i in range(min(2, len(waves)))}
        current = self._submit(pool, waves[0], claimed.pop(0), settings, defer_to)
        stops: list[ChunkOutcome] = []
        quiet_stop = False
        for index in range(len(waves)):
            work, futures = current
            outcomes = [future.result() for future in futures]
            self.calls += sum(o.calls for o in outcomes)
            stops = [o for o in outcomes if o.stop]
            has_next = index + 1 < len(waves)
            # A long campaign may run into quiet hours: re-check before each wave leaves.
            quiet_stop = not stops and has_next and self._quiet_now()
            going_on = has_next and not stops and not quiet_stop
            if going_on:
                quiet = self.spec.quiet()
                if quiet is not None and quiet.policy == "reschedule":
                    defer_to = quiet.next_allowed(_now())
                current = self._submit(pool, waves[index + 1], claimed.pop(index + 1), settings, defer_to)
            with self.wh.transaction():
                self.ledger.record(outcomes, _now())
                self._register(outcomes, settings)
                if going_on and index + 2 < len(waves):
                    claimed[index + 2] = self.ledger.claim([c.chunk for c in waves[index + 2]], _now(), self.token)
                if not going_on and index + 1 in claimed:
                    claimed.pop(index + 1)
                    self.ledger.release([c.chunk for c in waves[index + 1]], self.token, _now())
            settled = sum(item[1].num_rows for item, o in zip(work, outcomes) if o.state == "sent")
            progress.add(settled, len(outcomes), sum((o.cost for o in outcomes), Decimal(0)))
            short = [o.chunk for o in outcomes if not o.unsent_resolved]
            if short:
                self._resolve_unsent(self.ledger.chunks(f"chunk IN ({', '.join('?' for _ in short)})", short))
            if not going_on:
                break
        progress.report()
        self._raise_for_stops(stops)
        if quiet_stop:
            self._quiet_hours_defer()  # raises QuietHoursError with the summary

    def _raise_for_stops(self, stops: list[ChunkOutcome]) -> None:
        if not stops:
            return
        reasons = {o.stop for o in stops}
        first = stops[0]
        detail = f"{len(stops)} chunk(s); first: chunk {first.chunk}: {first.error or first.stop}"
        if "no_credit" in reasons:
            raise errors.InsufficientCreditError(
                f"campaign {self.campaign_id}: the gateway ran out of credit (UNSEND > 0); unsent recipients are "
                f"recorded as unsent_no_credit, the rest stay pending ({detail})", self.summary(),
            )
        if reasons <= {"outcome_unknown", "unreachable"}:
            raise errors.CampaignInterruptedError(
                f"campaign {self.campaign_id} stopped: {detail}. Chunks without an answer stay in_flight and "
                "are resolved through the 24 h duplicate filter by the retry before anything new is sent",
                self.summary(),
            )
        raise errors.CampaignRefusedError(
            f"campaign {self.campaign_id} stopped: the gateway refused a request ({detail}); its recipients are "
            "pending again", self.summary(),
        )

    def _finish(self) -> dict[str, Any]:
        with self.wh.transaction():
            summary = self.summary()
            settled = not self.ledger.chunks("state IN ('pending', 'in_flight') OR NOT unsent_resolved")
            if settled and not summary["needs_review"]:
                self.ledger.finish(_now())
        if summary["needs_review"]:
            raise errors.NeedsReviewError(
                f"campaign {self.campaign_id}: {summary['needs_review']} recipient(s) need review (state "
                "needs_review in every8d_send_ledger): their outcome is unknown and cannot be settled safely",
                summary,
            )
        return summary

    # -- figures ----------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The campaign's figures from the ledger (small: counts and points, never numbers)."""
        with self.wh.transaction():
            campaign = self.ledger.campaign() or {}
            counts = self.ledger.state_counts()
            totals = self.ledger.totals()
            rejects = self.ledger.reject_counts()
        summary: dict[str, Any] = {
            "campaign_id": self.campaign_id,
            "kind": campaign.get("kind", self.spec.kind),
            "dry_run": False,
            "plan_reused": self.plan_reused,
            "audience_rows": int(campaign.get("audience_rows") or 0),
            "recipients": int(campaign.get("recipients") or 0),
            "rejected": int(campaign.get("rejected") or 0),
            "rejected_by_reason": rejects,
            "points_estimated": str(campaign.get("points") if campaign.get("points") is not None else 0),
            "points_charged": str(totals["points_charged"]),
            "points_refunded": str(totals["points_refunded"]),
        }
        for state in STATES_IN_SUMMARY:
            summary[state] = counts.get(state, 0)
        summary["unsent"] = summary["unsent_no_credit"] + summary["unsent_international"]
        summary["batches"] = totals["batches"]
        summary["chunks"] = int(campaign.get("chunks") or 0)
        summary["calls"] = self.calls
        summary["seconds"] = round(time.monotonic() - self.started, 3)
        return summary
