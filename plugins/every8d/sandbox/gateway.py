"""The EVERY8D API 2.1 endpoints: request parameters in, gateway bytes out.

Kept apart from the ASGI plumbing so each endpoint reads like the spec: parse
and validate the way the gateway does, call :mod:`.state`, format the answer
byte for byte.  Plain functions on the event-loop thread; no framework in the
hot path, which is what lets one process answer thousands of sends a second.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple
from urllib.parse import parse_qsl

from every8d.pricing import mms_points, sms_points
from every8d.sandbox.state import (
    DEFAULT_RETRY_MINUTES,
    Account,
    Batch,
    GatewayError,
    Recipient,
    SandboxState,
    SendResult,
    error,
    normalize_mobile,
    parse_taipei,
    points_text,
    taipei_slash,
)

TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
JSON = [(b"content-type", b"application/json; charset=utf-8")]
STATUS_PAGE = 1000
REPLY_PAGE = 10
MMS_TYPES = frozenset({"jpg", "jpeg", "png", "gif"})
MMS_MAX_BYTES = 300 * 1024
_FIELD = re.compile(r"%field([1-5])%", re.IGNORECASE)
_CONTROL_CHARS = str.maketrans({"\t": " ", "\r": " ", "\n": " "})


class Answer(NamedTuple):
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def text(body: str, status: int = 200) -> Answer:
    return Answer(status, body.encode("utf-8"), TEXT)


def json_answer(payload: object, status: int = 200) -> Answer:
    return Answer(
        status, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), JSON
    )


NOT_FOUND = text("404 Not Found", 404)

# lower-case endpoint key -> name used by faults and the request log
ENDPOINTS = {
    name.lower(): name
    for name in (
        "sendSMS",
        "sendSMS4FilterMessage",
        "SendParamSMS",
        "getDeliveryStatus",
        "getReplyMessage",
        "getCredit",
        "eraseBooking",
        "mms/sendMMS",
        "mms/getDeliveryStatus",
        "mms/eraseBooking",
    )
}


def endpoint_key(lower_path: str) -> str | None:
    """``.../api21/http/[mms/]<name>.ashx`` (already lower-cased) to its endpoint key."""
    head, _, file = lower_path.rpartition("/")
    name = file[:-5]  # drop ".ashx"
    if head.endswith("/api21/http/mms"):
        key = "mms/" + name
    elif head.endswith("/api21/http"):
        key = name
    else:
        return None
    return key if key in ENDPOINTS else None


def form_params(query: bytes, body: bytes) -> dict[str, str]:
    """Query string then form body (body wins), keys upper-cased like ASP.NET's lookup."""
    params: dict[str, str] = {}
    for raw in (query, body):
        if raw:
            for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
                params[key.upper()] = value
    return params


def handle(state: SandboxState, key: str, query: bytes, body: bytes) -> Answer:
    """Answer one gateway request the way the real gateway would."""
    if key == "sendparamsms":
        return send_param_sms(state, body)
    params = form_params(query, body)
    try:
        return _HANDLERS[key](state, params)
    except GatewayError as exc:
        return text(f"{exc.code},{exc.message}")


# ---------------------------------------------------------------- sends


def _account(state: SandboxState, params: dict[str, str]) -> Account:
    return state.authenticate(params.get("UID", ""), params.get("PWD", ""))


def _retry_minutes(value: object) -> int:
    """RETRYTIME in minutes; empty or not a number means the default 1440."""
    value = "" if value is None else str(value).strip()
    if not value.isdigit():
        return DEFAULT_RETRY_MINUTES
    return int(value)


def _send_time(value: object) -> float | None:
    value = "" if value is None else str(value).strip()
    return parse_taipei(value) if value else None


def _recipients(params: dict[str, str]) -> tuple[str, list[Recipient]]:
    message = params.get("MSG", "")
    if not message.strip():
        raise error(-24)
    numbers = [n.strip() for n in params.get("DEST", "").split(",")]
    numbers = [n for n in numbers if n]
    if not numbers:
        raise error(-27)
    return message, [Recipient(raw=n, mobile=normalize_mobile(n), text=message) for n in numbers]


def _sms_pricer() -> Callable[[str, bool], Decimal]:
    cache: dict[tuple[str, bool], Decimal] = {}

    def price(message: str, international: bool) -> Decimal:
        key = (message, international)
        points = cache.get(key)
        if points is None:
            points = cache[key] = sms_points(message, international=international)
        return points

    return price


