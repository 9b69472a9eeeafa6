"""Point estimation with the gateway's published rules.

Pure functions, no I/O: the send operators estimate a campaign's cost with
them before the first request, and the sandbox charges with the same rules,
so an estimate and a bill can be compared in tests.

Rules (spec 2.0.3, table in section 1.1, and later revisions for MMS):

* SMS to a Taiwan number (+886): 1 point up to 70 characters, otherwise
  ``ceil(n / 67)`` points, up to 333 characters (5 points).  Longer texts are
  split by the gateway into parts of at most 333 characters, each priced by
  the same table.
* International numbers (not +886) cost three times as much.
* MMS: 3 points up to 50 KB of image plus text (圖加文), 5 points up to 300 KB;
  larger is refused.  The text counts in UTF-8 bytes, as it travels.

Characters are counted in UTF-16 code units, as the gateway (a .NET service)
counts them: an emoji outside the Basic Multilingual Plane counts as two.
"""

from __future__ import annotations

import math
from decimal import Decimal

SINGLE_SMS_CHARS = 70
LONG_SMS_PART_CHARS = 67
MAX_LONG_SMS_CHARS = 333
INTERNATIONAL_FACTOR = 3
MMS_SMALL_BYTES = 50 * 1024
MMS_LARGE_BYTES = 300 * 1024
MMS_SMALL_POINTS = Decimal(3)
MMS_LARGE_POINTS = Decimal(5)


def sms_length(text: str) -> int:
    """Length of ``text`` as the gateway counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _long_sms_points(length: int) -> int:
    if length <= SINGLE_SMS_CHARS:
        return 1
    return math.ceil(length / LONG_SMS_PART_CHARS)


def sms_points(text: str, *, international: bool = False) -> Decimal:
    """Points charged for one SMS ``text`` to one number.

    :param text: the message as sent (after any template rendering).
    :param international: True when the number is not a +886 number.
    :raises ValueError: on an empty text, which the gateway refuses (-24).
    """
    length = sms_length(text)
    if length == 0:
        raise ValueError("an empty SMS text cannot be priced (the gateway refuses it)")
    full_parts, rest = divmod(length, MAX_LONG_SMS_CHARS)
    points = full_parts * _long_sms_points(MAX_LONG_SMS_CHARS)
    if rest:
        points += _long_sms_points(rest)
    if international:
        points *= INTERNATIONAL_FACTOR
    return Decimal(points)


def mms_size(image_bytes: int, text: str = "") -> int:
    """Bytes the gateway weighs an MMS by: the image plus the text (圖加文), the text in UTF-8."""
    if image_bytes < 0:
        raise ValueError("image size cannot be negative")
    return image_bytes + len(text.encode("utf-8"))


def mms_points(image_bytes: int, text: str = "") -> Decimal:
    """Points charged for one MMS of an ``image_bytes`` image and ``text``.

    :raises ValueError: when image plus text exceed the largest MMS size.
    """
    size = mms_size(image_bytes, text)
    if size <= MMS_SMALL_BYTES:
        return MMS_SMALL_POINTS
    if size <= MMS_LARGE_BYTES:
        return MMS_LARGE_POINTS
    raise ValueError(f"an MMS of {size} bytes (image plus text) exceeds the {MMS_LARGE_BYTES}-byte limit")
