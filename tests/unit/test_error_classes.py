"""Retry is decided by class: one root, marker mixins, and no flag that can say otherwise."""

from __future__ import annotations

import inspect

import pytest

from every8d import errors
from every8d.campaign import errors as campaign_errors
from every8d.errors import (
    AuthenticationError,
    Every8dError,
    GatewayError,
    GatewayRefusedError,
    HttpRejectedError,
    HttpStatusError,
    HttpUnavailableError,
    TemporaryGatewayError,
    TerminalError,
    TransientError,
)


def _concrete_errors() -> list[type[Every8dError]]:
    families = {Every8dError, GatewayError, HttpStatusError, campaign_errors.CampaignError}
    return [
        cls
        for module in (errors, campaign_errors)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Every8dError) and cls not in families
    ]


def test_every_error_has_one_root_and_exactly_one_marker():
    classes = _concrete_errors()
    assert len(classes) >= 18  # the gateway's errors and the campaign's
    for cls in classes:
        assert issubclass(cls, TransientError) != issubclass(cls, TerminalError), cls
        assert cls.retry_safe is issubclass(cls, TransientError), cls
    assert issubclass(campaign_errors.CampaignError, Every8dError)


@pytest.mark.parametrize(
    ("code", "cls", "retry_safe"),
    [
        (-8, TemporaryGatewayError, True),
        (-100, AuthenticationError, False),
        (-306, GatewayRefusedError, False),
    ],
)
def test_a_gateway_code_picks_its_class(code, cls, retry_safe):
    error = GatewayError("sendSMS.ashx", code, "meaning", "")
    assert type(error) is cls and error.code == code and error.retry_safe is retry_safe
    assert isinstance(error, GatewayError)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (500, HttpUnavailableError),
        (503, HttpUnavailableError),
        (429, HttpUnavailableError),
        (404, HttpRejectedError),
    ],
)
def test_an_http_status_picks_its_class(status, cls):
    error = HttpStatusError("getCredit.ashx", status, b"")
    assert type(error) is cls and error.status == status
    assert error.retry_safe is (cls is HttpUnavailableError)


def test_retry_safe_cannot_be_set_on_an_error_or_declared_by_a_class():
    error = GatewayError("sendSMS.ashx", -306, "bad number")
    with pytest.raises(AttributeError):
        error.retry_safe = True
    assert not error.retry_safe
    with pytest.raises(TypeError, match="retry_safe"):
        type("Contradicting", (Every8dError, TerminalError), {"retry_safe": True})
    with pytest.raises(TypeError, match="both"):
        type("Both", (Every8dError, TransientError, TerminalError), {})