def _send_body(result: SendResult) -> str:
    b = result.batch
    return f"{result.credit:.2f},{b.sended},{points_text(b.cost)},{b.unsend},{b.id}"


def _send_sms(state: SandboxState, params: dict[str, str], *, endpoint: str, filter_recent: bool) -> Answer:
    account = _account(state, params)
    _, recipients = _recipients(params)
    send_at = _send_time(params.get("ST"))
    filtered: list[str] = []
    if filter_recent:
        recipients, filtered = state.filter_recent(account, recipients)
        if not recipients:
            raise error(-98, "/".join(filtered))
    result = state.send(
        account,
        kind="sms",
        endpoint=endpoint,
        subject=params.get("SB", ""),
        recipients=recipients,
        send_at=send_at,
        retry_minutes=_retry_minutes(params.get("RETRYTIME")),
        points=_sms_pricer(),
        filtered=filtered,
    )
    body = _send_body(result)
    if filter_recent:
        body += "," + "/".join(filtered)
    return text(body)


def send_sms(state: SandboxState, params: dict[str, str]) -> Answer:
    return _send_sms(state, params, endpoint="sendSMS", filter_recent=False)


def send_sms_filtered(state: SandboxState, params: dict[str, str]) -> Answer:
    return _send_sms(state, params, endpoint="sendSMS4FilterMessage", filter_recent=True)


def _subject_too_long(subject: str) -> bool:
    return len(subject) > (95 if subject.isascii() else 15)


def send_mms(state: SandboxState, params: dict[str, str]) -> Answer:
    account = _account(state, params)
    subject = params.get("SB", "")
    if _subject_too_long(subject):
        raise error(-303)
    _, recipients = _recipients(params)
    send_at = _send_time(params.get("ST"))
    encoded = params.get("ATTACHMENT", "").replace("\r", "").replace("\n", "")
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise error(-304) from None
    if not image:
        raise error(-304)
    if params.get("TYPE", "").strip().lower() not in MMS_TYPES:
        raise error(-305)
    if len(image) + len(params.get("MSG", "").encode("utf-8")) > MMS_MAX_BYTES:
        raise error(-314)  # image plus text (圖加文)
    points = mms_points(len(image), params.get("MSG", ""))
    result = state.send(
        account,
        kind="mms",
        endpoint="mms/sendMMS",
        subject=subject,
        recipients=recipients,
        send_at=send_at,
        retry_minutes=_retry_minutes(params.get("RETRYTIME")),
        points=lambda _text, _international: points,
    )
    return text(_send_body(result))


def _ci(obj: dict) -> dict[str, object]:
    """JSON keys looked up case-insensitively, as the .NET gateway binds them."""
    return {str(k).upper(): v for k, v in obj.items()}


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _render(template: str, param: str) -> str:
    parts = param.split("|")
    return _FIELD.sub(lambda mo: parts[int(mo[1]) - 1] if int(mo[1]) <= len(parts) else "", template)


def send_param_sms(state: SandboxState, body: bytes) -> Answer:
    """SendParamSMS: JSON in, JSON out, one batch of personalized texts."""
    try:
        try:
            data = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            raise error(-99) from None
        if not isinstance(data, dict):
            raise error(-99)
        data = _ci(data)
        account = state.authenticate(_str(data.get("UID")), _str(data.get("PWD")))
        template = _str(data.get("MSG"))
        rows = data.get("RECIPIENTDATALIST") or []
        if not isinstance(rows, list) or not rows:
            raise error(-27)
        send_at = _send_time(data.get("ST"))
        recipients = []
        for row in rows:
            if not isinstance(row, dict):
                raise error(-99)
            row = _ci(row)
            raw = _str(row.get("MOBILE")).strip()
            if not raw:
                raise error(-27)
            mobile = normalize_mobile(raw)
            param = _str(row.get("PARAM"))
            message = _render(template, param) if template else param
            if not message.strip():
                raise error(-24)
            recipients.append(
                Recipient(
                    raw=raw,
                    mobile=mobile,
                    text=message,
                    name=_str(row.get("NAME")),
                    mr=_str(row.get("MR")),
                    email=_str(row.get("EMAIL")),
                    send_at=_send_time(row.get("SENDTIME")),
                )
            )
        result = state.send(
            account,
            kind="sms",
            endpoint="SendParamSMS",
            subject=_str(data.get("SB")),
            recipients=recipients,
            send_at=send_at,
            retry_minutes=_retry_minutes(data.get("RETRYTIME")),
            points=_sms_pricer(),
        )
    except GatewayError as exc:
        return json_answer({"Result": False, "Status": str(exc.code), "Msg": exc.message})
    return json_answer({"Result": True, "Status": "0", "Msg": _send_body(result)})


