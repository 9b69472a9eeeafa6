"""getCredit: the account's points."""

from __future__ import annotations

from decimal import Decimal

from every8d.client.v21.common import decimal_field, raise_for_error_body
from every8d.errors import WireFormatError

CREDIT = "getCredit.ashx"


def parse_credit(text: str, endpoint: str = CREDIT) -> Decimal:
    """Parse getCredit's answer: the account's points, e.g. ``2310.00``."""
    body = text.strip()
    if not body:
        raise WireFormatError(endpoint, "empty answer")
    raise_for_error_body(body, endpoint)
    return decimal_field(body, endpoint, "credit", body)
