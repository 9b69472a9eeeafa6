"""``Every8dHook``: the whole EVERY8D HTTP API 2.1 over one pooled session.

The hook owns the base URL and the credentials; UID and PWD enter the POST
body in one place (:meth:`Every8dHook._post`) and nowhere else.  Parsing lives
in :mod:`every8d.wire`; this module only moves bytes and decides, per call,
what a failure means:

* reads (status, replies, credit, erase) are retried with backoff and
  ``Retry-After``, since repeating them cannot text anyone twice;
* sends are retried only when the request provably never left (connection
  refused, DNS failure, connect timeout).  Any other failure after the request
  was written raises :class:`~every8d.errors.SendOutcomeUnknownError`;
* no call follows a redirect (a 3xx names its status and target host), and
  every call has a total deadline, so a server trickling bytes cannot hold it;
* a listing (status, replies) counts only when complete, see
  :func:`every8d.wire.listing_problem`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from airflow.sdk import BaseHook

from every8d import wire
from every8d.hooks import DEFAULT_CONN_NAME
from every8d.errors import (
    Every8dError,
    GatewayError,
    GatewayUnreachableError,
    HttpStatusError,
    IncompleteListingError,
    ReadFailedError,
    RedirectRefusedError,
    SendOutcomeUnknownError,
    WireFormatError,
    register_secret,
)

log = logging.getLogger(__name__)

#: The public gateway, for documentation and connection forms only: a connection without a host is
#: refused rather than pointed here, so a half-configured test connection cannot text real people.
DEFAULT_BASE_URL = "https://api.e8d.tw"
DEFAULT_READ_TIMEOUT = 30.0
#: Seconds a whole call may take, answer body included, whatever the per-read timeout.
DEFAULT_DEADLINE = 120.0
_BODY_CHUNK = 64 * 1024
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
    deadline: float = DEFAULT_DEADLINE


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


class _DeadlinePassed(Exception):
    """The call's total deadline passed while its answer was still arriving."""


def _socket_of(response: Any) -> Any:
    """The socket under a streamed requests response (to bound each read by the deadline), or None."""
    fp = getattr(getattr(response, "raw", None), "_fp", None)
    return getattr(getattr(getattr(fp, "fp", None), "raw", None), "_sock", None)


def _read_within(response: Any, deadline_at: float, read_timeout: float) -> bytes:
    """The whole body of a streamed response, or :class:`_DeadlinePassed` once ``deadline_at`` passes.

    Every read waits at most what is left of the deadline, so a server that sends
    a byte just before each read timeout still cannot hold the call past it.
    """
    chunks = []
    sock = _socket_of(response)
    while True:
        remaining = deadline_at - time.monotonic()
        if remaining <= 0:
            raise _DeadlinePassed
        if sock is not None:
            try:
                sock.settimeout(max(0.001, min(read_timeout, remaining)))
            except OSError:
                sock = None
        try:
            chunk = response.raw.read1(_BODY_CHUNK, decode_content=True)
        except Exception as exc:  # urllib3's ReadTimeoutError / ProtocolError, or the socket's own
            if time.monotonic() >= deadline_at:
                raise _DeadlinePassed from None
            raise exc
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _redirect_target(url: str, location: str | None) -> str:
    """The host (and port) a redirect points to, without path, query or user info."""
    parts = urlsplit(urljoin(url, location or ""))
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


