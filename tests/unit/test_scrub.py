"""Issue 12, points 10 and 12 as properties: excerpts keep no password (in any encoding) and no phone
number."""

from __future__ import annotations

import html
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from every8d import errors
from every8d.errors import GatewayError, HttpStatusError, WireFormatError, excerpt, register_secret


@pytest.fixture(autouse=True)
def _own_secret_registry():
    """The random passwords registered here must not redact other tests' messages."""
    saved = set(errors._secrets), errors._secret_pattern
    yield
    errors._secrets.clear()
    errors._secrets.update(saved[0])
    errors._secret_pattern = saved[1]


passwords = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=4, max_size=24).filter(str.strip)
numbers = st.from_regex(r"\A(\+8869|09)\d{8}\Z")


@given(password=passwords, phone=numbers, filler=st.text(max_size=30))
# A non-breaking space in the password: flattening the whitespace before scrubbing hid it from the scrub.
@example(password="000\xa0", phone="+886900000000", filler="")
def test_an_echoed_request_keeps_neither_password_nor_number(password, phone, filler):
    register_secret(password)
    form = urlencode({"UID": "u", "PWD": password, "DEST": f"{phone},{phone}", "MSG": filler})
    page = f'<p>{form}</p> {password} {quote(password)} {html.escape(password)} "PWD":"{password}"'
    for error in (
        WireFormatError("getCredit.ashx", "odd", page),
        HttpStatusError("getCredit.ashx", 500, page),
    ):
        text = str(error)
        for form_of_password in {
            password,
            quote(password, safe=""),
            quote_plus(password),
            html.escape(password),
        }:
            assert form_of_password.strip() not in text or form_of_password.strip() in "***<number>…"
        assert phone not in text and phone.lstrip("+") not in text


@given(phone=numbers)
def test_numbers_in_gateway_texts_are_counted(phone):
    error = GatewayError("sendSMS.ashx", -306, "bad", f"手機格式不符:{phone}")
    assert phone not in str(error) and error.numbers == (phone,)


def test_excerpt_scrubs_pwd_fields_of_unregistered_secrets():
    assert "hunter2" not in excerpt("UID=a&PWD=hunter2&DEST=x")
    assert "hunter2" not in excerpt('{"UID":"a","PWD":"hunter2"}')


def test_a_secret_of_digits_inside_a_number_hides_the_whole_number():
    """Redacting the secret first broke the number apart, and its other digits were shown."""
    register_secret("00000")
    text = errors.scrub("DEST=%2B886900000000&to=+886900000000 or 0900000000")
    assert not any(digit in text for digit in "0123456789"), text
