"""Send one chunk and say what happened, in ledger terms.

The request body is built per chunk from the ledger's rows: a ``sendSMS`` (or
``sendMMS``) with many numbers when the chunk shares one text, a
``SendParamSMS`` with one text and ``Mr`` per recipient otherwise.  Errors
become outcomes by class, never by message: a request that never left goes
back to ``pending``, one that left without an answer stays ``in_flight`` for
:mod:`.resolve`, a refusal goes back to ``pending`` and stops the campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from every8d.campaign.ledger import ChunkInfo
from every8d.campaign.outcomes import BatchSent, ChunkOutcome, RowUpdate, StopReason
from every8d.client import Every8dClient, ParamRecipient, SendResult
from every8d.errors import (
    GatewayError,
    GatewayUnreachableError,
    SendOutcomeUnknownError,
    TemporaryGatewayError,
)
from every8d.phones import observed_mobile

#: Gateway codes after which nobody knows what was sent (-99: unknown error on the gateway).
AMBIGUOUS_CODES = frozenset({-99})


@dataclass(frozen=True)
class SendSettings:
    """What every request of the campaign carries besides recipients and texts."""

    kind: str  # sms | mms
    subject: str = ""
    validity_minutes: int | None = None
    image: bytes | None = None
    image_type: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def chunk_schedule(chunk: ChunkInfo, defer_to: datetime | None) -> datetime | None:
    """The chunk's own send time, else ``defer_to`` (quiet hours at send time), else None (at once)."""
    if chunk.send_at is not None and chunk.send_at > _now():
        return chunk.send_at
    return defer_to


def _single_text(rows: pa.Table, chunk: int) -> str:
    texts = set(rows.column("text").to_pylist())
    if len(texts) != 1:
        raise RuntimeError(f"chunk {chunk} should share one text but has {len(texts)}")  # a planning bug
    return texts.pop()


def call_gateway(
    client: Every8dClient,
    chunk: ChunkInfo,
    rows: pa.Table,
    settings: SendSettings,
    defer_to: datetime | None = None,
) -> SendResult:
    """Make the chunk's one request; errors propagate for :func:`send_chunk` to classify."""
    schedule = chunk_schedule(chunk, defer_to)
    mobiles = rows.column("mobile").to_pylist()
    common: dict[str, Any] = {"subject": settings.subject, "validity_minutes": settings.validity_minutes}
    if chunk.route == "sms":
        return client.send_sms(_single_text(rows, chunk.chunk), mobiles, schedule_at=schedule, **common)
    if chunk.route == "mms":
        if settings.image is None:
            raise ValueError("an MMS campaign needs its image")
        return client.send_mms(
            _single_text(rows, chunk.chunk),
            mobiles,
            image=settings.image,
            image_type=settings.image_type,
            schedule_at=schedule,
            **common,
        )
    now = _now()
    recipients = [
        ParamRecipient(
            mobile=mobile,
            params=(text,),
            name=name or "",
            record_id=record_id,
            send_at=send_at if send_at is not None and send_at > now else defer_to,
        )
        for mobile, text, name, record_id, send_at in zip(
            mobiles,
            rows.column("text").to_pylist(),
            rows.column("name").to_pylist(),
            rows.column("record_id").to_pylist(),
            rows.column("send_at").to_pylist(),
            strict=True,
        )
    ]
    return client.send_param_sms(recipients, **common)


def scheduled_at(chunk: ChunkInfo, rows: pa.Table, defer_to: datetime | None) -> datetime | None:
    """When the batch goes out, for the status sync: the shared time, or the earliest per-row time."""
    if chunk.route != "param":
        return chunk_schedule(chunk, defer_to)
    times = [t for t in rows.column("send_at").to_pylist() if t is not None and t > _now()]
    if len(times) == rows.num_rows and times:
        return min(times)
    return defer_to


def request_schedule(chunk: ChunkInfo, rows: pa.Table, defer_to: datetime | None) -> datetime | None:
    """The latest send time a request for these rows carries (None: all at once).

    Stamped with the request: an in-doubt scheduled message is not handed on
    before that time, so the 24 h filter cannot see it yet (:mod:`.resolve`).
    """
    if chunk.route != "param":
        return chunk_schedule(chunk, defer_to)
    now = _now()
    times = [t if t is not None and t > now else defer_to for t in rows.column("send_at").to_pylist()]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def safe_error(error: BaseException) -> str:
    """An error as text fit for logs and the ledger: gateway code and meaning, never the gateway's
    own message (a -306 names the refused number)."""
    if isinstance(error, GatewayError):
        return f"{error.endpoint} code {error.code}: {error.meaning}"
    return str(error)