class Every8dHook(BaseHook):
    """Talk to the EVERY8D SMS gateway (HTTP API 2.1).

    The connection's host is the base URL, including any enterprise path
    prefix; login is the UID and password the PWD.  Extras: ``timeout`` (read
    seconds), ``connect_timeout``, ``verify`` (TLS verification, or a CA
    bundle path), ``validity_minutes`` (default ``RETRYTIME``), ``read_retries``
    and ``deadline`` (total seconds per call).  Arguments given here override the extras.

    :param every8d_conn_id: the Airflow connection to use.
    :param base_url: override the connection's host.
    :param timeout: read timeout in seconds.
    :param connect_timeout: connect timeout in seconds.
    :param verify: TLS verification (bool) or a CA bundle path.
    :param validity_minutes: default validity window for sends (``RETRYTIME``).
    :param read_retries: automatic retries for read-only calls.
    :param pool_size: HTTP connections kept per session, for concurrent callers.
    :param deadline: seconds a whole call may take, answer included (extra ``deadline``).
    """

    conn_name_attr = "every8d_conn_id"
    default_conn_name = DEFAULT_CONN_NAME
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
        deadline: float | None = None,
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
            "deadline": deadline,
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

        register_secret(conn.password)
        host = self._overrides["base_url"] or conn.host
        if not (host or "").strip():
            raise ValueError(
                f"connection {self.every8d_conn_id!r} has no host: set it to the gateway's base URL "
                f"(e.g. {DEFAULT_BASE_URL}, or the sandbox's http://127.0.0.1:<port>); "
                "a connection without one is refused rather than sent to the production gateway"
            )
        settings = HookSettings(
            base_url=normalize_base_url(host, None if self._overrides["base_url"] else conn.port, conn.schema or None),
            read_timeout=float(pick("timeout", "timeout", DEFAULT_READ_TIMEOUT)),
            connect_timeout=float(pick("connect_timeout", "connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            verify=_as_bool_or_path(pick("verify", "verify", True)),
            validity_minutes=_optional_int(pick("validity_minutes", "validity_minutes", None)),
            read_retries=int(pick("read_retries", "read_retries", DEFAULT_READ_RETRIES)),
            deadline=float(pick("deadline", "deadline", DEFAULT_DEADLINE)),
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
            redirect=0,
            raise_on_redirect=False,
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

    @cached_property
    def erase_session(self) -> Any:
        """Session for erases: like sends, repeated only by :meth:`erase_booking`, which knows
        that an attempt was lost (and then confirms an empty answer through the batch's status)."""
        return self._session(read_retries=0, connect_retries=max(self.settings.read_retries, 1))

    def get_conn(self) -> Any:
        """The pooled read session (``BaseHook`` convention)."""
        return self.read_session

    def close(self) -> None:
        """Close the pooled connections."""
        for name in ("read_session", "send_session", "erase_session"):
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
        session: Any = None,
    ) -> str:
        """POST to ``endpoint`` with the credentials in the body; return the answer's text.

        The only place UID and PWD are put on the wire.  Redirects are never
        followed, and the whole call (answer body included) ends by the deadline.
        """
        import requests

        settings, credentials = self._connection_parts
        is_send = endpoint in wire.SEND_ENDPOINTS
        session = session or (self.send_session if is_send else self.read_session)
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
        url = self.url_for(endpoint)
        deadline_at = time.monotonic() + settings.deadline

        def failed(reason: str) -> Every8dError:
            if is_send:
                return SendOutcomeUnknownError(endpoint, reason, recipients)
            return ReadFailedError(endpoint, reason)

        try:
            response = session.post(
                url, timeout=(settings.connect_timeout, min(settings.read_timeout, settings.deadline)),
                allow_redirects=False, stream=True, **kwargs,
            )
        except requests.exceptions.RequestException as exc:
            reason = _failure_reason(exc)
            if _never_left(exc):
                raise GatewayUnreachableError(endpoint, reason) from None
            raise failed(reason) from None
        with response:
            if 300 <= response.status_code < 400:
                refused = RedirectRefusedError(
                    endpoint, response.status_code, _redirect_target(url, response.headers.get("Location"))
                )
                if is_send:
                    raise SendOutcomeUnknownError(endpoint, str(refused), recipients) from refused
                raise refused
            try:
                content = _read_within(response, deadline_at, settings.read_timeout)
            except _DeadlinePassed:
                raise failed(f"no complete answer within the {settings.deadline:g}s deadline") from None
            except Exception:  # a read timeout, or the connection closed before Content-Length
                raise failed("the answer was cut off or timed out while it arrived") from None
        if response.status_code != 200:
            if is_send:
                raise SendOutcomeUnknownError(endpoint, f"HTTP {response.status_code}", recipients)
            raise HttpStatusError(endpoint, response.status_code, content[:2000])
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise self._bad_answer(endpoint, "answer is not UTF-8 text", content, is_send, recipients)
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
        result = self._parse_send(wire.SEND_SMS_FILTERED, text, count)
        problem = _filtered_problem(result, form["DEST"].split(","))
        if problem:
            raise SendOutcomeUnknownError(wire.SEND_SMS_FILTERED, problem, count)
        return result

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
        """Send an MMS (one jpg/png/gif image plus text, together up to 300 KB) to Taiwan mobiles.

        International numbers are refused before anything is sent (the gateway sends MMS in Taiwan only).

        :param image: the image file's bytes; its type is read from its magic bytes.
        :param image_type: optional declared type, checked against the bytes.
        """
        wire.check_mms_subject(subject)
        kind = wire.check_mms_image(image, image_type)
        wire.check_mms_size(image, message)
        form, count = self._send_form(message, destinations, subject, schedule_at, validity_minutes)
        abroad = [index for index, number in enumerate(form["DEST"].split(","), start=1)
                  if not wire.is_taiwan_mobile(number)]
        if abroad:
            raise ValueError(
                f"MMS goes to Taiwan mobiles only; {len(abroad)} destination(s) are not "
                f"(the first is destination {abroad[0]})"
            )
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
        memory flat.  The listing must be complete (every page but the last holds
        exactly 1000 rows, the rows add up to the count line): otherwise
        :class:`~every8d.errors.IncompleteListingError` is raised after the last
        page, so a caller must not act on the pages until the iterator is exhausted.
        """
        endpoint = wire.MMS_DELIVERY_STATUS if mms else wire.DELIVERY_STATUS
        page_no, rows, totals = 1, [], []
        while True:
            page = self.get_delivery_status_page(batch_id, page_no, mms=mms, with_record_ids=with_record_ids)
            rows.extend(page.page_rows or (page.rows,))
            totals.extend(page.page_totals or (page.total,))
            yield page
            total = totals[0]
            if page.rows < wire.STATUS_PAGE_SIZE or sum(rows) >= total:
                break
            page_no += 1
        problem = wire.listing_problem(total, rows, wire.STATUS_PAGE_SIZE, totals)
        if problem:
            raise IncompleteListingError(endpoint, problem)

    def iter_delivery_status(
        self, batch_id: str, *, mms: bool = False, with_record_ids: bool = False
    ) -> Iterator[wire.DeliveryStatus]:
        """Every message of a batch as :class:`~every8d.wire.DeliveryStatus`, page by page."""
        for page in self.iter_delivery_status_pages(batch_id, mms=mms, with_record_ids=with_record_ids):
            yield from page.records()

    def reply_pages(self, batch_id: str) -> list[wire.ReplyPage]:
        """Every reply page of a batch (``getReplyMessage.ashx``, 10 a page), proven complete.

        :raises IncompleteListingError: a short page before the last, or rows that do not add up.
        """
        pages: list[wire.ReplyPage] = []
        while True:
            text = self._post(wire.REPLY_MESSAGES, {"BID": batch_id, "PNO": str(len(pages) + 1)})
            pages.append(wire.parse_reply_page(text, wire.REPLY_MESSAGES))
            total, seen = pages[0].total, sum(len(page.replies) for page in pages)
            if len(pages[-1].replies) < wire.REPLY_PAGE_SIZE or seen >= total:
                break
        problem = wire.listing_problem(
            total, [len(page.replies) for page in pages], wire.REPLY_PAGE_SIZE, [page.total for page in pages]
        )
        if problem:
            raise IncompleteListingError(wire.REPLY_MESSAGES, problem)
        return pages

    def iter_replies(self, batch_id: str) -> Iterator[wire.Reply]:
        """Every reply to a batch (``replied_at`` in UTC); nothing is yielded unless the listing is complete."""
        for page in self.reply_pages(batch_id):
            yield from page.replies

    # -- account and bookings -------------------------------------------------------------------

    def get_credit(self) -> Decimal:
        """Points left on the account."""
        return wire.parse_credit(self._post(wire.CREDIT), wire.CREDIT)

    def erase_booking(self, batch_id: str, *, mms: bool = False) -> wire.EraseResult:
        """Cancel a batch's still-scheduled messages and get their points back.

        An erase is not a plain read: an attempt whose answer was lost may have
        cancelled everything, so a retry then finds nothing.  So attempts are
        repeated here, not by the session, and after a lost attempt an empty
        answer (or -4 "already deleted") is confirmed through the batch's status:
        rows in status 303 mean the lost attempt did the work (``found=True``,
        ``confirmed_by_status=True``; the refund it reported is unknown).  With no
        lost attempt, the gateway's empty answer returns ``EraseResult(found=False)``.
        """
        endpoint = wire.MMS_ERASE_BOOKING if mms else wire.ERASE_BOOKING
        attempts = max(self.settings.read_retries, 0) + 1
        lost = False
        for attempt in range(attempts):
            try:
                text = self._post(endpoint, {"BID": batch_id}, session=self.erase_session)
                result = wire.parse_erase_response(text, endpoint)
            except (ReadFailedError, HttpStatusError) as error:
                if not error.retry_safe or attempt + 1 == attempts:
                    raise
                lost = True
                time.sleep(min(0.5 * 2**attempt, 5.0))
                continue
            except GatewayError as error:
                if lost and error.code == -4:
                    return self._confirm_erase(batch_id, mms)
                raise
            if result.found or not lost:
                return result
            return self._confirm_erase(batch_id, mms)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _confirm_erase(self, batch_id: str, mms: bool) -> wire.EraseResult:
        """After a lost erase attempt: did it cancel?  The batch's cancelled (303) rows say."""
        import pyarrow.compute as pc

        cancelled = 0
        for page in self.iter_delivery_status_pages(batch_id, mms=mms):
            cancelled += pc.sum(pc.equal(page.table.column("status"), 303)).as_py() or 0
        log.info("EVERY8D erase of batch %s: a lost attempt cancelled %d message(s)", batch_id, cancelled)
        if not cancelled:
            return wire.EraseResult(found=False)
        return wire.EraseResult(found=True, deleted=cancelled, confirmed_by_status=True)

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with getCredit (the UI's Test button and ``airflow connections test``)."""
        try:
            credit = self.get_credit()
        except (Every8dError, ValueError) as error:
            return False, str(error)
        return True, f"Connected to EVERY8D at {self.settings.base_url}: {credit} points left"


def _filtered_problem(result: wire.SendResult, sent: Sequence[str]) -> str | None:
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
