"""Phone numbers to E.164 with ``phonenumbers``: once per distinct raw value, columnar elsewhere.

``phonenumbers`` costs about 50 µs a call, far too slow for a million rows
one by one.  Two things keep it off the hot path: numbers already in the
region's canonical form (``09xxxxxxxx``, ``+8869xxxxxxxx``) are matched with
the library's own mobile pattern as one Arrow regex kernel, and every other
value is parsed once per *distinct* value (with a bounded cache across
batches).  A property test proves both paths agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_REGION = "TW"


@dataclass(frozen=True)
class NumberCheck:
    """The verdict on a column of raw numbers, row for row.

    :param mobile: E.164 text, null when the number could not be read.
    :param international: True when the number is outside the default region.
    :param reason: ``missing_number``, ``invalid_number``, ``not_mobile``, ``international_not_allowed`` or null.
    :param detail: a short, number-free explanation for the rejects output, or null.
    """

    mobile: pa.Array
    international: pa.Array
    reason: pa.Array
    detail: pa.Array


def normalize_one(raw: str, region: str = DEFAULT_REGION, *, require_mobile: bool = True) -> tuple[
    str | None, str | None, str | None
]:
    """``(e164, reason, detail)`` for one raw number; the slow path, called per distinct value."""
    import phonenumbers
    from phonenumbers import PhoneNumberType

    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None, "invalid_number", "not a phone number"
    if not phonenumbers.is_valid_number(number):
        return None, "invalid_number", "not a valid number for its country"
    if require_mobile and phonenumbers.number_type(number) not in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None, "not_mobile", "not a mobile number (SMS needs one)"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None, None


class PhoneNormalizer:
    """Check and normalize raw numbers batch by batch.

    :param region: region for numbers written without a country code (``TW``).
    :param allow_international: accept numbers outside ``region`` (they cost 3× and
        must be enabled on the account); refused with a reason otherwise.
    :param require_mobile: refuse fixed-line numbers, which cannot receive SMS.
    :param cache_size: distinct values remembered across batches.
    """

    def __init__(
        self,
        region: str = DEFAULT_REGION,
        *,
        allow_international: bool = False,
        require_mobile: bool = True,
        cache_size: int = 200_000,
    ) -> None:
        import phonenumbers

        self.region = region.upper()
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(self.region)
        if metadata is None:
            raise ValueError(f"unknown phone region {region!r}: use an ISO 3166 code such as 'TW'")
        self._metadata = metadata
        self.country_prefix = f"+{metadata.country_code}"
        self.allow_international = allow_international
        self.require_mobile = require_mobile
        self.cache_size = cache_size
        self._cache: dict[str, tuple[str | None, str | None, str | None]] = {}
        self.slow_calls = 0  # phonenumbers calls made, for tests and progress logs

    @cached_property
    def _fast_pattern(self) -> str | None:
        """RE2 pattern of canonical mobile numbers of the region, or None when unusable."""
        mobile = self._metadata.mobile
        if mobile is None or not mobile.national_number_pattern:
            return None
        prefixes = [f"\\+{self._metadata.country_code}"]
        if self._metadata.national_prefix and self._metadata.national_prefix.isdigit():
            prefixes.append(self._metadata.national_prefix)
        pattern = f"^(?:{'|'.join(prefixes)})(?P<national>{mobile.national_number_pattern})$"
        try:
            pc.extract_regex(pa.array(["0"]), pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return pattern

    def _slow(self, raw: str) -> tuple[str | None, str | None, str | None]:
        hit = self._cache.get(raw)
        if hit is None:
            hit = normalize_one(raw, self.region, require_mobile=self.require_mobile)
            self.slow_calls += 1
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[raw] = hit
        return hit

    def check(self, raw: pa.Array | pa.ChunkedArray) -> NumberCheck:
        """Normalize a column of raw numbers (any type; integers lose no leading zero they never had)."""
        if isinstance(raw, pa.ChunkedArray):
            raw = raw.combine_chunks()
        if not pa.types.is_string(raw.type) and not pa.types.is_large_string(raw.type):
            raw = pc.cast(raw, pa.string())
        cleaned = pc.utf8_trim_whitespace(raw)
        cleaned = pc.if_else(pc.equal(cleaned, ""), pa.scalar(None, cleaned.type), cleaned)

        fast = pa.nulls(len(cleaned), pa.string())
        if self._fast_pattern is not None and len(cleaned):
            national = pc.struct_field(pc.extract_regex(cleaned, self._fast_pattern), [0])
            fast = pc.binary_join_element_wise(self.country_prefix, national, "")
        slow_mask = pc.and_(pc.is_null(fast), pc.is_valid(cleaned))
        distinct = pc.unique(pc.filter(cleaned, slow_mask))
        verdicts = [self._slow(value) for value in distinct.to_pylist()]
        index = pc.index_in(cleaned, value_set=distinct)
        slow_e164 = pc.take(pa.array([v[0] for v in verdicts], pa.string()), index)
        slow_reason = pc.take(pa.array([v[1] for v in verdicts], pa.string()), index)
        slow_detail = pc.take(pa.array([v[2] for v in verdicts], pa.string()), index)

        mobile = pc.coalesce(fast, slow_e164)
        missing = pc.is_null(cleaned)
        reason = pc.if_else(missing, "missing_number", slow_reason)
        detail = pc.if_else(missing, "no number given", slow_detail)
        international = pc.fill_null(pc.invert(pc.starts_with(mobile, self.country_prefix)), False)
        if not self.allow_international:
            refuse = pc.and_(international, pc.is_null(reason))
            reason = pc.if_else(refuse, "international_not_allowed", reason)
            detail = pc.if_else(
                refuse, f"outside {self.region}: set allow_international=True (costs 3x)", detail
            )
        return NumberCheck(mobile=mobile, international=international, reason=reason, detail=detail)