def _back_to_pending(chunk: ChunkInfo, error: BaseException, stop: StopReason, calls: int) -> ChunkOutcome:
    """Nothing reached the gateway (or it refused everything): the recipients can be sent later."""
    why = safe_error(error)
    return ChunkOutcome(
        chunk.chunk, "pending", [RowUpdate("pending", error=why)], error=why, stop=stop, calls=calls
    )


def send_chunk(
    client: Every8dClient,
    chunk: ChunkInfo,
    rows: pa.Table,
    settings: SendSettings,
    defer_to: datetime | None = None,
) -> ChunkOutcome:
    """Send the chunk's ``in_flight`` recipients in one request and classify the result."""
    count = rows.num_rows
    try:
        result = call_gateway(client, chunk, rows, settings, defer_to)
    except SendOutcomeUnknownError as error:
        return ChunkOutcome(
            chunk.chunk, "in_flight", error=safe_error(error), stop="outcome_unknown", calls=1
        )
    except GatewayUnreachableError as error:
        return _back_to_pending(chunk, error, "unreachable", calls=1)
    except TemporaryGatewayError as error:
        return _back_to_pending(chunk, error, "unreachable", calls=1)
    except GatewayError as error:
        if error.code in AMBIGUOUS_CODES:  # "unknown error on the gateway": it may have sent part
            return ChunkOutcome(
                chunk.chunk, "in_flight", error=safe_error(error), stop="outcome_unknown", calls=1
            )
        return _back_to_pending(chunk, error, "refused", calls=1)
    except ValueError as error:  # refused before sending (e.g. an MMS subject too long): nothing left
        return _back_to_pending(chunk, error, "refused", calls=0)
    batch = BatchSent(
        batch_id=result.batch_id,
        kind=settings.kind,
        sent_at=_now(),
        scheduled_at=scheduled_at(chunk, rows, defer_to),
        recipients=count,
        points=Decimal(result.cost),
        unsent=result.unsent,
    )
    short = result.unsent > 0 or result.sent < count
    return ChunkOutcome(
        chunk.chunk,
        "sent",
        [RowUpdate("sent", None, result.batch_id)],
        [batch],
        calls=1,
        sent=result.sent,
        unsent=result.unsent,
        cost=Decimal(result.cost),
        unsent_resolved=not short,
        stop="no_credit" if result.unsent > 0 else None,
    )


def find_unsent(client: Every8dClient, chunk: ChunkInfo, rows: pa.Table) -> list[tuple[str, list[int]]]:
    """Which recipients of a short batch were not sent, from the status listing of the chunk's batches.

    Status 301 (no credit) becomes ``unsent_no_credit``, 500 (international not
    enabled) ``unsent_international``.  Rows are matched on ``Mr`` where the
    listing has it (personalized sends), else on the number (unique in a chunk).
    """
    states = {301: "unsent_no_credit", 500: "unsent_international"}
    by_record = dict(
        zip(rows.column("record_id").to_pylist(), rows.column("row_number").to_pylist(), strict=True)
    )
    by_mobile = dict(
        zip(rows.column("mobile").to_pylist(), rows.column("row_number").to_pylist(), strict=True)
    )
    found: dict[str, set[int]] = {}
    batch_ids = sorted({b for b in rows.column("batch_id").to_pylist() if b})
    for batch_id in batch_ids:
        for page in client.iter_delivery_status_pages(
            batch_id, mms=chunk.kind == "mms", with_record_ids=True
        ):
            table = page.table
            for record_id, mobile, status in zip(
                table.column("record_id").to_pylist(),
                table.column("mobile").to_pylist(),
                table.column("status").to_pylist(),
                strict=True,
            ):
                state = states.get(status)
                if state is None:
                    continue
                row = by_record.get(record_id) if record_id else None
                if row is None:
                    row = by_mobile.get(mobile) or by_mobile.get(observed_mobile(str(mobile)))
                if row is not None:
                    found.setdefault(state, set()).add(row)
    return [(state, sorted(rows_)) for state, rows_ in sorted(found.items())]
