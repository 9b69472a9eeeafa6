"""Phone numbers, one home: the send policy for numbers we text, the observe policy for numbers the gateway
reports.

**Send** (:func:`normalize_for_send`, columnar :class:`PhoneNormalizer`): a
valid number of its country and a mobile, in the default region unless
international sending is enabled (it costs 3x and must be enabled on the
account).  Campaigns, the notifier and the CLI all use it, so none of them
accepts a landline the others refuse.

**Observe** (:func:`normalize_observed`, one value :func:`observed_mobile`):
lenient, for what the gateway reports in listings, replies and pushes.  The
gateway texted the number, so refusing it would lose a status whenever
``phonenumbers``' ranges lag behind the carriers'.  Polls and pushes merge on
this spelling: both functions share the patterns and the slow path below, and
a property test holds them to the same key.

``phonenumbers`` costs about 50 µs a call, far too slow for a million rows
one by one.  Two things keep it off the hot path: numbers already in a
canonical form are matched as one Arrow regex kernel, and every other value is
parsed once per *distinct* value (with a bounded cache).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache

import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_REGION = "TW"

# -- observe --------------------------------------------------------------------------------------
# Shared by the columnar and the one-value path: the same text in, the same key out.
_E164 = r"\+[1-9][0-9]{6,14}"
_TW_LOCAL = r"09[0-9]{8}"
_TW_NO_PLUS = r"8869[0-9]{8}"
_E164_RE, _TW_LOCAL_RE, _TW_NO_PLUS_RE = (re.compile(p) for p in (_E164, _TW_LOCAL, _TW_NO_PLUS))


@lru_cache(maxsize=10_000)
def parse_observed(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """E.164 via ``phonenumbers`` for an odd spelling; None when it cannot be a phone number.

    Lenient on purpose (``is_possible_number``, not ``is_valid_number``).  Public for the tests
    that hold the regexes to it.
    """
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def observed_mobile(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """E.164 for one number the gateway reports (a push's ``RM``), or None when it is not a number.

    Regexes first: nearly every push carries a new number, so a cache would not help.
    """
    text = raw.strip()
    if _E164_RE.fullmatch(text):
        return text
    if _TW_LOCAL_RE.fullmatch(text):
        return "+886" + text[1:]
    if _TW_NO_PLUS_RE.fullmatch(text):
        return "+" + text
    return parse_observed(text, region)


def normalize_observed(mobiles: pa.Array | pa.ChunkedArray, region: str = DEFAULT_REGION) -> pa.Array:
    """Numbers from a gateway listing as E.164, a column at a time; nulls stay null.

    A value that is not a phone number is kept as the gateway wrote it
    (trimmed) rather than dropped: the row still says what the gateway said.
    Where :func:`observed_mobile` gives a key, this gives the same one.
    """
    if isinstance(mobiles, pa.ChunkedArray):
        mobiles = mobiles.combine_chunks()
    text = pc.utf8_trim_whitespace(mobiles.cast(pa.string()))
    e164 = pc.match_substring_regex(text, f"^{_E164}$")
    if pc.all(e164).as_py() is not False:  # the common case: nothing to do
        return text
    local = pc.match_substring_regex(text, f"^{_TW_LOCAL}$")
    no_plus = pc.match_substring_regex(text, f"^{_TW_NO_PLUS}$")
    result = pc.if_else(
        local, pc.binary_join_element_wise("+886", pc.utf8_slice_codeunits(text, 1), ""), text
    )
    result = pc.if_else(no_plus, pc.binary_join_element_wise("+", text, ""), result)
    odd = pc.fill_null(pc.invert(pc.or_(pc.or_(e164, local), no_plus)), False)
    if not pc.any(odd).as_py():
        return result
    distinct = pc.unique(text.filter(odd))
    fixed = pa.array([parse_observed(v, region) or v for v in distinct.to_pylist()], pa.string())
    return pc.if_else(odd, pc.take(fixed, pc.index_in(text, value_set=distinct)), result)


# -- send -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberCheck:
    """The verdict on a column of raw numbers, row for row.

    :param mobile: E.164 text, null when the number could not be read.
    :param international: True when the number is outside the default region.
    :param reason: ``missing_number``, ``invalid_number``, ``not_mobile``, ``international_not_allowed`` or
        null.
    :param detail: a short, number-free explanation for the rejects output, or null.
    """

    mobile: pa.Array
    international: pa.Array
    reason: pa.Array
    detail: pa.Array


def normalize_for_send(
    raw: str, region: str = DEFAULT_REGION, *, allow_international: bool = False, require_mobile: bool = True
) -> tuple[str | None, str | None, str | None]:
    """``(e164, reason, detail)`` for one number we are about to text: the send policy, scalar.

    A valid number of its country, a mobile (``require_mobile``), in ``region``
    unless ``allow_international``.  ``detail`` never holds the number.
    """
    import phonenumbers
    from phonenumbers import PhoneNumberType

    try:
        number = phonenumbers.parse(str(raw).strip(), region)
    except phonenumbers.NumberParseException:
        return None, "invalid_number", "not a phone number"
    if not phonenumbers.is_valid_number(number):
        return None, "invalid_number", "not a valid number for its country"
    if require_mobile and phonenumbers.number_type(number) not in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None, "not_mobile", "not a mobile number (SMS needs one)"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not allow_international and number.country_code != phonenumbers.country_code_for_region(
        region.upper()
    ):
        return (
            None,
            "international_not_allowed",
            f"outside {region.upper()}: international numbers are not enabled",
        )
    return e164, None, None


def send_numbers(
    numbers: Iterable[str], region: str = DEFAULT_REGION, *, allow_international: bool = False
) -> tuple[list[str], int]:
    """Unique E.164 numbers in first-seen order under the send policy, and how many were refused."""
    seen: dict[str, None] = {}
    refused = 0
    for raw in numbers:
        e164 = normalize_for_send(raw, region, allow_international=allow_international)[0]
        if e164 is None:
            refused += 1
        else:
            seen.setdefault(e164, None)
    return list(seen), refused


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
            hit = normalize_for_send(
                raw, self.region, allow_international=True, require_mobile=self.require_mobile
            )
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
