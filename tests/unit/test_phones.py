"""The two phone policies: what we text (send) and what the gateway reports (observe)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from every8d.callbacks.params import parse_push
from every8d.client.results import Reply
from every8d.phones import normalize_for_send, normalize_observed, observed_mobile, send_numbers
from every8d.tracking.replies import replies_table

# The shapes a gateway writes a number in: Taiwan mobiles in their usual spellings, with
# spaces and dashes, landlines, foreign numbers, short codes and junk.
national = st.integers(min_value=0, max_value=99_999_999).map(lambda n: f"9{n:08d}")
spelled = st.one_of(
    st.builds(
        "{}{}".format, st.sampled_from(["0", "+886", "886", "+886 ", "+8860", " 0", "00886"]), national
    ),
    st.builds(lambda n: f"0{n[:3]}-{n[3:6]}-{n[6:]}", national),
    st.from_regex(r"\+?[0-9 ()\-]{1,18}", fullmatch=True),
    st.from_regex(r"\(0[2-8]\) ?[0-9]{3,4} ?[0-9]{4}", fullmatch=True),
    st.text(alphabet="0123456789+abc -", max_size=16),
)


def _push_key(raw: str) -> str | None:
    """The mobile a push with ``RM=raw`` is keyed on, or None when the receiver refuses it."""
    from urllib.parse import urlencode

    query = urlencode({"BatchID": "b-1", "RM": raw, "RT": "20260301090000", "STATUS": "0"}).encode()
    try:
        return parse_push(query).mobile
    except Exception:
        return None


@settings(max_examples=150, deadline=None)
@given(st.lists(spelled, min_size=1, max_size=8))
def test_a_push_and_a_poll_key_the_same_gateway_number_alike(raws):
    """Polls (a listing column) and pushes (one RM) must give one key, or they never merge."""
    polled = normalize_observed(pa.array(raws, pa.string())).to_pylist()
    for raw, poll_key in zip(raws, polled, strict=True):
        push_key = _push_key(raw)
        if push_key is not None:
            assert push_key == poll_key, raw
        assert observed_mobile(raw) in (None, poll_key), raw


@settings(max_examples=50, deadline=None)
@given(spelled)
def test_replies_key_numbers_as_the_listing_does(raw):
    """The third observe path, replies, lands on the same spelling as the status listing."""
    from datetime import UTC, datetime

    table = replies_table(
        "b-1", [Reply(name="", mobile=raw, replied_at=datetime(2026, 3, 1, tzinfo=UTC), content="x")]
    )
    assert table.column("mobile").to_pylist() == normalize_observed(pa.array([raw])).to_pylist()


def test_what_the_gateway_writes_is_kept_when_it_is_no_number():
    assert normalize_observed(pa.array(["  0912345678 ", "hello", None, "886912345678"])).to_pylist() == [
        "+886912345678",
        "hello",
        None,
        "+886912345678",
    ]
    assert observed_mobile("hello") is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param("(02) 2345 6789", "not_mobile", id="taipei-landline"),
        pytest.param("+886223456789", "not_mobile", id="landline-e164"),
        pytest.param("12345", "invalid_number", id="short"),
        pytest.param("+14155552671", "international_not_allowed", id="international"),
    ],
)
def test_the_send_policy_refuses_what_cannot_or_may_not_take_an_sms(raw, reason):
    assert normalize_for_send(raw)[:2] == (None, reason)


def test_the_notifier_and_cli_policy_drops_landlines_keeps_mobiles_once():
    """The bug of issue 13: the notifier and the CLI texted landlines the campaign refuses."""
    numbers, refused = send_numbers(
        ["0912345678", "+886912345678", "(02) 2345 6789", "+447911123456"], allow_international=True
    )
    assert (numbers, refused) == (["+886912345678", "+447911123456"], 1)
