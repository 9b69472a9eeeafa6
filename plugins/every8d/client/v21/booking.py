"""eraseBooking (SMS and MMS): cancelling a batch's scheduled messages."""

from __future__ import annotations

from every8d.client.results import EraseResult
from every8d.client.v21.common import count_field, decimal_field, raise_for_error_body
from every8d.errors import WireFormatError

ERASE_BOOKING = "eraseBooking.ashx"
MMS_ERASE_BOOKING = "MMS/eraseBooking.ashx"


def parse_erase_response(text: str, endpoint: str = ERASE_BOOKING) -> EraseResult:
    """Parse ``a,b`` (messages deleted, points refunded); an empty body means nothing was found."""
    body = text.strip()
    if not body:
        return EraseResult(found=False)
    raise_for_error_body(body, endpoint)
    fields = body.split(",")
    if len(fields) != 2:
        raise WireFormatError(endpoint, "an erase answer has 2 fields", body)
    return EraseResult(
        found=True,
        deleted=count_field(fields[0], endpoint, "deleted count", body),
        refunded=decimal_field(fields[1], endpoint, "refunded points", body),
    )


def endpoint(mms: bool) -> str:
    """The erase endpoint for SMS or MMS batches."""
    return MMS_ERASE_BOOKING if mms else ERASE_BOOKING
