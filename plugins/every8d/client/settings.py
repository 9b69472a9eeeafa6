"""What a client is configured with: where the gateway is, how long a call may take, the credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from every8d.settings import parse_bool

#: The public gateway, for documentation and connection forms only: a connection without a host is
#: refused rather than pointed here, so a half-configured test connection cannot text real people.
DEFAULT_BASE_URL = "https://api.e8d.tw"
DEFAULT_READ_TIMEOUT = 30.0
#: Seconds a whole call may take, answer body included, whatever the per-read timeout.
DEFAULT_DEADLINE = 120.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_RETRIES = 3
DEFAULT_POOL_SIZE = 16
#: API paths a base URL may be written with; they are dropped so both spellings of a host work.
KNOWN_API_PATHS = ("API21/HTTP",)


@dataclass(frozen=True)
class Credentials:
    """UID and PWD; the password never shows in a repr, even in a debugger."""

    uid: str
    pwd: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.uid or not self.pwd:
            raise ValueError("EVERY8D needs a login (UID) and a password (PWD)")

    def __repr__(self) -> str:
        return f"Credentials(uid={self.uid!r}, pwd=***)"


@dataclass(frozen=True)
class ClientSettings:
    """Everything a client needs besides the credentials (no secrets here).

    :param base_url: the gateway's base URL, enterprise path prefix included (see :func:`normalize_base_url`).
    :param read_timeout: seconds per read.
    :param connect_timeout: seconds to open a connection.
    :param verify: TLS verification, or a CA bundle path.
    :param validity_minutes: default ``RETRYTIME`` for sends.
    :param read_retries: automatic retries of read-only calls.
    :param deadline: seconds a whole call may take, answer included.
    :param pool_size: HTTP connections kept per session, for concurrent callers.
    """

    base_url: str
    read_timeout: float = DEFAULT_READ_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    verify: bool | str = True
    validity_minutes: int | None = None
    read_retries: int = DEFAULT_READ_RETRIES
    deadline: float = DEFAULT_DEADLINE
    pool_size: int = DEFAULT_POOL_SIZE


def as_bool_or_path(value: Any) -> bool | str:
    """A ``verify`` value from a form or an extra: a boolean spelled any usual way, else a CA bundle path.

    Unset (``""``) means verify; the words are :func:`every8d.settings.parse_bool`'s, one spelling list.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if not text:
        return True
    try:
        return parse_bool(text)
    except ValueError:
        return text


def optional_int(value: Any) -> int | None:
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
    for api_path in KNOWN_API_PATHS:
        if path.lower().endswith("/" + api_path.lower()):
            path = path[: -len(api_path) - 1]
    return urlunsplit((parts.scheme, netloc, path, "", ""))
