"""Run a campaign end to end: plan once, finish what an earlier run left, send the rest.

The order is dlt's: a run first finishes what a crashed run left pending.
Everything a run writes to the ledger it writes holding the campaign's lease
(:mod:`.lease`), so a zombie runner and its retry never both act.

1. **Lease**: take the campaign's lease (wait while a live runner holds it).
2. **Plan** (only if the ledger has no complete plan): read, screen, dedupe,
   chunk; store every recipient ``pending`` and every reject.
3. **Budget**: ``max_points`` and the account's credit (an "insufficient"
   verdict is read twice), against recipients still ``pending``.
4. **Take over and resolve**: chunks an earlier owner claimed but never wrote
   go back to ``pending``; those it wrote are resolved (:mod:`.resolve`)
   once the settle time since the write has passed.
5. **Send** the pending chunks in waves: claim (commit), then per chunk the
   fenced stamp ``written_at`` right before its request, the request, and
   the answer recorded with its batch id.  Lost answers are resolved in the
   same run after the settle time, up to ``max_lost_answers``.
6. **Finish**: ``done`` only when no recipient is left open; the summary.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from every8d.campaign import errors
from every8d.campaign.config import CampaignSpec
from every8d.campaign.lease import Lease, db_now, wait_for_lease
from every8d.campaign.ledger import ChunkInfo, SendLedger
from every8d.campaign.outcomes import BatchSent, ChunkOutcome
from every8d.campaign.prepare import plan_audience, write_rejects
from every8d.campaign.progress import Progress
from every8d.campaign.resolve import InDoubtPolicy, resolve_chunk
from every8d.campaign.sender import SendSettings, find_unsent, request_schedule, send_chunk
from every8d.client import ClientSettings, Every8dClient

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
#: Lost answers one run resolves itself before it gives up (the gateway keeps losing them):
#: see docs/exactly-once.md.
DEFAULT_MAX_LOST_ANSWERS = 5
STATES_IN_SUMMARY = (
    "pending",
    "in_flight",
    "sent",
    "sent_unconfirmed",
    "unsent_no_credit",
    "unsent_international",
    "needs_review",
    "cancelled",
)


def _now() -> datetime:
    return datetime.now(UTC)


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
    #: Seconds a request left in doubt is given to finish at the gateway before it is resolved, counted
    #: from the moment it was written (None: the connection's connect timeout plus twice its read timeout).
    settle_seconds: float | None = None
    #: How long one renewal of the campaign lease holds (None: three request deadlines, at least 30 s).
    lease_seconds: float | None = None
    #: Lost answers this run resolves itself; one more and it stops (retryable).
    max_lost_answers: int = DEFAULT_MAX_LOST_ANSWERS
    #: Seconds to wait while another live runner holds the lease before giving up (retryable).
    busy_timeout: float = 900.0
    meta: dict[str, Any] = field(default_factory=dict)  # dag_id, task_id, run_id for the campaign row


def _split_by_chunk(rows: pa.Table) -> dict[int, pa.Table]:
    if rows.num_rows == 0:
        return {}
    return {
        c: rows.filter(pc.equal(rows.column("chunk"), c)) for c in pc.unique(rows.column("chunk")).to_pylist()
    }


class CampaignRun:
    """One run of one campaign against one gateway and one warehouse.

    :param client: the gateway, an :class:`~every8d.client.Every8dClient` (shared by the threads), e.g.
        ``Every8dHook(...).get_client()``; ``hook`` is its former name.
    :param warehouse: from :func:`every8d.warehouse.open_warehouse` (the run serializes its threads on it).
    """

    def __init__(
        self,
        spec: CampaignSpec,
        *,
        campaign_id: str,
        client: Every8dClient | None = None,
        warehouse: Any,
        options: RunOptions | None = None,
        hook: Every8dClient | None = None,
    ) -> None:
        spec.validate()
        self.spec = spec
        self.campaign_id = campaign_id
        self._client = client if client is not None else hook
        self.wh = warehouse
        self.options = options or RunOptions()
        if self.options.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.options.max_lost_answers < 0:
            raise ValueError("max_lost_answers must be 0 or more")
        self.ledger = SendLedger(warehouse, campaign_id)
        self.calls = 0  # HTTP requests made by this run (sends, credit, status lookups)
        self.plan_reused = False
        self.started = time.monotonic()
        self.token = uuid.uuid4().hex  # this run's claim on the campaign and the chunks it sends
        self.lock = threading.RLock()  # the warehouse object is not thread-safe
        lease = self.lease_seconds()
        if lease <= self.request_deadline():
            raise ValueError(
                f"lease_seconds ({lease}) must be longer than a request's deadline "
                f"({self.request_deadline()} s: connect plus read timeout)"
            )
        self.lease = Lease(warehouse, campaign_id, self.token, lease, self.lock)
        self.lost_answers = 0

    # -- public -----------------------------------------------------------------------------------------

    @property
    def client(self) -> Every8dClient:
        """The gateway; a run that only reads or settles its ledger (tests, ``release``) may have none."""
        if self._client is None:
            raise TypeError(
                f"campaign {self.campaign_id}: this run was given no client to call the gateway with"
            )
        return self._client

    def run(self, audience: Any) -> dict[str, Any]:
        """Dry run or send; returns the summary (raises a :class:`CampaignError` carrying it on a stop)."""
        return self.dry_run(audience) if self.options.dry_run else self.send(audience)

    def dry_run(self, audience: Any) -> dict[str, Any]:
        """Plan in scratch space and report; writes nothing to the ledger and sends nothing."""
        now = _now()
        planner, stats = plan_audience(
            self.spec,
            audience,
            campaign_id=self.campaign_id,
            now=now,
            suppressed=self._suppressed(),
            options=self.options,
        )
        with planner:
            if self.options.rejects_path:
                write_rejects(self.options.rejects_path, planner.iter_rejects(), self.campaign_id)
        summary = {
            "campaign_id": self.campaign_id,
            "kind": self.spec.kind,
            "dry_run": True,
            **stats.as_dict(),
        }
        summary["points_estimated"] = summary.pop("points")
        summary["over_max_points"] = bool(
            self.options.max_points is not None and stats.points > self.options.max_points
        )
        summary["credit"] = None
        if self.options.check_credit and stats.recipients:
            try:
                credit = self.client.get_credit()
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
        if not self._acquire():
            return self._campaign_row()
        try:
            return self._ensure_plan(audience)
        finally:
            self.lease.release()

    def send(self, audience: Any) -> dict[str, Any]:
        if not self._acquire():
            log.info("campaign %s: another runner finished it meanwhile", self.campaign_id)
            return self.summary()
        try:
            return self._send_holding_lease(audience)
        except errors.LeaseLostError as error:
            if not error.summary:
                error.summary = self.summary()
            raise
        finally:
            self.lease.release()

    # -- settings -----------------------------------------------------------------------------------------

    def _client_settings(self) -> ClientSettings | None:
        """The client's timeouts and validity; none for a run given no client (it sends nothing)."""
        return self._client.settings if self._client is not None else None

    def request_deadline(self) -> float:
        """Seconds one request may take on our side (connect plus read timeout)."""
        settings = self._client_settings()
        if settings is None:
            return 0.0
        return float(settings.connect_timeout + settings.read_timeout)

    def settle_seconds(self) -> float:
        """How long after it was written an in-doubt request is left alone.

        It may still run at the gateway.
        """
        if self.options.settle_seconds is not None:
            return self.options.settle_seconds
        settings = self._client_settings()
        if settings is None:
            return 0.0
        return settings.connect_timeout + 2 * settings.read_timeout

    def lease_seconds(self) -> float:
        if self.options.lease_seconds is not None:
            return float(self.options.lease_seconds)
        return max(30.0, 3 * self.request_deadline())

    # -- lease and ledger access ----------------------------------------------------------------------

    @contextmanager
    def _fenced(self) -> Iterator[None]:
        """A ledger write that commits only while this run holds the lease."""
        with self.lease.fenced():
            yield

    @contextmanager
    def _read(self) -> Iterator[None]:
        with self.lock, self.wh.transaction():
            yield

    def _acquire(self) -> bool:
        """Create the tables and take the lease; False when another runner finished the campaign meanwhile."""
        with self._read():
            self.ledger.ensure_tables()
        placeholder = {"kind": self.spec.kind, "fingerprint": self.spec.fingerprint()}
        if not wait_for_lease(self.lease, placeholder, self.options.busy_timeout):
            return False
        self.lease.start_heartbeat()
        return True

    def _campaign_row(self) -> dict[str, Any]:
        with self._read():
            campaign = self.ledger.campaign()
        assert campaign is not None
        return campaign

    # -- steps ----------------------------------------------------------------------------------------------

    def _send_holding_lease(self, audience: Any) -> dict[str, Any]:
        campaign = self._ensure_plan(audience)
        settings = SendSettings(
            kind=campaign["kind"],
            subject=campaign["subject"] or "",
            validity_minutes=campaign["validity_minutes"],
            image=campaign["image"],
            image_type=campaign["image_type"],
        )
        with self._fenced():
            released = self.ledger.take_over(self.token, _now())
            chunks = self.ledger.chunks()
            open_points = self.ledger.open_points()
        if released:
            log.warning(
                "campaign %s: %d chunk(s) an earlier runner claimed but never sent are pending again",
                self.campaign_id,
                released,
            )
        self._check_budget(Decimal(campaign["points"] or 0), open_points)
        pending = [c for c in chunks if c.state == "pending"]
        doubtful = [c for c in chunks if c.state == "in_flight"]
        short = [c for c in chunks if c.state in ("sent", "awaiting_batch") and not c.unsent_resolved]
        defer_to = self._quiet_hours_defer() if pending or doubtful else None
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="every8d-send") as pool:
            self._resolve_unsent(short)
            if doubtful:
                log.warning(
                    "campaign %s: %d chunk(s) left in flight by an earlier run; resolving them first "
                    "(policy %s)",
                    self.campaign_id,
                    len(doubtful),
                    self.options.in_doubt,
                )
                self._raise_for_stops(
                    self._resolve_in_doubt([c.chunk for c in doubtful], settings, defer_to, pool)
                )
            self._send_pending(pending, settings, defer_to, pool)
        self._adopt(settings)
        return self._finish()

    def _suppressed(self) -> pa.Array | None:
        if not self.spec.apply_suppressions:
            return None
        from every8d.tracking.suppressions import load_suppressed

        return load_suppressed(self.wh)

    def _ensure_plan(self, audience: Any) -> dict[str, Any]:
        """The campaign's row with a complete plan: the ledger's, or a new one (a crashed planning is redone).

        Runs holding the lease: a planner whose lease expired cannot write its plan any more, and
        no second runner wipes this one.
        """
        campaign = self._campaign_row()
        if campaign["state"] in ("planned", "done"):
            self.plan_reused = True
            if campaign["fingerprint"] != self.spec.fingerprint():
                log.warning(
                    "campaign %s was planned with other settings; continuing with the recorded plan "
                    "(use a new campaign_id to send a different campaign)",
                    self.campaign_id,
                )
            log.info(
                "campaign %s: plan found in the ledger (%s recipients); resuming",
                self.campaign_id,
                campaign["recipients"],
            )
            return campaign
        now = _now()
        meta = {
            "kind": self.spec.kind,
            "fingerprint": self.spec.fingerprint(),
            "subject": self.spec.subject,
            "validity_minutes": self.spec.validity_minutes,
            "image": self.spec.image,
            "image_type": self.spec.image_type,
            **{k: self.options.meta.get(k) for k in ("dag_id", "task_id", "run_id")},
        }
        with self._fenced():
            self.ledger.start_plan(meta, now)
        with self._read():  # the suppression list is read from the warehouse
            suppressed = self._suppressed()
        planner, stats = plan_audience(
            self.spec,
            audience,
            campaign_id=self.campaign_id,
            now=now,
            suppressed=suppressed,
            options=self.options,
        )
        with planner:
            with self._fenced():  # the whole plan, or nothing
                self.ledger.write_plan(
                    planner.iter_plan(),
                    planner.chunks(),
                    planner.iter_rejects(),
                    kind=self.spec.kind,
                    now=now,
                )
                self.ledger.finish_plan(stats, now)
            if self.options.rejects_path:
                write_rejects(self.options.rejects_path, planner.iter_rejects(), self.campaign_id)
        return self._campaign_row()

    def _read_credit(self, tries: int = 3) -> Decimal:
        """The account's credit; a read is safe to repeat, so an unreadable answer is read again.

        Still unreadable after ``tries``: the try stops retry-safe (:class:`ReadFailedError`). The
        client calls a garbled answer terminal (a wrong URL answers HTML every time), but for a read a
        later try is still worth making.
        """
        from every8d.errors import ReadFailedError, WireFormatError

        for attempt in range(1, tries + 1):
            self.calls += 1
            try:
                return self.client.get_credit()
            except (ReadFailedError, WireFormatError) as error:
                if attempt == tries:
                    if isinstance(error, WireFormatError):
                        raise ReadFailedError(
                            error.endpoint, f"{tries} unreadable answers in a row ({error.problem})"
                        ) from error
                    raise
                log.warning(
                    "campaign %s: credit read failed (%s); reading again",
                    self.campaign_id,
                    type(error).__name__,
                )
        raise AssertionError("unreachable")

    def _check_budget(self, planned_points: Decimal, open_points: Decimal) -> None:
        """``max_points`` against the plan; the credit against what is still ``pending`` (each cost once).

        A short credit answer can still parse (``9600.00`` cut to ``960``): an
        "insufficient" verdict is confirmed by a second read before the run stops.
        """
        cap = self.options.max_points
        if cap is not None and planned_points > cap:
            raise errors.BudgetExceededError(
                f"campaign {self.campaign_id} would cost {planned_points} points, above max_points={cap}: "
                "nothing was sent",
                self.summary(),
            )
        if not self.options.check_credit or open_points <= 0:
            return
        credit = self._read_credit()
        if open_points <= credit:
            return
        confirmed = self._read_credit()
        if open_points > confirmed:
            raise errors.InsufficientCreditError(
                f"campaign {self.campaign_id} needs {open_points} more points "
                f"but the account has {confirmed} "
                "(read twice): nothing more was sent; top up and retry",
                self.summary(),
            )
        log.warning(
            "campaign %s: a credit read said %s, the second %s; going on with the second",
            self.campaign_id,
            credit,
            confirmed,
        )

    def _quiet_hours_defer(self) -> datetime | None:
        """At send time, quiet hours defer sends meant for "now" (or stop the run under ``reject``)."""
        if self._quiet_now():
            raise errors.QuietHoursError(
                f"campaign {self.campaign_id}: it is quiet hours ({self.spec.quiet_hours}) and the policy is "
                "'reject'; nothing more was sent, run the task again after they end",
                self.summary(),
            )
        quiet = self.spec.quiet()
        return quiet.next_allowed(_now()) if quiet is not None else None

    def _quiet_now(self) -> bool:
        """True when quiet hours under the ``reject`` policy forbid sending right now."""
        quiet = self.spec.quiet()
        return quiet is not None and quiet.policy == "reject" and quiet.next_allowed(_now()) is not None

    def _adopt(self, settings: SendSettings) -> None:
        """Adopt, from their status pushes, the batches of chunks resolved as already sent.

        See :mod:`.adoption`.
        """
        from every8d.campaign.adoption import adopt_for_campaign

        try:
            result = adopt_for_campaign(
                self.ledger,
                fenced=self._fenced,
                owner=self.token,
                register=lambda outcomes: self._register(outcomes, settings),
            )
        except errors.LeaseLostError:
            raise
        except Exception as error:  # pushes unreadable now: the status DAG's push step adopts later
            log.warning(
                "campaign %s: could not adopt batches from status pushes (%s); the delivery-status "
                "DAG tries again",
                self.campaign_id,
                type(error).__name__,
            )
            return
        with self._read():
            _, awaiting = self.ledger.adopted_totals()
        if awaiting:
            log.warning(
                "campaign %s: %d chunk(s) awaiting_batch: the gateway has their recipients "
                "(sent_unconfirmed) but the batch id is not known yet; it is adopted from the batch's "
                "status pushes (every8d_delivery_status), which needs the account's push URL",
                self.campaign_id,
                awaiting,
            )
        if result.ambiguous:
            log.warning(
                "campaign %s: %d pushed batch(es) match more than one awaiting chunk; not adopted",
                self.campaign_id,
                len(result.ambiguous),
            )

    def _register(self, outcomes: Iterable[ChunkOutcome], settings: SendSettings) -> int:
        batches: list[BatchSent] = [b for o in outcomes for b in o.batches]
        if not batches:
            return 0
        from every8d.tracking.batches import register_batches

        client_settings = self._client_settings()
        validity = settings.validity_minutes or (
            client_settings.validity_minutes if client_settings else None
        )
        register_batches(
            self.wh,
            [
                {
                    "batch_id": b.batch_id,
                    "campaign_id": self.campaign_id,
                    "kind": b.kind,
                    "sent_at": b.sent_at,
                    "scheduled_at": b.scheduled_at,
                    "recipients": b.recipients,
                    "points": b.points,
                    "validity_minutes": validity,
                }
                for b in batches
            ],
        )
        return len(batches)

    def _record(self, outcomes: list[ChunkOutcome], settings: SendSettings) -> None:
        """Write answers holding the lease; without it, keep the batches as stale ones and stop loudly."""
        if not outcomes:
            return
        try:
            with self._fenced():
                self.ledger.record(outcomes, _now())
                self._register(outcomes, settings)
            return
        except errors.LeaseLostError:
            pass
        batches = sum(len(o.batches) for o in outcomes)
        duplicates = 0
        if batches:
            with self._read():
                duplicates = self.ledger.record_stale(outcomes, self.token, _now())
                self._register(outcomes, settings)
            log.error(
                "campaign %s: this runner lost its lease while %d request(s) were out; their %d batch(es) "
                "are recorded in every8d_send_stale_batches; %d recipient(s) were texted twice",
                self.campaign_id,
                len(outcomes),
                batches,
                duplicates,
            )
        raise errors.LeaseLostError(
            f"campaign {self.campaign_id}: another runner took the lease over; this runner stopped "
            f"({batches} late batch(es) recorded as stale, {duplicates} duplicate(s))",
            self.summary(),
        )

    # -- one request -----------------------------------------------------------------------------------

    def _max_write_delay(self) -> float:
        """How long after its stamp a request may still leave: the lease must outlive its deadline."""
        return max(0.0, (self.lease.seconds - self.request_deadline()) / 2)

    def _stamp(self, chunk: int, schedule: datetime | None) -> float:
        """The fenced check-and-stamp right before a request is written; the monotonic time it happened.

        Raises :class:`LeaseLostError` when this runner no longer holds the lease or the chunk.
        """
        with self._fenced():
            if not self.ledger.stamp(chunk, self.token, schedule):
                raise errors.LeaseLostError(
                    f"campaign {self.campaign_id}: chunk {chunk} is no longer this "
                    "runner's; it stops without sending"
                )
        return time.monotonic()

    def _send_one(
        self, chunk: ChunkInfo, rows: pa.Table, settings: SendSettings, defer_to: datetime | None
    ) -> ChunkOutcome | None:
        """Stamp, then send one chunk (a worker thread); None when the chunk or the lease was lost first."""
        try:
            stamped = self._stamp(chunk.chunk, request_schedule(chunk, rows, defer_to))
        except errors.LeaseLostError:
            return None
        if (
            time.monotonic() - stamped > self._max_write_delay()
        ):  # frozen after the stamp: the lease may be gone
            return ChunkOutcome(
                chunk.chunk,
                "in_flight",
                error="stalled between stamp and request; not sent",
                stop="outcome_unknown",
            )
        return send_chunk(self.client, chunk, rows, settings, defer_to)

    # -- in doubt -------------------------------------------------------------------------------------------

    def _settle(self, chunk: ChunkInfo) -> None:
        """Wait until the chunk's last request cannot still be executing at the gateway (warehouse clock)."""
        if chunk.written_at is None:
            return
        while True:
            with self._read():
                now = db_now(self.wh)
            wait = self.settle_seconds() - (now - chunk.written_at).total_seconds()
            if wait <= 0:
                return
            if self.lease.lost.is_set():
                raise errors.LeaseLostError(
                    f"campaign {self.campaign_id}: lease lost while waiting", self.summary()
                )
            log.info(
                "campaign %s: waiting %.1fs for chunk %d's request, which may still run at the gateway",
                self.campaign_id,
                wait,
                chunk.chunk,
            )
            time.sleep(min(wait, max(0.05, self.lease.seconds / 3)))

    def _resolve_in_doubt(
        self,
        chunk_ids: list[int],
        settings: SendSettings,
        defer_to: datetime | None,
        pool: ThreadPoolExecutor,
    ) -> list[ChunkOutcome]:
        """Resolve in-doubt chunks one by one once settled; the outcomes that must stop the run."""
        stops = []
        marks = ", ".join("?" for _ in chunk_ids)
        with self._read():
            doubtful = self.ledger.chunks(f"state = 'in_flight' AND chunk IN ({marks})", chunk_ids)
        for chunk in sorted(doubtful, key=lambda c: (c.written_at or c.updated_at or _now(), c.chunk)):
            if chunk.kind != "mms" and self.options.in_doubt != "needs_review":  # parking needs no wait
                self._settle(chunk)
            with self._read():
                rows = self.ledger.rows([chunk.chunk], ("in_flight",))
                now = db_now(self.wh)
            outcome = resolve_chunk(
                self.client,
                chunk,
                rows,
                settings,
                policy=self.options.in_doubt,
                now=now,
                defer_to=defer_to,
                executor=pool,
                settle=timedelta(seconds=self.settle_seconds()),
                before_resend=partial(self._stamp, chunk.chunk),
            )
            self.calls += outcome.calls
            self._record([outcome], settings)
            log.info(
                "campaign %s: chunk %d resolved as %s (%d filtered as already sent, %d sent now, %d call(s))",
                self.campaign_id,
                chunk.chunk,
                outcome.state,
                outcome.filtered,
                outcome.sent,
                outcome.calls,
            )
            if not outcome.unsent_resolved:
                with self._read():
                    short = self.ledger.chunks("chunk = ?", [chunk.chunk])
                self._resolve_unsent(short)
            if outcome.stop == "outcome_unknown":
                self.lost_answers += 1
            if outcome.stop:
                stops.append(outcome)
        return stops

    def _resolve_unsent(self, chunks: list[ChunkInfo]) -> None:
        """Mark per recipient which messages of short batches were not sent (status 301 / 500)."""
        for chunk in chunks:
            with self._read():
                rows = self.ledger.rows([chunk.chunk], ("sent",))
            try:
                updates = find_unsent(self.client, chunk, rows)
            except Exception as error:
                log.warning(
                    "campaign %s: could not list chunk %d's batch to find unsent messages (%s); "
                    "the next run retries",
                    self.campaign_id,
                    chunk.chunk,
                    type(error).__name__,
                )
                continue
            finally:
                self.calls += 1
            with self._fenced():
                self.ledger.mark_unsent(chunk.chunk, updates, _now())
            log.warning(
                "campaign %s: chunk %d: %s",
                self.campaign_id,
                chunk.chunk,
                ", ".join(f"{len(r)} {state}" for state, r in updates) or "no unsent message listed",
            )

    # -- sending ---------------------------------------------------------------------------------------------

    def _waves(self, chunks: list[ChunkInfo]) -> Iterator[list[ChunkInfo]]:
        size = self.options.concurrency * 2
        for start in range(0, len(chunks), size):
            yield chunks[start : start + size]

    def _send_pending(
        self,
        pending: list[ChunkInfo],
        settings: SendSettings,
        defer_to: datetime | None,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Send the pending chunks in waves; resolve this run's lost answers in the same run.

        Each wave is claimed in one fenced transaction; each chunk's request is
        stamped (fenced) by its worker right before it is written; the wave's
        answers are recorded in one fenced transaction.  A lost answer does not
        stop the run: once the settle time since its write has passed, the run
        resolves it and goes on.  Past ``max_lost_answers`` it stops (retryable).
        """
        if not pending:
            return
        progress = Progress(
            self.campaign_id,
            sum(c.recipients for c in pending),
            log,
            every_chunks=self.options.progress_every,
        )
        log.info(
            "campaign %s: sending %d recipient(s) in %d chunk(s), %d at a time",
            self.campaign_id,
            progress.total,
            len(pending),
            self.options.concurrency,
        )
        unknown: list[int] = []
        stops: list[ChunkOutcome] = []
        quiet_stop = False
        for index, wave in enumerate(self._waves(pending)):
            if index and self._quiet_now():  # a long campaign may run into quiet hours
                quiet_stop = True
                break
            quiet = self.spec.quiet()
            if index and quiet is not None and quiet.policy == "reschedule":
                defer_to = quiet.next_allowed(_now())
            with self._fenced():
                claimed = self.ledger.claim([c.chunk for c in wave], _now(), self.token)
            by_chunk = _split_by_chunk(claimed)
            work = [(c, by_chunk[c.chunk]) for c in wave if c.chunk in by_chunk]
            futures = [pool.submit(self._send_one, c, r, settings, defer_to) for c, r in work]
            results = [future.result() for future in futures]
            outcomes = [o for o in results if o is not None]
            self.calls += sum(o.calls for o in outcomes)
            self._record(outcomes, settings)
            if len(outcomes) < len(results):  # a stamp found the lease gone: stop without sending more
                with self._read():
                    self.ledger.release([c.chunk for c, _ in work], self.token, _now())
                raise errors.LeaseLostError(
                    f"campaign {self.campaign_id}: another runner took the lease over; this runner stopped "
                    "without sending the rest",
                    self.summary(),
                )
            lost = [o.chunk for o in outcomes if o.stop == "outcome_unknown"]
            unknown += lost
            self.lost_answers += len(lost)
            stops = [o for o in outcomes if o.stop and o.stop != "outcome_unknown"]
            sent = {o.chunk for o in outcomes if o.state == "sent"}
            progress.add(
                sum(r.num_rows for c, r in work if c.chunk in sent),
                len(outcomes),
                sum((o.cost for o in outcomes), Decimal(0)),
            )
            short = [o.chunk for o in outcomes if not o.unsent_resolved]
            if short:
                with self._read():
                    found = self.ledger.chunks(f"chunk IN ({', '.join('?' for _ in short)})", short)
                self._resolve_unsent(found)
            if stops or self.lost_answers > self.options.max_lost_answers:
                break
        progress.report()
        if unknown and not stops and self.lost_answers <= self.options.max_lost_answers:
            log.warning(
                "campaign %s: %d answer(s) lost; resolving them in this run once they settled",
                self.campaign_id,
                len(unknown),
            )
            stops = self._resolve_in_doubt(unknown, settings, defer_to, pool)
        elif unknown:
            stops = stops or [
                ChunkOutcome(
                    unknown[0],
                    "in_flight",
                    error=(
                        f"{self.lost_answers} lost answers in this run "
                        f"(limit {self.options.max_lost_answers})"
                    ),
                    stop="outcome_unknown",
                )
            ]
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
                f"campaign {self.campaign_id}: the gateway ran out of credit (UNSEND > 0); "
                f"unsent recipients are "
                f"recorded as unsent_no_credit, the rest stay pending ({detail})",
                self.summary(),
            )
        if reasons <= {"outcome_unknown", "unreachable"}:
            raise errors.CampaignInterruptedError(
                f"campaign {self.campaign_id} stopped: {detail}. Chunks without an answer stay in_flight and "
                "are resolved through the 24 h duplicate filter by the retry before anything new is sent",
                self.summary(),
            )
        raise errors.CampaignRefusedError(
            f"campaign {self.campaign_id} stopped: the gateway refused a request ({detail}); "
            "its recipients are "
            "pending again",
            self.summary(),
        )

    def _finish(self) -> dict[str, Any]:
        """``done`` only when no recipient is left open (decided from recipients, not chunk states)."""
        with self._fenced():
            open_recipients = self.ledger.open_recipients()
            unresolved = self.ledger.chunks("NOT unsent_resolved")
            summary = self.summary()
            if not open_recipients and not unresolved and not summary["needs_review"]:
                self.ledger.finish(_now())
        if summary["needs_review"]:
            raise errors.NeedsReviewError(
                f"campaign {self.campaign_id}: {summary['needs_review']} recipient(s) need review (state "
                "needs_review in every8d_send_ledger): their outcome is unknown and cannot be settled safely",
                summary,
            )
        if open_recipients:
            raise errors.CampaignInterruptedError(
                f"campaign {self.campaign_id}: {open_recipients} recipient(s) "
                "are still pending or in flight; "
                "the retry sends or resolves them",
                summary,
            )
        return summary

    # -- figures ---------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The campaign's figures from the ledger (small: counts and points, never numbers)."""
        with self._read():
            campaign = self.ledger.campaign() or {}
            counts = self.ledger.state_counts()
            totals = self.ledger.totals()
            rejects = self.ledger.reject_counts()
            stale_batches, duplicates = self.ledger.stale_totals()
            adopted_batches, awaiting_batch = self.ledger.adopted_totals()
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
        summary["stale_batches"] = stale_batches  # answers a runner got after losing its lease
        summary["duplicates"] = duplicates  # recipients those texted a second time (should be 0)
        summary["adopted_batches"] = (
            adopted_batches  # batches learned from status pushes (their answer was lost)
        )
        summary["awaiting_batch"] = (
            awaiting_batch  # chunks whose batch id is not known yet (docs/exactly-once.md)
        )
        summary["lost_answers"] = self.lost_answers
        summary["chunks"] = int(campaign.get("chunks") or 0)
        summary["calls"] = self.calls
        summary["seconds"] = round(time.monotonic() - self.started, 3)
        return summary
