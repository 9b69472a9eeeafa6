"""``Every8dHook``: the whole EVERY8D HTTP API 2.1 over one pooled session.

The hook owns the base URL and the credentials; UID and PWD enter the POST
body in one place (:meth:`Every8dHook._post`) and nowhere else.  Parsing lives
in :mod:`every8d.wire`; this module only moves bytes and decides, per call,
what a failure means:

* reads (status, replies, credit, erase) are retried with backoff and
  ``Retry-After``, since repeating them cannot text anyone twice;
* sends are retried only when the request provably never left (connection
  refused, DNS failure, connect timeout).  Any other failure after the request
  was written raises :class:`~every8d.errors.SendOutcomeUnknownError`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook

from every8d import wire
from every8d.errors import (
    Every8dError,
    GatewayUnreachableError,
    HttpStatusError,
    ReadFailedError,
    SendOutcomeUnknownError,
    WireFormatError,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.e8d.tw"
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_RETRIES = 3
DEFAULT_POOL_SIZE = 16
RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class _Credentials:
    uid: str
    pwd: str = field(repr=False)

    def __repr__(self) -> str:  # never show the password, even in a debugger
        return f"_Credentials(uid={self.uid!r}, pwd=***)"


@dataclass(frozen=True)
class HookSettings:
    """Everything the hook resolved from its Connection and arguments (no secrets)."""

    base_url: str
    read_timeout: float
    connect_timeout: float
    verify: bool | str
    validity_minutes: int | None
    read_retries: int


def _as_bool_or_path(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in {"true", "1", "yes", "on", ""}:
        return True
    if text.lower() in {"false", "0", "no", "off"}:
        return False
    return text  # a CA bundle path


def _optional_int(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return int(value)


def normalize_base_url(host: str, port: int | None = None, schema: str | None = None) -> str:
    """The connection's host as a base URL: scheme added if missing, port kept, path prefix kept.

    ``api.e8d.tw`` → ``https://api.e8d.tw``; ``http://127.0.0.1:8765/tenant/`` →
    ``http://127.0.0.1:8765/tenant``.  A trailing ``/API21/HTTP`` is dropped so
    both spellings of an enterprise URL work.
    """
    host = (host or "").strip()
    if not host:
        raise ValueError("the EVERY8D connection has no host: set it to the gateway's base URL")
    if "://" not in host:
        host = f"{schema or 'https'}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if path.lower().endswith("/" + wire.API_PATH.rstrip("/").lower()):
        path = path[: -len(wire.API_PATH.rstrip("/")) - 1]
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _urllib3_reason(exc: BaseException) -> BaseException | None:
    """The urllib3 error inside a requests exception (requests wraps it in MaxRetryError)."""
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, BaseException):
            return getattr(arg, "reason", None) or arg
    return None


def _never_left(exc: BaseException) -> bool:
    """True when requests failed before the request could reach the server."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    return isinstance(_urllib3_reason(exc), (NewConnectionError, ConnectTimeoutError))


