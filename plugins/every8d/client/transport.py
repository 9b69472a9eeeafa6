"""``Transport``: moves bytes to the gateway and decides, per call, what a failure means.

It owns the pooled sessions, the credentials and the deadline; no other code
puts UID or PWD on the wire, and only ever in a POST body to the configured
host.  What a failure means depends on the call's kind:

* ``read`` (status, replies, credit) is retried with backoff and
  ``Retry-After`` by urllib3, since repeating it cannot text anyone twice;
* ``send`` is retried only when the request provably never left (connection
  refused, DNS failure, connect timeout); any other failure after the request
  was written raises :class:`~every8d.errors.SendOutcomeUnknownError`;
* ``erase`` is like a send on the wire, but its failures are read failures:
  the client repeats it itself, knowing an attempt was lost.

No call follows a redirect (a 3xx names its status and target host), and every
call has a total deadline, so a server trickling bytes cannot hold it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from every8d.client.settings import ClientSettings, Credentials
from every8d.errors import (
    Every8dError,
    GatewayUnreachableError,
    HttpStatusError,
    ReadFailedError,
    RedirectRefusedError,
    SendOutcomeUnknownError,
    WireFormatError,
    register_secret,
)

log = logging.getLogger(__name__)

CallKind = Literal["read", "send", "erase"]
RETRY_STATUSES = (429, 500, 502, 503, 504)
_BODY_CHUNK = 64 * 1024


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
    chunks: list[bytes] = []
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


def bad_answer(endpoint: str, problem: str, body: Any, is_send: bool, recipients: int) -> Every8dError:
    """An answer in no known format: for a send the outcome is unknown, for a read it is a format error."""
    error = WireFormatError(endpoint, problem, body)
    if is_send:
        unknown = SendOutcomeUnknownError(endpoint, str(error), recipients)
        unknown.__cause__ = error
        return unknown
    return error


class Transport:
    """POSTs with the credentials in the body to ``<base_url>/<api_path><endpoint>``; returns answer text.

    Sessions are created on first use, under a lock, so threads may share one transport.
    """

    def __init__(self, settings: ClientSettings, credentials: Credentials, *, api_path: str) -> None:
        self.settings = settings
        self.api_path = api_path
        self._credentials = credentials
        self._sessions: dict[CallKind, Any] = {}
        self._lock = threading.Lock()
        register_secret(credentials.pwd)

    def __repr__(self) -> str:
        return f"Transport({self.settings.base_url!r}, uid={self._credentials.uid!r})"

    def url_for(self, endpoint: str) -> str:
        """Full URL of ``endpoint`` (e.g. ``sendSMS.ashx``) under the base URL and API path."""
        return f"{self.settings.base_url}/{self.api_path}{endpoint}"

    # -- sessions ------------------------------------------------------------------------

    def _new_session(self, *, read_retries: int, connect_retries: int) -> Any:
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
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.settings.pool_size, max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = f"airflow-provider-every8d/{__version__}"
        verify = self.settings.verify
        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.verify = verify
        return session

    def session(self, kind: CallKind) -> Any:
        """The pooled session for ``kind``: reads retry errors, 5xx and Retry-After; sends and erases
        retry only a connection that could not be opened."""
        with self._lock:
            session = self._sessions.get(kind)
            if session is None:
                retries = max(self.settings.read_retries, 0)
                if kind == "read":
                    session = self._new_session(read_retries=retries, connect_retries=retries)
                else:
                    session = self._new_session(read_retries=0, connect_retries=max(retries, 1))
                self._sessions[kind] = session
            return session

    def close(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

    # -- calls ---------------------------------------------------------------------------

    def post(
        self,
        endpoint: str,
        form: dict[str, str] | None = None,
        *,
        json_body: dict[str, Any] | None = None,
        kind: CallKind = "read",
        recipients: int = 0,
    ) -> str:
        """POST to ``endpoint`` with the credentials in the body; return the answer's text.

        The only place UID and PWD are put on the wire.  Redirects are never
        followed, and the whole call (answer body included) ends by the deadline.
        """
        import requests

        settings, credentials = self.settings, self._credentials
        is_send = kind == "send"
        session = self.session(kind)
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
                url,
                timeout=(settings.connect_timeout, min(settings.read_timeout, settings.deadline)),
                allow_redirects=False,
                stream=True,
                **kwargs,
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
        except UnicodeDecodeError as error:
            raise bad_answer(endpoint, "answer is not UTF-8 text", content, is_send, recipients) from error
        if text.lstrip()[:1] == "<":
            raise bad_answer(endpoint, "an HTML page instead of a gateway answer", text, is_send, recipients)
        return text
