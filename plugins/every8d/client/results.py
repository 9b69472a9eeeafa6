"""What the client's calls return: plain dataclasses and Arrow tables, the same whatever the API version."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import pyarrow as pa

from every8d.arrow_types import POINTS, UTC_TIME
from every8d.client.statuses import StatusInfo, status_info

# -- sends -------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """What a send call answered.

    :param credit: points left on the account after the send.
    :param sent: messages accepted (``SENDED``).
    :param cost: points charged for this call.
    :param unsent: messages not sent for lack of credit (their status is 301).
    :param batch_id: the batch to query status with; None for legacy answers without one.
    :param filtered: numbers the 24-hour duplicate filter removed (filter endpoint only).
    """

    credit: Decimal
    sent: int
    cost: Decimal
    unsent: int
    batch_id: str
    filtered: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParamRecipient:
    """One recipient of a SendParamSMS call.

    :param mobile: the number, as the gateway accepts it (E.164 or 09xxxxxxxx).
    :param params: up to five values for ``%field1%``..``%field5%``; with no
        template, a single value that is the whole text.
    :param record_id: ``Mr``, echoed back in status pushes and the JSON status form.
    :param send_at: this recipient's own schedule time (aware datetime).
    """

    mobile: str
    params: Sequence[str] = ()
    name: str = ""
    email: str = ""
    record_id: str = ""
    send_at: datetime | None = None


# -- bookings ----------------------------------------------------------------------


@dataclass(frozen=True)
class EraseResult:
    """Outcome of cancelling a scheduled batch; ``found=False`` for the documented empty body."""

    found: bool
    deleted: int = 0
    refunded: Decimal = Decimal(0)
    #: True when the answer was lost and the cancellation was read from the batch's status (303 rows).
    confirmed_by_status: bool = False


# -- delivery status -----------------------------------------------------------------

STATUS_PAGE_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("mobile", pa.string(), nullable=False),
        pa.field("sent_at", UTC_TIME),
        pa.field("points", POINTS),
        pa.field("status", pa.int32(), nullable=False),
        pa.field("received_at", UTC_TIME),
        pa.field("record_id", pa.string()),
    ]
)


@dataclass(frozen=True)
class DeliveryStatus:
    """One message's status as listed by getDeliveryStatus."""

    name: str
    mobile: str
    sent_at: datetime | None
    points: Decimal | None
    status: int
    received_at: datetime | None = None
    record_id: str | None = None

    @property
    def info(self) -> StatusInfo:
        return status_info(self.status)


@dataclass(frozen=True)
class StatusPage:
    """One or more pages of a batch's status: the batch's count line and the rows as Arrow.

    ``page_rows`` and ``page_totals`` keep what each page held and what its count
    line said, so a caller can prove the listing complete (:func:`listing_problem`).
    """

    total: int
    table: pa.Table = field(repr=False)
    page_rows: tuple[int, ...] = ()
    page_totals: tuple[int, ...] = ()

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def records(self) -> Iterator[DeliveryStatus]:
        """The page as dataclasses, for callers who want objects rather than columns."""
        for row in self.table.to_pylist():
            yield DeliveryStatus(**row)


# -- replies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A recipient's reply to a batch; ``replied_at`` in UTC."""

    name: str
    mobile: str
    content: str
    replied_at: datetime


@dataclass(frozen=True)
class ReplyPage:
    total: int
    replies: tuple[Reply, ...]

    @property
    def page_rows(self) -> tuple[int, ...]:
        return (len(self.replies),)

    @property
    def page_totals(self) -> tuple[int, ...]:
        return (self.total,)
