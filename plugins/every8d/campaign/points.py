"""Point estimates for whole columns, with the rules of :mod:`every8d.pricing`.

:func:`every8d.pricing.sms_points` prices one text; a million personalized
texts would mean a million Python calls.  The same table is arithmetic on the
text's UTF-16 length, so it is computed here with Arrow kernels; a property
test holds the two to the same answer for arbitrary text.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from every8d import pricing
from every8d.arrow_types import POINTS

POINTS_TYPE = POINTS  # the name the campaign modules use
_ASTRAL = r"[\x{10000}-\x{10FFFF}]"  # characters that take two UTF-16 code units


def utf16_lengths(texts: pa.Array) -> pa.Array:
    """Length of each text in UTF-16 code units (how the gateway counts), as int64."""
    code_points = pc.cast(pc.utf8_length(texts), pa.int64())
    astral = pc.cast(pc.count_substring_regex(texts, _ASTRAL), pa.int64())
    return pc.add(code_points, astral)


def sms_points_array(texts: pa.Array, international: pa.Array | bool = False) -> pa.Array:
    """Points of each SMS (int64): 1 up to 70 units, else ceil(n/67) per 333-unit part; ×3 abroad.

    Null or empty texts price as null (the gateway refuses them).
    """
    length = utf16_lengths(texts)
    part = pricing.MAX_LONG_SMS_CHARS
    full_parts = pc.divide(length, part)  # integer division on int64
    rest = pc.subtract(length, pc.multiply(full_parts, part))
    per_full = (part + pricing.LONG_SMS_PART_CHARS - 1) // pricing.LONG_SMS_PART_CHARS
    rest_points = pc.if_else(
        pc.equal(rest, 0),
        0,
        pc.if_else(
            pc.less_equal(rest, pricing.SINGLE_SMS_CHARS),
            1,
            pc.divide(pc.add(rest, pricing.LONG_SMS_PART_CHARS - 1), pricing.LONG_SMS_PART_CHARS),
        ),
    )
    points = pc.add(pc.multiply(full_parts, per_full), rest_points)
    points = pc.if_else(pc.equal(length, 0), pa.scalar(None, pa.int64()), points)
    factor = (
        pc.if_else(international, pricing.INTERNATIONAL_FACTOR, 1)
        if isinstance(international, (pa.Array, pa.ChunkedArray))
        else (pricing.INTERNATIONAL_FACTOR if international else 1)
    )
    return pc.multiply(points, factor)


def as_points(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Integer points as the ledger's ``decimal(12, 2)`` (via int32: no message costs 2**31 points)."""
    return pc.cast(pc.cast(values, pa.int32()), POINTS_TYPE)
