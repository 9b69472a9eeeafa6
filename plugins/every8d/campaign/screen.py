"""Check one audience batch: every row comes out either kept (ready to plan) or rejected with a reason.

Numbers are normalized, texts rendered, send times settled and points
estimated column by column.  A row fails on its first problem, in this
order: number, text, send time, quiet hours.  No row is dropped silently:
``kept + rejected == rows in``, which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from every8d.campaign.audience import ColumnMap
from every8d.campaign.points import sms_points_array
from every8d.campaign.schedule import UTC_TS, QuietHours, effective_send_times, parse_send_times
from every8d.campaign.templating import TemplateSet
from every8d.phones import PhoneNormalizer

KEPT_SCHEMA = pa.schema(
    [
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("recipient_key", pa.string()),
        pa.field("mobile", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("send_at", UTC_TS),
        pa.field("international", pa.bool_(), nullable=False),
        pa.field("points", pa.int64(), nullable=False),
    ]
)
REJECT_SCHEMA = pa.schema(
    [
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("recipient_key", pa.string()),
        pa.field("raw_mobile", pa.string()),
        pa.field("mobile", pa.string()),
    ]
)


def as_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any column as plain ``string`` (large strings, dictionaries and numbers included)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())


@dataclass
class Screen:
    """The checks of one campaign, applied batch by batch.

    :param mms_points: points of one MMS (from the image size); None for SMS.
    """

    columns: ColumnMap
    templates: TemplateSet
    phones: PhoneNormalizer
    now: datetime
    schedule_at: datetime | None = None
    quiet_hours: QuietHours | None = None
    send_time_zone: str = "Asia/Taipei"
    mms_points: Decimal | None = None
    rows_seen: int = 0

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """``(kept, rejected)`` for one batch; row numbers continue across batches (1-based)."""
        n = batch.num_rows
        row_number = pa.array(range(self.rows_seen + 1, self.rows_seen + n + 1), pa.int64())
        self.rows_seen += n
        cols = self.columns
        raw_mobile = as_text(batch.column(cols.mobile))
        key = as_text(batch.column(cols.record_key)) if cols.record_key else pa.nulls(n, pa.string())
        name = (
            pc.fill_null(as_text(batch.column(cols.name)), "")
            if cols.name
            else pc.fill_null(pa.nulls(n, pa.string()), "")
        )

        numbers = self.phones.check(raw_mobile)
        reason, detail = numbers.reason, numbers.detail
        if self.mms_points is not None:
            abroad = pc.and_(numbers.international, pc.is_null(reason))
            reason = pc.if_else(abroad, "international_not_allowed", reason)
            detail = pc.if_else(abroad, "MMS goes to Taiwan numbers only", detail)

        template_ids = batch.column(cols.template) if cols.template else None
        template_id, text, render_error = self.templates.render(batch, template_ids)
        reason, detail = _first(reason, detail, pc.is_valid(render_error), "render_error", render_error)
        empty = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0), False)
        reason, detail = _first(reason, detail, empty, "empty_text", "the rendered text is empty")

        row_at, time_error = (
            parse_send_times(batch.column(cols.send_at), self.send_time_zone)
            if cols.send_at
            else (None, pa.nulls(n, pa.string()))
        )
        reason, detail = _first(reason, detail, pc.is_valid(time_error), "bad_send_time", time_error)
        send_at = effective_send_times(row_at, self.schedule_at, self.now, n)
        if self.quiet_hours is not None:
            inside, next_allowed = self.quiet_hours.check(send_at, self.now)
            if self.quiet_hours.policy == "reject":
                message = f"falls in quiet hours {self.quiet_hours.start:%H:%M}-{self.quiet_hours.end:%H:%M}"
                reason, detail = _first(reason, detail, inside, "quiet_hours", message)
            else:
                send_at = pc.if_else(inside, next_allowed, send_at)

        if self.mms_points is not None:
            points = pc.fill_null(pa.nulls(n, pa.int64()), int(self.mms_points))
        else:
            points = sms_points_array(pc.fill_null(text, ""), numbers.international)

        ok = pc.is_null(reason)
        kept = pa.RecordBatch.from_arrays(
            [
                row_number,
                key,
                numbers.mobile,
                name,
                template_id,
                text,
                send_at,
                numbers.international,
                pc.fill_null(points, 0),
            ],
            names=KEPT_SCHEMA.names,
        ).filter(ok)
        rejected = pa.RecordBatch.from_arrays(
            [row_number, reason, detail, key, raw_mobile, numbers.mobile], names=REJECT_SCHEMA.names
        ).filter(pc.invert(ok))
        return kept.cast(KEPT_SCHEMA), rejected.cast(REJECT_SCHEMA)


def _first(reason: pa.Array, detail: pa.Array, failed: pa.Array, code: str, why) -> tuple[pa.Array, pa.Array]:
    """Set ``code``/``why`` where ``failed`` and no earlier check already failed."""
    new = pc.and_(pc.fill_null(failed, False), pc.is_null(reason))
    return pc.if_else(new, code, reason), pc.if_else(new, why, detail)
