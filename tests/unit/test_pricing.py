"""Point estimation: the spec's table exactly, and its properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from every8d import pricing

SPEC_TIERS = [(1, 70, 1), (71, 134, 2), (135, 201, 3), (202, 268, 4), (269, 333, 5)]


@pytest.mark.parametrize(("low", "high", "points"), SPEC_TIERS)
def test_spec_table_boundaries(low, high, points):
    assert pricing.sms_points("字" * low) == Decimal(points)
    assert pricing.sms_points("a" * high) == Decimal(points)


@given(st.integers(min_value=1, max_value=2000))
def test_points_never_decrease_with_length(length):
    assert pricing.sms_points("x" * (length + 1)) >= pricing.sms_points("x" * length)


@given(st.text(min_size=1, max_size=1500))
def test_international_is_three_times(text):
    assert pricing.sms_points(text, international=True) == 3 * pricing.sms_points(text)


@given(st.integers(min_value=334, max_value=3000))
def test_long_texts_are_split_into_333_character_parts(length):
    parts, rest = divmod(length, 333)
    expected = parts * 5 + (pricing.sms_points("x" * rest) if rest else 0)
    assert pricing.sms_points("x" * length) == expected


def test_emoji_counts_as_two_characters():
    assert pricing.sms_length("😀") == 2
    assert pricing.sms_points("a" * 69 + "😀") == 2


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="empty"):
        pricing.sms_points("")


@pytest.mark.parametrize(("size", "points"), [(0, 3), (50 * 1024, 3), (50 * 1024 + 1, 5), (300 * 1024, 5)])
def test_mms_points(size, points):
    assert pricing.mms_points(size) == Decimal(points)


def test_mms_too_large():
    with pytest.raises(ValueError, match="exceeds"):
        pricing.mms_points(300 * 1024 + 1)


def test_an_mms_campaign_of_several_templates_is_priced_by_its_largest():
    """A ``{template_id: template}`` message used to crash the MMS price (``dict.encode``)."""
    from every8d.campaign.config import CampaignSpec

    image = b"\x89PNG\r\n\x1a\n" + bytes(pricing.MMS_SMALL_BYTES - 1000)
    short, long = "hi %name%", "長" * 1000  # 3,000 bytes in UTF-8: image plus text passes 50 KB
    spec = CampaignSpec(kind="mms", message={"a": short, "b": long}, image=image)
    assert spec.mms_points() == pricing.MMS_LARGE_POINTS == pricing.mms_points(len(image), long)
    assert (
        CampaignSpec(kind="mms", message={"a": short}, image=image).mms_points() == pricing.MMS_SMALL_POINTS
    )
