"""sendSMS, sendSMS4FilterMessage and SendParamSMS: the send forms and their answers."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from every8d.client.results import ParamRecipient, SendResult
from every8d.client.v21.common import (
    clean_name,
    count_field,
    decimal_field,
    format_schedule_time,
    gateway_error,
    raise_for_error_body,
)
from every8d.errors import WireFormatError

SEND_SMS = "sendSMS.ashx"
SEND_SMS_FILTERED = "sendSMS4FilterMessage.ashx"
SEND_PARAM_SMS = "SendParamSMS.ashx"
MAX_PARAM_FIELDS = 5


#: A batch id is a whole UUID (the spec's example: ``220478cc-8506-49b2-93b7-2505f651c12e``).  Anything
#: shorter is an answer cut in transit, never a batch: a prefix of a UUID, or the ``0`` of a cut UNSEND.
_BATCH_ID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def parse_send_response(text: str, endpoint: str = SEND_SMS) -> SendResult:
    """Parse ``CREDIT,SENDED,COST,UNSEND,BATCH_ID`` (plus ``,FILTERED`` on the filter endpoint).

    The legacy four-field answer ``CREDIT,SENDED,COST,BATCH_ID`` (the spec's own
    example) parses too, with ``unsent=0``.  Error bodies raise, and so does an
    answer without a complete batch id: a cut answer still splits into fields, so
    only a whole UUID in the batch-id field proves the answer arrived whole.
    """
    body = text.strip()
    if not body:
        raise WireFormatError(endpoint, "empty answer to a send")
    raise_for_error_body(body, endpoint)
    fields = body.split(",")
    if len(fields) == 4:
        credit, sent, cost, batch_id = fields
        unsent, filtered = "0", ""
    elif len(fields) == 5:
        credit, sent, cost, unsent, batch_id = fields
        filtered = ""
    elif len(fields) == 6:
        credit, sent, cost, unsent, batch_id, filtered = fields
    else:
        raise WireFormatError(endpoint, f"a send answer has 4 to 6 fields, not {len(fields)}", body)
    batch_id = batch_id.strip()
    if not _BATCH_ID.match(batch_id):
        raise WireFormatError(endpoint, "batch id missing, cut or malformed (a whole UUID is required)", body)
    return SendResult(
        credit=decimal_field(credit, endpoint, "CREDIT", body),
        sent=count_field(sent, endpoint, "SENDED", body),
        cost=decimal_field(cost, endpoint, "COST", body),
        unsent=count_field(unsent, endpoint, "UNSEND", body),
        batch_id=batch_id,
        filtered=_filtered_numbers(filtered, endpoint, body),
    )


def _filtered_numbers(field_text: str, endpoint: str, body: str) -> tuple[str, ...]:
    """The sixth field, ``number/number/...``: an empty part (``a/`` or ``a//b``) is a cut answer."""
    if not field_text.strip():
        return ()
    numbers = tuple(number.strip() for number in field_text.split("/"))
    if not all(numbers):
        raise WireFormatError(endpoint, "the filtered numbers field has an empty entry (a cut answer)", body)
    return numbers


def parse_param_send_response(text: str, endpoint: str = SEND_PARAM_SMS) -> SendResult:
    """Parse SendParamSMS's JSON answer ``{"Result":..,"Status":..,"Msg":..}``."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise WireFormatError(endpoint, "answer is not JSON", text) from None
    if not isinstance(document, dict) or "Result" not in document:
        raise WireFormatError(endpoint, "JSON answer has no Result", text)
    message = str(document.get("Msg") or "")
    if document["Result"] is not True:
        try:
            code = int(str(document.get("Status", "")).strip())
        except ValueError:
            raise WireFormatError(endpoint, "failed answer without a numeric Status", text) from None
        raise gateway_error(endpoint, code if code < 0 else -abs(code), message)
    return parse_send_response(message, endpoint)


# -- personalized sends ---------------------------------------------------------------------


def build_param_sms_body(
    recipients: Sequence[ParamRecipient],
    *,
    template: str,
    subject: str = "",
    schedule_at: datetime | None = None,
    validity_minutes: int | None = None,
) -> dict[str, Any]:
    """The SendParamSMS JSON document, without credentials (the hook adds them)."""
    if not recipients:
        raise ValueError("SendParamSMS needs at least one recipient")
    rows = []
    for index, recipient in enumerate(recipients, start=1):
        params = list(recipient.params)
        if template:
            if len(params) > MAX_PARAM_FIELDS:
                raise ValueError(
                    f"recipient {index} has {len(params)} values; at most {MAX_PARAM_FIELDS} fit"
                )
            if any("|" in value for value in params):
                raise ValueError(
                    f"recipient {index} has a '|' in a value, which the gateway uses as separator"
                )
        elif len(params) != 1 or not params[0]:
            raise ValueError(f"recipient {index} needs exactly one non-empty text when there is no template")
        rows.append(
            {
                "Name": clean_name(recipient.name),
                "Mobile": recipient.mobile,
                "Email": clean_name(recipient.email),
                "SendTime": format_schedule_time(recipient.send_at) if recipient.send_at else "",
                "Param": "|".join(params),
                "Mr": recipient.record_id,
            }
        )
    return {
        "SB": subject,
        "MSG": template,
        "ST": format_schedule_time(schedule_at) if schedule_at else "",
        "RETRYTIME": "" if validity_minutes is None else str(validity_minutes),
        "RecipientDataList": rows,
    }


# -- plain sends ------------------------------------------------------------------------------


def send_form(
    message: str,
    destinations: Iterable[str],
    *,
    subject: str = "",
    schedule_at: datetime | None = None,
    validity_minutes: int | None = None,
) -> tuple[dict[str, str], int]:
    """The form of a plain send (sendSMS, the filter endpoint, sendMMS's text part) and its recipient count.

    :raises ValueError: an empty text, no numbers, or a number that is empty or holds a comma.
    """
    if not message:
        raise ValueError("the message is empty (the gateway would answer -24)")
    numbers = [str(number).strip() for number in destinations]
    if not numbers:
        raise ValueError("no destination numbers (the gateway would answer -27)")
    for index, number in enumerate(numbers, start=1):
        if not number or "," in number:
            raise ValueError(f"destination {index} is empty or contains a comma")
    form = {
        "SB": subject,
        "MSG": message,
        "DEST": ",".join(numbers),
        "ST": format_schedule_time(schedule_at) if schedule_at else "",
        "RETRYTIME": "" if validity_minutes is None else str(int(validity_minutes)),
    }
    return form, len(numbers)


def filtered_problem(result: SendResult, sent: Sequence[str]) -> str | None:
    """Why a filter endpoint's answer cannot be whole, or None.

    Each filtered number must be one the call sent (a cut one is a prefix), and
    SENDED + UNSEND + filtered must account for every recipient (a number cut
    off at a ``/`` leaves the list short).
    """
    pool = Counter(number.strip() for number in sent)
    pool.subtract(result.filtered)
    if any(left < 0 for left in pool.values()):
        return "a filtered number in the answer is not one of the numbers sent (a cut answer)"
    accounted = result.sent + result.unsent + len(result.filtered)
    if accounted != len(sent):
        return f"the answer accounts for {accounted} of {len(sent)} recipient(s) (a cut answer)"
    return None