# ---------------------------------------------------------------- queries


def _page(params: dict[str, str]) -> int:
    try:
        page = int(params.get("PNO", "").strip() or 1)
    except ValueError:
        return 1
    return max(page, 1)


def _clean(value: str) -> str:
    return value.translate(_CONTROL_CHARS)


def _delivery_status(state: SandboxState, params: dict[str, str], kind: str) -> Answer:
    account = _account(state, params)
    batch: Batch | None = state.batch_of(account, params.get("BID", "").strip(), kind)
    messages = batch.messages if batch is not None else []
    page = _page(params)
    rows = messages[(page - 1) * STATUS_PAGE : page * STATUS_PAGE]
    now = state.clock.now()
    if params.get("RESPFORMAT", "").strip() == "1":
        records = []
        for m in rows:
            received = state.received_at(m, now)
            records.append(
                {
                    "Name": m.name,
                    "Mobile": m.mobile,
                    "SendTime": taipei_slash(m.send_at),
                    "Cost": points_text(m.points),
                    "Status": state.status(m, now),
                    "ReceivedTime": taipei_slash(received) if received is not None else "",
                    "MR": m.mr,
                }
            )
        return json_answer({"Count": len(messages), "Records": records})
    if not rows:
        return text(str(len(messages)) + ("\r\n" if account.empty_status_newline else ""))
    six = account.status_columns == 6
    # A line changes only when the clock crosses one of the message's two
    # instants, when the state's outcome rules change, or with the column count.
    epoch = state.version * 8 + (4 if six else 0)
    lines = [str(len(messages))]
    append = lines.append
    for m in rows:
        key = epoch + (0 if now < m.send_at else 1 if now < m.final_at else 2)
        if m.row is None or m.row_key != key:
            m.row, m.row_key = status_line(state, m, now, six), key
        append(m.row)
    return text("\r\n".join(lines))


def status_line(state: SandboxState, m, now: float, six: bool) -> str:
    """One message's getDeliveryStatus row, byte for byte as the gateway writes it."""
    line = (
        f"{_clean(m.name)}\t{m.mobile}\t{taipei_slash(m.send_at)}\t{points_text(m.points)}"
        f"\t{state.status(m, now)}"
    )
    if six:
        received = state.received_at(m, now)
        line += "\t" + (taipei_slash(received) if received is not None else "")
    return line


def get_delivery_status(state: SandboxState, params: dict[str, str]) -> Answer:
    return _delivery_status(state, params, "sms")


def get_mms_delivery_status(state: SandboxState, params: dict[str, str]) -> Answer:
    return _delivery_status(state, params, "mms")


def get_reply_message(state: SandboxState, params: dict[str, str]) -> Answer:
    account = _account(state, params)
    batch = state.batches.get(params.get("BID", "").strip())
    replies = batch.replies if batch is not None and batch.uid == account.uid else []
    page = _page(params)
    lines = [str(len(replies))]
    for r in replies[(page - 1) * REPLY_PAGE : page * REPLY_PAGE]:
        lines.append(f"{_clean(r.name)}\t{r.mobile}\t{_clean(r.text)}\t{taipei_slash(r.at)}")
    return text("\r\n".join(lines))


def get_credit(state: SandboxState, params: dict[str, str]) -> Answer:
    return text(f"{_account(state, params).credit:.2f}")


def _erase(state: SandboxState, params: dict[str, str], kind: str) -> Answer:
    account = _account(state, params)
    result = state.erase(account, params.get("BID", "").strip(), kind)
    if result is None:
        return text("")
    count, refund = result
    return text(f"{count},{points_text(refund)}")


def erase_booking(state: SandboxState, params: dict[str, str]) -> Answer:
    return _erase(state, params, "sms")


def erase_mms_booking(state: SandboxState, params: dict[str, str]) -> Answer:
    return _erase(state, params, "mms")


_HANDLERS: dict[str, Callable[[SandboxState, dict[str, str]], Answer]] = {
    "sendsms": send_sms,
    "sendsms4filtermessage": send_sms_filtered,
    "mms/sendmms": send_mms,
    "getdeliverystatus": get_delivery_status,
    "mms/getdeliverystatus": get_mms_delivery_status,
    "getreplymessage": get_reply_message,
    "getcredit": get_credit,
    "erasebooking": erase_booking,
    "mms/erasebooking": erase_mms_booking,
}
