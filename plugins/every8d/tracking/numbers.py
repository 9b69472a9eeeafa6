"""Phone numbers from gateway listings as E.164, a whole column at a time.

Listings hold a million numbers in the common shapes (``+8869...``,
``09...``, ``8869...``): those are rewritten with Arrow kernels.  Only the odd
ones left over go through ``phonenumbers``, once per distinct value; what it
cannot parse is kept as the gateway wrote it rather than dropped.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_REGION = "TW"
_E164 = r"^\+[1-9][0-9]{6,14}$"
_TW_LOCAL = r"^09[0-9]{8}$"
_TW_NO_PLUS = r"^8869[0-9]{8}$"


def _phonenumbers_e164(values: list[str], region: str) -> list[str]:
    import phonenumbers

    out = []
    for value in values:
        try:
            parsed = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            out.append(value)
            continue
        out.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return out


def to_e164(mobiles: pa.Array | pa.ChunkedArray, region: str = DEFAULT_REGION) -> pa.Array:
    """``mobiles`` as E.164 text; nulls stay null."""
    if isinstance(mobiles, pa.ChunkedArray):
        mobiles = mobiles.combine_chunks()
    text = pc.utf8_trim_whitespace(mobiles.cast(pa.string()))
    if pc.all(pc.match_substring_regex(text, _E164)).as_py() is not False:  # the common case: nothing to do
        return text
    local = pc.match_substring_regex(text, _TW_LOCAL)
    no_plus = pc.match_substring_regex(text, _TW_NO_PLUS)
    result = pc.if_else(local, pc.binary_join_element_wise("+886", pc.utf8_slice_codeunits(text, 1), ""), text)
    result = pc.if_else(no_plus, pc.binary_join_element_wise("+", text, ""), result)
    odd = pc.and_(pc.invert(pc.match_substring_regex(result, _E164)), pc.is_valid(result))
    if not pc.any(odd).as_py():
        return result
    distinct = pc.unique(result.filter(odd))
    fixed = pa.array(_phonenumbers_e164(distinct.to_pylist(), region), pa.string())
    lookup = pc.index_in(result, value_set=distinct)
    return pc.if_else(odd, pc.take(fixed, lookup), result)
