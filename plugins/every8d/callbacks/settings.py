"""Configuration of the push receiver, read from the ``[every8d]`` section and checked once.

The receiver is public (Airflow puts no login in front of plugin apps and the
gateway signs nothing), so its shared token is the only lock: a missing, short
or placeholder token is refused here instead of being discovered by someone
else.  Only the environment and ``airflow.cfg`` are read (no metadata DB, nothing
at import time) so the same settings work under ``airflow api-server`` and standalone.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from every8d import settings
from every8d.optout import DEFAULT_OPT_OUT_KEYWORDS, ENV_OPT_OUT_KEYWORDS, parse_keywords  # noqa: F401 (settings API)
from every8d.paths import default_path

ENV_TOKEN = settings.env_name("push_token")
ENV_TOKEN_FILE = settings.env_name("push_token_file")
ENV_ALLOWED_CIDRS = settings.env_name("push_allowed_cidrs")
ENV_JOURNAL = settings.env_name("push_journal")

MIN_TOKEN_LENGTH = 32
MIN_DISTINCT_CHARS = 12
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_\-.~]+$")  # URL-safe: travels unescaped in a query string
# Words of five letters or more: a random token contains one by chance about once in a million.
_PLACEHOLDER_WORDS = (
    "changethis",
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "example",
    "secret",
    "password",
    "token",
    "default",
    "replace",
    "dummy",
    "12345",
    "abcde",
    "xxxxx",
)


class SettingsError(ValueError):
    """The receiver is not (correctly) configured; the message never contains the token."""


def check_token(token: str) -> str:
    """``token`` if it is strong enough to guard a public endpoint, else :class:`SettingsError`.

    Generate one with ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
    """
    if not token:
        raise SettingsError(
            f"no push token: set [every8d] push_token ({ENV_TOKEN}) or push_token_file ({ENV_TOKEN_FILE})"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise SettingsError(f"the push token is too short: use at least {MIN_TOKEN_LENGTH} characters")
    if not _TOKEN_CHARS.match(token):
        raise SettingsError("the push token may only contain A-Z a-z 0-9 - _ . ~ (it travels in a URL)")
    lowered = token.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS):
        raise SettingsError("the push token looks like a placeholder: generate a random one")
    if len(set(token)) < MIN_DISTINCT_CHARS:
        raise SettingsError("the push token is not random enough: generate a random one")
    return token


def parse_tokens(text: str) -> tuple[str, ...]:
    """One token, or several separated by commas while rotating; each must pass :func:`check_token`."""
    tokens = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tokens:
        check_token("")
    return tuple(check_token(t) for t in tokens)


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated CIDRs (``203.0.113.0/24, 2001:db8::/32``); empty means every address."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(f"[every8d] push_allowed_cidrs: not a CIDR: {item!r}") from None
    return tuple(networks)


def default_journal_path() -> Path:
    """``$AIRFLOW_HOME/every8d/push-journal.sqlite3`` (``~/airflow`` when unset)."""
    return default_path("push-journal.sqlite3")


def journal_path_from_env() -> Path:
    """The journal file the receiver writes and the flush reads (they must agree)."""
    configured = settings.get("push_journal")
    return Path(configured).expanduser() if configured else default_journal_path()


def _float_env(key: str, default: float) -> float:
    name = f"[every8d] {key}"
    text = settings.get(key)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


@dataclass(frozen=True)
class PushSettings:
    """What the receiver needs; build with :meth:`from_env` or directly in tests.

    :param tokens: accepted tokens (more than one only while rotating).
    :param journal_path: the SQLite journal every push is recorded in before the 200.
    :param allowed_networks: client networks allowed to push; empty allows all.
    :param record_timeout: seconds a push waits for its journal write before a 503.
    :param busy_timeout: seconds SQLite waits for another writer's lock.
    """

    tokens: tuple[str, ...]
    journal_path: Path
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    record_timeout: float = 5.0
    busy_timeout: float = 2.0
    token_bytes: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for token in self.tokens:
            check_token(token)
        if not self.tokens:
            check_token("")
        object.__setattr__(self, "token_bytes", tuple(t.encode("ascii") for t in self.tokens))
        object.__setattr__(self, "journal_path", Path(self.journal_path))

    def __repr__(self) -> str:  # never show the tokens
        networks = len(self.allowed_networks)
        return f"PushSettings(journal_path={str(self.journal_path)!r}, allowed_networks={networks})"

    @classmethod
    def from_env(cls) -> PushSettings:
        """Settings from ``[every8d] push_*``; :class:`SettingsError` when missing or weak."""
        token_text = settings.get("push_token")
        token_file = settings.get("push_token_file")
        if not token_text.strip() and token_file:
            try:
                token_text = Path(token_file).read_text(encoding="utf-8")
            except OSError as error:
                raise SettingsError(
                    f"[every8d] push_token_file: cannot read the token file ({error.strerror})"
                ) from None
        return cls(
            tokens=parse_tokens(token_text),
            journal_path=journal_path_from_env(),
            allowed_networks=parse_networks(settings.get("push_allowed_cidrs")),
            record_timeout=_float_env("push_record_timeout", 5.0),
            busy_timeout=_float_env("push_busy_timeout", 2.0),
        )