def _failure_reason(exc: BaseException) -> str:
    """A short, secret-free description of a transport failure."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(_urllib3_reason(exc), ReadTimeoutError):
        return "no answer before the read timeout"
    if _never_left(exc):
        return "connection refused or host not found"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection closed or reset without an answer"
    return type(exc).__name__


class Every8dHook(BaseHook):
    """Talk to the EVERY8D SMS gateway (HTTP API 2.1).

    The connection's host is the base URL, including any enterprise path
    prefix; login is the UID and password the PWD.  Extras: ``timeout`` (read
    seconds), ``connect_timeout``, ``verify`` (TLS verification, or a CA
    bundle path), ``validity_minutes`` (default ``RETRYTIME``) and
    ``read_retries``.  Arguments given here override the extras.

    :param every8d_conn_id: the Airflow connection to use.
    :param base_url: override the connection's host.
    :param timeout: read timeout in seconds.
    :param connect_timeout: connect timeout in seconds.
    :param verify: TLS verification (bool) or a CA bundle path.
    :param validity_minutes: default validity window for sends (``RETRYTIME``).
    :param read_retries: automatic retries for read-only calls.
    :param pool_size: HTTP connections kept per session, for concurrent callers.
    """

    conn_name_attr = "every8d_conn_id"
    default_conn_name = "every8d_default"
    conn_type = "every8d"
    hook_name = "EVERY8D SMS"

    def __init__(
        self,
        every8d_conn_id: str = default_conn_name,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        verify: bool | str | None = None,
        validity_minutes: int | None = None,
        read_retries: int | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        super().__init__()
        self.every8d_conn_id = every8d_conn_id
        self._overrides = {
            "base_url": base_url,
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "verify": verify,
            "validity_minutes": validity_minutes,
            "read_retries": read_retries,
        }
        self.pool_size = pool_size

    # -- configuration ---------------------------------------------------------------

    @cached_property
    def _connection_parts(self) -> tuple[HookSettings, _Credentials]:
        from airflow.sdk.log import mask_secret

        conn = self.get_connection(self.every8d_conn_id)
        if conn.password:
            mask_secret(conn.password)
        extras = conn.extra_dejson or {}

        def pick(name: str, extra_key: str, default: Any) -> Any:
            value = self._overrides.get(name)
            if value is not None:
                return value
            extra = extras.get(extra_key)
            return default if extra is None or extra == "" else extra

        host = self._overrides["base_url"] or conn.host or DEFAULT_BASE_URL
        settings = HookSettings(
            base_url=normalize_base_url(host, None if self._overrides["base_url"] else conn.port, conn.schema or None),
            read_timeout=float(pick("timeout", "timeout", DEFAULT_READ_TIMEOUT)),
            connect_timeout=float(pick("connect_timeout", "connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            verify=_as_bool_or_path(pick("verify", "verify", True)),
            validity_minutes=_optional_int(pick("validity_minutes", "validity_minutes", None)),
            read_retries=int(pick("read_retries", "read_retries", DEFAULT_READ_RETRIES)),
        )
        if not conn.login or not conn.password:
            raise ValueError(
                f"connection {self.every8d_conn_id!r} needs a login (UID) and a password (PWD)"
            )
        return settings, _Credentials(conn.login, conn.password)

    @property
    def settings(self) -> HookSettings:
        """Resolved settings (base URL, timeouts, ...): never the credentials."""
        return self._connection_parts[0]

    def _session(self, *, read_retries: int, connect_retries: int) -> Any:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        from every8d import __version__

        retry = Retry(
            total=read_retries + connect_retries,
            connect=connect_retries,
            read=read_retries,
            status=read_retries,
            other=0,
            allowed_methods=None,
            status_forcelist=RETRY_STATUSES if read_retries else (),
            backoff_factor=0.5,
            backoff_max=30,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        session = requests.Session()
        # Proxy and CA-bundle settings come from the environment once, here, not on every call
        # (requests looks them up, netrc included, per request when ``trust_env`` is on).
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.settings.base_url))
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = f"airflow-provider-every8d/{__version__}"
        verify = self.settings.verify
        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.verify = verify
        return session

    @cached_property
    def read_session(self) -> Any:
        """Session for calls that cannot text anyone: retried on errors, 5xx and Retry-After."""
        return self._session(read_retries=self.settings.read_retries, connect_retries=self.settings.read_retries)

    @cached_property
    def send_session(self) -> Any:
        """Session for sends: retried only when the connection could not be opened."""
        return self._session(read_retries=0, connect_retries=max(self.settings.read_retries, 1))

    def get_conn(self) -> Any:
        """The pooled read session (``BaseHook`` convention)."""
        return self.read_session

    def close(self) -> None:
        """Close the pooled connections."""
        for name in ("read_session", "send_session"):
            session = self.__dict__.pop(name, None)
            if session is not None:
                session.close()

    def url_for(self, endpoint: str) -> str:
        """Full URL of ``endpoint`` (e.g. ``sendSMS.ashx``) under the base URL and API path."""
        return f"{self.settings.base_url}/{wire.API_PATH}{endpoint}"

    # -- transport -------------------------------------------------------------------

    def _post(
        self,
        endpoint: str,
        form: dict[str, str] | None = None,
        *,
        json_body: dict[str, Any] | None = None,
        recipients: int = 0,
    ) -> str:
        """POST to ``endpoint`` with the credentials in the body; return the answer's text.

        The only place UID and PWD are put on the wire.
        """
        import requests

        settings, credentials = self._connection_parts
        is_send = endpoint in wire.SEND_ENDPOINTS
        session = self.send_session if is_send else self.read_session
        auth = {"UID": credentials.uid, "PWD": credentials.pwd}
        if json_body is not None:
            payload = json.dumps({**auth, **json_body}, ensure_ascii=False).encode("utf-8")
            kwargs: dict[str, Any] = {
                "data": payload,
                "headers": {"Content-Type": "application/json; charset=utf-8"},
            }
        else:
            kwargs = {"data": {**auth, **(form or {})}}
        log.debug("EVERY8D POST %s (%d recipient(s))", endpoint, recipients)
        try:
            response = session.post(
                self.url_for(endpoint), timeout=(settings.connect_timeout, settings.read_timeout), **kwargs
            )
        except requests.exceptions.RequestException as exc:
            reason = _failure_reason(exc)
            if _never_left(exc):
                raise GatewayUnreachableError(endpoint, reason) from None
            if is_send:
                raise SendOutcomeUnknownError(endpoint, reason, recipients) from None
            raise ReadFailedError(endpoint, reason) from None
        if response.status_code != 200:
            if is_send:
                raise SendOutcomeUnknownError(endpoint, f"HTTP {response.status_code}", recipients)
            raise HttpStatusError(endpoint, response.status_code, response.content[:200])
        try:
            text = response.content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise self._bad_answer(endpoint, "answer is not UTF-8 text", response.content, is_send, recipients)
        if text.lstrip()[:1] == "<":
            raise self._bad_answer(endpoint, "an HTML page instead of a gateway answer", text, is_send, recipients)
        return text

    @staticmethod
    def _bad_answer(endpoint: str, problem: str, body: Any, is_send: bool, recipients: int) -> Every8dError:
        error = WireFormatError(endpoint, problem, body)
        if is_send:
            unknown = SendOutcomeUnknownError(endpoint, str(error), recipients)
            unknown.__cause__ = error
            return unknown
        return error

    def _parse_send(self, endpoint: str, text: str, recipients: int, parser: Any = wire.parse_send_response) -> wire.SendResult:
        """Parse a send's answer; an unparseable one leaves the outcome unknown."""
        try:
            return parser(text, endpoint)
        except WireFormatError as error:
            raise self._bad_answer(endpoint, error.problem, text, True, recipients) from None

    # -- sends -------------------------------------------------------------------------

    def _send_form(
        self,
        message: str,
        destinations: Iterable[str],
        subject: str,
        schedule_at: datetime | None,
        validity_minutes: int | None,
    ) -> tuple[dict[str, str], int]:
        if not message:
            raise ValueError("the message is empty (the gateway would answer -24)")
        numbers = [str(number).strip() for number in destinations]
        if not numbers:
            raise ValueError("no destination numbers (the gateway would answer -27)")
        for index, number in enumerate(numbers, start=1):
            if not number or "," in number:
                raise ValueError(f"destination {index} is empty or contains a comma")
        validity = validity_minutes if validity_minutes is not None else self.settings.validity_minutes
        form = {
            "SB": subject,
            "MSG": message,
            "DEST": ",".join(numbers),
            "ST": wire.format_schedule_time(schedule_at) if schedule_at else "",
            "RETRYTIME": "" if validity is None else str(int(validity)),
        }
        return form, len(numbers)

    def send_sms(
        self,
        message: str,
        destinations: Iterable[str],
        *,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> wire.SendResult:
        """Send one text to one or more numbers in a single call (``sendSMS.ashx``).

        :param message: the text (UTF-8, any length; the gateway splits over 333 characters).
        :param destinations: numbers, E.164 (``+886912345678``) or local (``0912345678``).
        :param subject: a note for the account's records; not sent to phones.
        :param schedule_at: timezone-aware send time (converted to Asia/Taipei); None sends now.
        :param validity_minutes: how long the gateway keeps trying (``RETRYTIME``).
        :raises SendOutcomeUnknownError: the request left but no usable answer came back.
        """
        form, count = self._send_form(message, destinations, subject, schedule_at, validity_minutes)
        return self._parse_send(wire.SEND_SMS, self._post(wire.SEND_SMS, form, recipients=count), count)

    def send_sms_filtered(
        self,
        message: str,
        destinations: Iterable[str],
        *,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> wire.SendResult:
        """Like :meth:`send_sms`, but the gateway skips numbers sent the same text in the last 24 h.

        The skipped numbers come back in ``SendResult.filtered``.  When every number
        is skipped the gateway answers -98, raised as a :class:`GatewayError`.
        """
        form, count = self._send_form(message, destinations, subject, schedule_at, validity_minutes)
        text = self._post(wire.SEND_SMS_FILTERED, form, recipients=count)
        return self._parse_send(wire.SEND_SMS_FILTERED, text, count)

    def send_mms(
        self,
        message: str,
        destinations: Iterable[str],
        *,
        image: bytes,
        image_type: str | None = None,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> wire.SendResult:
        """Send an MMS (text plus one jpg/png/gif image up to 300 KB) to Taiwan numbers.

        :param image: the image file's bytes; its type is read from its magic bytes.
        :param image_type: optional declared type, checked against the bytes.
        """
        wire.check_mms_subject(subject)
        kind = wire.check_mms_image(image, image_type)
        form, count = self._send_form(message, destinations, subject, schedule_at, validity_minutes)
        form["ATTACHMENT"] = base64.b64encode(image).decode("ascii")
        form["TYPE"] = kind
        return self._parse_send(wire.SEND_MMS, self._post(wire.SEND_MMS, form, recipients=count), count)

    def send_param_sms(
        self,
        recipients: Sequence[wire.ParamRecipient],
        *,
        template: str = "",
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> wire.SendResult:
        """Send personalized texts in one call (``SendParamSMS.ashx``).

        With a ``template``, each recipient's ``params`` fill ``%field1%``..``%field5%``;
        without one, each recipient's single param is its whole text.  Each
        recipient's ``record_id`` (``Mr``) comes back in pushes and JSON status.
        """
        validity = validity_minutes if validity_minutes is not None else self.settings.validity_minutes
        body = wire.build_param_sms_body(
            recipients, template=template, subject=subject, schedule_at=schedule_at, validity_minutes=validity
        )
        count = len(recipients)
        text = self._post(wire.SEND_PARAM_SMS, json_body=body, recipients=count)
        return self._parse_send(wire.SEND_PARAM_SMS, text, count, wire.parse_param_send_response)

    # -- status and replies -----------------------------------------------------------------

    def get_delivery_status_page(
        self, batch_id: str, page: int = 1, *, mms: bool = False, with_record_ids: bool = False
    ) -> wire.StatusPage:
        """One page (up to 1000 rows) of a batch's delivery status.

        :param with_record_ids: ask for the JSON form, which also carries each message's MR.
        """
        text = self.get_delivery_status_text(batch_id, page, mms=mms, with_record_ids=with_record_ids)
        endpoint = wire.MMS_DELIVERY_STATUS if mms else wire.DELIVERY_STATUS
        if with_record_ids:
            return wire.parse_status_page_json(text, endpoint)
        return wire.parse_status_page(text, endpoint)

    def get_delivery_status_text(
        self, batch_id: str, page: int = 1, *, mms: bool = False, with_record_ids: bool = False
    ) -> str:
        """One status page as the gateway wrote it, for callers that parse many pages at once
        (:func:`every8d.wire.parse_status_pages`, or ``parse_status_page_json`` for the JSON form)."""
        endpoint = wire.MMS_DELIVERY_STATUS if mms else wire.DELIVERY_STATUS
        form = {"BID": batch_id, "PNO": str(page)}
        if with_record_ids:
            form["RESPFORMAT"] = "1"
        return self._post(endpoint, form)

    def iter_delivery_status_pages(
        self, batch_id: str, *, mms: bool = False, with_record_ids: bool = False
    ) -> Iterator[wire.StatusPage]:
        """Page through a batch's status (``PNO`` 1, 2, ...) until its count has been read.

        Each page is yielded as it arrives, so callers can write it out and keep
        memory flat.  A short page ends the listing even if the count said more.
        """
        page_no, seen = 1, 0
        while True:
            page = self.get_delivery_status_page(batch_id, page_no, mms=mms, with_record_ids=with_record_ids)
            seen += page.rows
            yield page
            if seen >= page.total or page.rows < wire.STATUS_PAGE_SIZE:
                return
            page_no += 1

    def iter_delivery_status(
        self, batch_id: str, *, mms: bool = False, with_record_ids: bool = False
    ) -> Iterator[wire.DeliveryStatus]:
        """Every message of a batch as :class:`~every8d.wire.DeliveryStatus`, page by page."""
        for page in self.iter_delivery_status_pages(batch_id, mms=mms, with_record_ids=with_record_ids):
            yield from page.records()

    def iter_replies(self, batch_id: str) -> Iterator[wire.Reply]:
        """Every reply to a batch (``getReplyMessage.ashx``, 10 a page)."""
        page_no, seen = 1, 0
        while True:
            text = self._post(wire.REPLY_MESSAGES, {"BID": batch_id, "PNO": str(page_no)})
            page = wire.parse_reply_page(text, wire.REPLY_MESSAGES)
            seen += len(page.replies)
            yield from page.replies
            if seen >= page.total or len(page.replies) < wire.REPLY_PAGE_SIZE:
                return
            page_no += 1

    # -- account and bookings -------------------------------------------------------------------

    def get_credit(self) -> Decimal:
        """Points left on the account."""
        return wire.parse_credit(self._post(wire.CREDIT), wire.CREDIT)

    def erase_booking(self, batch_id: str, *, mms: bool = False) -> wire.EraseResult:
        """Cancel a batch's still-scheduled messages and get their points back.

        The gateway's empty answer ("nothing found") returns ``EraseResult(found=False)``.
        """
        endpoint = wire.MMS_ERASE_BOOKING if mms else wire.ERASE_BOOKING
        return wire.parse_erase_response(self._post(endpoint, {"BID": batch_id}), endpoint)

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with getCredit (the UI's Test button and ``airflow connections test``)."""
        try:
            credit = self.get_credit()
        except (Every8dError, ValueError) as error:
            return False, str(error)
        return True, f"Connected to EVERY8D at {self.settings.base_url}: {credit} points left"
