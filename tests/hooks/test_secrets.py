"""The password goes only into POST bodies: never a URL, header, log line, exception or repr."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs, unquote

import pytest

from every8d.client.results import ParamRecipient
from every8d.errors import Every8dError
from every8d.hooks.every8d import Every8dHook

PASSWORD = "Pw-秘密-9f3c!&="  # characters that URL- and form-encoding would change


@pytest.fixture
def secret_hook(sandbox, monkeypatch):
    sandbox.create_account("secret-user", PASSWORD, 1000)
    monkeypatch.setenv(
        "AIRFLOW_CONN_EVERY8D_DEFAULT",
        json.dumps(
            {
                "conn_type": "every8d",
                "host": sandbox.base_url,
                "login": "secret-user",
                "password": PASSWORD,
                "extra": {"timeout": 1, "read_retries": 1},
            }
        ),
    )
    return Every8dHook()


def _exercise_every_endpoint(hook, sandbox) -> list[str]:
    """Call every endpoint, including failing calls; return the text of every error raised."""
    errors: list[str] = []

    def attempt(call):
        try:
            return call()
        except Every8dError as error:
            errors.extend([str(error), repr(error), str(error.__cause__ or ""), str(error.__context__ or "")])
            return None

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    later = sandbox.now() + timedelta(days=1)
    sms = attempt(lambda: hook.send_sms("hi", ["0912000001"], schedule_at=later))
    attempt(lambda: hook.send_sms_filtered("hi", ["0912000001"]))
    attempt(lambda: hook.send_mms("hi", ["0912000002"], image=png))
    attempt(
        lambda: hook.send_param_sms([ParamRecipient("0912000003", ["x"], record_id="1")], template="%field1%")
    )
    attempt(lambda: list(hook.iter_delivery_status(sms.batch_id)))
    attempt(lambda: list(hook.iter_delivery_status(sms.batch_id, mms=True, with_record_ids=True)))
    attempt(lambda: list(hook.iter_replies(sms.batch_id)))
    attempt(hook.get_credit)
    attempt(lambda: hook.erase_booking(sms.batch_id))
    attempt(lambda: hook.erase_booking(sms.batch_id, mms=True))
    for endpoint, kind in [
        ("sendSMS", "drop"),
        ("getCredit", "http500"),
        ("getCredit", "garbage"),
        ("sendSMS", "slow"),
        ("getCredit", "reset"),
        ("sendSMS", "error"),
    ]:
        sandbox.inject_fault(endpoint, kind, count=-1, delay=2)
        attempt(lambda: hook.send_sms("fault", ["0912000004"]))
        attempt(hook.get_credit)
        sandbox.clear_faults()
    errors.append(hook.test_connection()[1])
    return errors


def test_password_only_ever_travels_in_post_bodies(secret_hook, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    errors = _exercise_every_endpoint(secret_hook, sandbox)

    recorded = sandbox.requests()
    assert len(recorded) >= 15
    encoded_forms = {PASSWORD, unquote(PASSWORD)}
    for request in recorded:
        assert request["method"] == "POST"
        assert not any(form in unquote(request["path"]) for form in encoded_forms)
        assert "PWD" not in request["query_string"].upper()
        assert PASSWORD not in unquote(request["query_string"])
        assert not any(PASSWORD in unquote(value) for _, value in request["headers"])
        body = request["body"]
        if body.lstrip().startswith("{"):
            assert json.loads(body)["PWD"] == PASSWORD
        else:
            assert parse_qs(body)["PWD"] == [PASSWORD]

    assert PASSWORD not in caplog.text
    assert not any(PASSWORD in text for text in errors)
    assert errors, "the faults above must have raised errors to inspect"
    assert PASSWORD not in repr(secret_hook.__dict__)
    assert PASSWORD not in repr(secret_hook.settings)


def test_password_is_registered_with_the_secrets_masker(secret_hook):
    from airflow.sdk._shared.secrets_masker import redact

    secret_hook.get_credit()
    assert PASSWORD not in str(redact(f"oops {PASSWORD}"))
