"""What every API 2.1 endpoint shares: the path, error bodies and their codes, Taipei times, number fields."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from every8d.errors import GatewayError, WireFormatError

API_PATH = "API21/HTTP/"
TAIPEI = ZoneInfo("Asia/Taipei")
SCHEDULE_FORMAT = "%Y%m%d%H%M%S"
LISTING_TIME_FORMAT = "%Y/%m/%d %H:%M:%S"


# -- error bodies ------------------------------------------------------------

ERROR_MEANINGS: dict[int, str] = {
    -99: "unknown error on the gateway: contact the vendor",
    -100: "bad account or password",
    -101: "bad password",
    -300: "account and password must not be empty",
    -24: "message content is empty",
    -27: "destination number is empty",
    -306: "bad mobile number format",
    -303: "MMS subject too long",
    -304: "MMS image missing or invalid",
    -305: "MMS image type not supported (jpg, jpeg, png, gif)",
    -314: "MMS image too large",
    -98: "every number was filtered: the same text was sent to it within 24 hours",
    -6: "bad schedule time format",
    -3: "not found",
    -4: "already deleted or already sent",
    -8: "temporarily unavailable, try again later",
}
_ENDPOINT_MEANINGS: dict[tuple[str, int], str] = {
    ("eraseBooking.ashx", -3): "booking not found",
    ("MMS/eraseBooking.ashx", -3): "booking not found",
    ("eraseBooking.ashx", -4): "booking already deleted or already sent",
    ("MMS/eraseBooking.ashx", -4): "booking already deleted or already sent",
}


def error_meaning(endpoint: str, code: int) -> str:
    """English meaning of a gateway error code as answered by ``endpoint``."""
    return _ENDPOINT_MEANINGS.get((endpoint, code)) or ERROR_MEANINGS.get(code, f"unknown error code {code}")


_ERROR_BODY = re.compile(r"^-(\d+)(?:\s*,\s*(.*))?$", re.DOTALL)


def parse_error_body(text: str) -> tuple[int, str] | None:
    """``(-code, message)`` when ``text`` is an error body ``-<code>,<message>``, else None."""
    match = _ERROR_BODY.match(text.strip())
    if not match:
        return None
    return -int(match.group(1)), (match.group(2) or "").strip()


def gateway_error(endpoint: str, code: int, message: str = "") -> GatewayError:
    """The exception for gateway error ``code`` on ``endpoint`` (class chosen by code)."""
    return GatewayError(endpoint, code, error_meaning(endpoint, code), message)


def raise_for_error_body(text: str, endpoint: str) -> None:
    """Raise the matching :class:`GatewayError` when ``text`` is an error body."""
    parsed = parse_error_body(text)
    if parsed is not None:
        raise gateway_error(endpoint, *parsed)


# -- times ----------------------------------------------------------------------


def format_schedule_time(when: datetime) -> str:
    """``when`` as the gateway's ``ST`` value: ``yyyyMMddHHmmss`` in Asia/Taipei.

    The machine's own zone is never used: a naive datetime is refused.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("schedule times must be timezone-aware (the gateway wants Asia/Taipei time)")
    return when.astimezone(TAIPEI).strftime(SCHEDULE_FORMAT)


def parse_taipei_time(text: str, fmt: str = LISTING_TIME_FORMAT) -> datetime:
    """A gateway time string (Taipei local time) as an aware datetime."""
    return datetime.strptime(text.strip(), fmt).replace(tzinfo=TAIPEI)


# -- fields ---------------------------------------------------------------------


def decimal_field(value: str, endpoint: str, what: str, body: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise WireFormatError(endpoint, f"{what} is not a number", body) from None
    if not number.is_finite():
        raise WireFormatError(endpoint, f"{what} is not a finite number", body)
    return number


def count_field(value: str, endpoint: str, what: str, body: str) -> int:
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        raise WireFormatError(endpoint, f"{what} is not a count", body)
    return int(value)


def split_total(text: str, endpoint: str) -> tuple[int, str]:
    body = text.lstrip("\ufeff")
    head, _, rest = body.partition("\n")
    head = head.strip()
    if not head:
        raise WireFormatError(endpoint, "empty answer", text)
    if head.startswith("-"):
        raise_for_error_body(body, endpoint)
    if not head.isascii() or not head.isdigit():
        raise WireFormatError(endpoint, "first line is not the batch's message count", text)
    return int(head), rest


_LISTING_BREAKERS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")


def clean_name(value: str) -> str:
    """``value`` with tabs, line breaks and other control characters turned into one space.

    NAME comes back in every status and reply listing, which are tab- and
    line-separated: one tab or newline there makes the batch unreadable.
    """
    return _LISTING_BREAKERS.sub(" ", value).strip() if value else value
