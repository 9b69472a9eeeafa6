"""One exception hierarchy for everything that can go wrong talking to EVERY8D.

One root, :class:`Every8dError` (campaign errors included).  Whether a caller
may retry is decided by class, never by reading messages or flags: a class
that mixes in ``TransientError`` is safe to retry as it is, one that mixes in
``TerminalError`` is not (the shape of dlt's ``TransientException`` /
``TerminalException``); ``retry_safe`` is read from the class and cannot be set.

No message built here holds a password or a phone number: every excerpt of
gateway text is scrubbed of registered secrets (raw, URL- and form-encoded), of
anything that looks like ``PWD=...``, and of phone numbers (counted, and kept in
an attribute for code that needs them).
"""

from __future__ import annotations

import html
import re
import threading
from urllib.parse import quote, quote_plus

EXCERPT_CHARS = 120
REDACTED = "***"
NUMBER_PLACEHOLDER = "<number>"
#: Shorter secrets are not scrubbed by value (only as ``PWD=`` fields).
MIN_SECRET_CHARS = 4

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None

#: ``PWD=...`` in a form or query, ``"PWD": "..."`` in JSON, ``PWD: ...`` in a header-like echo.
_PWD_FIELD = re.compile(
    r"""(?ix)
    (\bpwd(?:%22|"|')?\s*(?:=|%3d|:|%3a)\s*(?:%22|"|')?)   # the key and its separator (maybe quoted)
    ([^&\s"'<>,;}\]]*)                              # the value, up to the next separator
    """
)
#: A phone number: 8 to 15 digits, maybe with a leading + (or %2B), not part of a longer word or id.
#: (A percent escape before it, e.g. the ``%2C`` between numbers of a URL-encoded DEST, is a separator.)
_PHONE = re.compile(r"(?:(?<=%[0-9A-Fa-f]{2})|(?<![\w\-.]))(?:\+|%2[bB])?\d{8,15}(?![\w\-])")


def register_secret(secret: str | None) -> None:
    """Scrub ``secret`` (and its URL/form encodings) from every excerpt from now on (the hook calls this)."""
    global _secret_pattern
    if not secret or len(secret) < MIN_SECRET_CHARS:
        return  # a tiny secret would blot out every word it occurs in; ``PWD=`` fields are still scrubbed
    variants = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret),
        secret.replace(" ", "+"),
        html.escape(secret),
    }
    with _secrets_lock:
        if variants <= _secrets:
            return
        _secrets.update(v for v in variants if v)
        ordered = sorted(_secrets, key=len, reverse=True)
        # Case-insensitive: proxies re-encode ``%2F`` as ``%2f``; redacting more than the secret is harmless.
        _secret_pattern = re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` without registered secrets, ``PWD=`` values and phone numbers.

    All three are found in the original text and their spans merged before anything is
    replaced: replacing one first could break another apart (a password of digits inside
    a number would leave the number's other digits unrecognised, and shown).
    """
    spans: list[tuple[int, int, str]] = []
    pattern = _secret_pattern
    if pattern is not None:
        spans += [(m.start(), m.end(), REDACTED) for m in pattern.finditer(text) if m.end() > m.start()]
    spans += [(m.start(2), m.end(2), REDACTED) for m in _PWD_FIELD.finditer(text) if m.group(2)]
    spans += [(m.start(), m.end(), NUMBER_PLACEHOLDER) for m in _PHONE.finditer(text)]
    if not spans:
        return text
    spans.sort()
    merged: list[list] = []
    for start, end, label in spans:
        if merged and start < merged[-1][1]:  # overlapping: one span, a secret wins over a number
            last = merged[-1]
            last[1] = max(last[1], end)
            last[2] = REDACTED if REDACTED in (last[2], label) else label
        else:
            merged.append([start, end, label])
    out, position = [], 0
    for start, end, label in merged:
        out += [text[position:start], label]
        position = end
    out.append(text[position:])
    return "".join(out)


def phone_numbers(text: str | None) -> tuple[str, ...]:
    """The phone numbers in a text (8 to 15 digits), in order."""
    return tuple(match.group(0) for match in _PHONE.finditer(text or ""))


#: Gateway codes whose text lists numbers: -306 ``手機格式不符:<number>`` (after the colon; the number
#: may be anything the caller sent, not only digits) and -98 ``<number>/<number>`` (the whole text).
_NUMBER_LIST_CODES = frozenset({-306, -98})


def _split_gateway_numbers(code: int, message: str) -> tuple[str, tuple[str, ...]]:
    """``(message to show, numbers)``: the numbers in a gateway error text, replaced by their count."""
    if code in _NUMBER_LIST_CODES and message:
        match = re.match(r"^([^:：]*[:：])?(.*)$", message, re.DOTALL)
        assert match is not None
        head, tail = match.group(1) or "", match.group(2)
        numbers = tuple(part for part in re.split(r"[\s,/;、]+", tail) if part)
        if numbers:
            return f"{head}<{len(numbers)} number(s)>", numbers
    return _PHONE.sub(NUMBER_PLACEHOLDER, message), phone_numbers(message)


def excerpt(text: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable, single-line, scrubbed excerpt of a response body for error messages.

    The whole body is scrubbed before it is cut, so a secret cannot survive half-cut, and before
    its whitespace is flattened too, so a secret with a non-breaking space in it is still found.
    """
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    flat = scrub(" ".join(scrub(text[: limit * 8]).split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class TerminalError(Exception):
    """Marker mixin: repeating the same call cannot help (bad input, bad credentials, refused, outcome
    unknown)."""


class TransientError(Exception):
    """Marker mixin: the same call may simply be tried again, as it is."""


class _RetrySafe:
    """``retry_safe``, read from the class (``TransientError`` or not) on classes and instances alike.

    It cannot be set, and :class:`Every8dError` refuses subclasses that define it,
    so no flag can contradict the class.
    """

    def __get__(self, instance: object, owner: type) -> bool:
        return issubclass(owner, TransientError)

    def __set__(self, instance: object, value: object) -> None:
        raise AttributeError("retry_safe follows the class: raise a TransientError or TerminalError subclass")


class Every8dError(Exception):
    """The root of every error this provider raises; retry is decided by the marker mixin a class carries.

    A class with neither :class:`TransientError` nor :class:`TerminalError` is a
    family (``GatewayError``, ``HttpStatusError``) whose constructor picks the
    marked subclass, as ``OSError(errno.ENOENT, ...)`` gives a ``FileNotFoundError``.
    """

    retry_safe = _RetrySafe()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "retry_safe" in cls.__dict__:
            raise TypeError(f"{cls.__name__} sets retry_safe; mix in TransientError or TerminalError instead")
        if issubclass(cls, TransientError) and issubclass(cls, TerminalError):
            raise TypeError(f"{cls.__name__} is both transient and terminal")


#: Gateway codes for refused credentials, and for a temporary condition a later retry may clear.
AUTH_CODES = frozenset({-100, -101, -300})
TEMPORARY_CODES = frozenset({-8})


class GatewayError(Every8dError):
    """The gateway answered with an error code (``-<code>,<message>``).

    :param endpoint: the endpoint's file name, e.g. ``sendSMS.ashx``.
    :param code: the gateway's (negative) code, e.g. ``-306``.
    :param meaning: the code's meaning in English, from our code table.
    :param gateway_message: the gateway's own message text (Chinese, as sent; never shown whole).

    The gateway's text often names phone numbers (``-306,手機格式不符:<number>``,
    ``-98,<numbers>``): the message says how many, ``numbers`` holds them.
    ``GatewayError(...)`` gives the subclass the code calls for:
    :class:`AuthenticationError`, :class:`TemporaryGatewayError` or :class:`GatewayRefusedError`.
    """

    def __new__(cls, endpoint: str, code: int, *args: object, **kwargs: object) -> GatewayError:
        if cls is GatewayError:
            cls = (
                AuthenticationError
                if code in AUTH_CODES
                else TemporaryGatewayError
                if code in TEMPORARY_CODES
                else GatewayRefusedError
            )
        return super().__new__(cls)

    def __init__(self, endpoint: str, code: int, meaning: str, gateway_message: str = "") -> None:
        self.endpoint = endpoint
        self.code = code
        self.meaning = meaning
        self.gateway_message = gateway_message
        shown, self.numbers = _split_gateway_numbers(code, gateway_message)
        detail = f" (gateway said: {excerpt(shown)})" if gateway_message else ""
        if self.numbers:
            detail += f" [{len(self.numbers)} phone number(s) in the attribute 'numbers']"
        super().__init__(f"EVERY8D {endpoint} failed with code {code}: {meaning}{detail}")


class GatewayRefusedError(GatewayError, TerminalError):
    """The gateway refused the call with an error code a retry cannot change (bad input, not found, ...)."""


class AuthenticationError(GatewayRefusedError):
    """Credentials were refused (-100, -101, -300): check the connection's login and password."""


class TemporaryGatewayError(GatewayError, TransientError):
    """The gateway reported a temporary condition (-8): a later retry may work."""


class WireFormatError(Every8dError, TerminalError):
    """The answer was not in any format the endpoint is known to produce (HTML, garbage, empty)."""

    def __init__(self, endpoint: str, problem: str, body: str | bytes | None = None) -> None:
        self.endpoint = endpoint
        self.problem = problem
        self.body_excerpt = excerpt(body)
        shown = f": {self.body_excerpt!r}" if self.body_excerpt else ""
        super().__init__(f"EVERY8D {endpoint} answered in an unexpected format ({problem}){shown}")


class HttpStatusError(Every8dError):
    """The gateway answered with a non-200 HTTP status.

    ``HttpStatusError(...)`` gives :class:`HttpUnavailableError` for 5xx and 429
    (the gateway could not serve now) and :class:`HttpRejectedError` for the rest.
    """

    def __new__(cls, endpoint: str, status: int, *args: object, **kwargs: object) -> HttpStatusError:
        if cls is HttpStatusError:
            cls = HttpUnavailableError if status >= 500 or status == 429 else HttpRejectedError
        return super().__new__(cls)

    def __init__(self, endpoint: str, status: int, body: str | bytes | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.body_excerpt = excerpt(body)
        super().__init__(f"EVERY8D {endpoint} answered HTTP {status}: {self.body_excerpt!r}")


class HttpUnavailableError(HttpStatusError, TransientError):
    """HTTP 5xx or 429 on a read: the gateway (or a proxy) could not serve it now; reading again is safe."""


class HttpRejectedError(HttpStatusError, TerminalError):
    """Any other non-200 status (404, 403, ...): the URL or the account is wrong, a retry will not help."""


class RedirectRefusedError(Every8dError, TerminalError):
    """The gateway (or a proxy) answered with a redirect, which is never followed.

    Following one would turn a POST into a bodiless GET (301/302) or re-post UID
    and PWD to whatever host it names (307/308).  Fix the connection's host instead.

    :param target_host: the host the redirect pointed to (no path, no query).
    """

    def __init__(self, endpoint: str, status: int, target_host: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.target_host = target_host
        super().__init__(
            f"EVERY8D {endpoint} answered HTTP {status} redirecting to host {target_host or '(none)'}; "
            "redirects are never followed: set the connection's host to the gateway's real address"
        )


class IncompleteListingError(Every8dError, TransientError):
    """A status or reply listing did not add up (a short page, missing rows, a count that moved).

    Nothing was merged and no poll was booked: reading the listing again is safe.
    """

    def __init__(self, endpoint: str, problem: str) -> None:
        self.endpoint = endpoint
        self.problem = problem
        super().__init__(f"EVERY8D {endpoint} listing is incomplete ({problem}); nothing was merged")


class UnknownStatusCodeError(Every8dError, TransientError):
    """A listing holds status codes our code table does not know, so it is not merged.

    Usually a row cut inside its STATUS field (``10`` from ``101``), which a new
    read fixes; if the gateway really added a code, it must be added to
    ``every8d.client.statuses`` before the batch can be read.

    :param codes: the unknown codes (sorted); :param rows: how many rows carry them.
    """

    def __init__(self, endpoint: str, codes: tuple[int, ...], rows: int) -> None:
        self.endpoint = endpoint
        self.codes = codes
        self.rows = rows
        super().__init__(
            f"EVERY8D {endpoint} listed unknown status code(s) {', '.join(map(str, codes))} "
            f"in {rows} row(s); "
            "the listing was not merged (a cut answer, or a code missing from the code table)"
        )


class GatewayUnreachableError(Every8dError, TransientError):
    """The request never left this machine (connection refused, DNS failure, connect timeout).

    Safe to retry even for sends: the gateway cannot have seen the request.
    """

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"EVERY8D {endpoint} could not be reached: {reason}")


class ReadFailedError(Every8dError, TransientError):
    """A read-only call lost its answer (timeout, reset) after the request left; safe to repeat."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"EVERY8D {endpoint} gave no usable answer: {reason}")


class SendOutcomeUnknownError(Every8dError, TerminalError):
    """A send left this machine but no answer came back (timeout, reset, dropped connection, 5xx).

    The gateway may have accepted it, charged for it and texted everyone, or
    not.  Never resend blindly: resolve it first (the campaign ledger does, via
    the gateway's 24-hour duplicate filter or by parking the chunk for review).
    """

    def __init__(self, endpoint: str, reason: str, recipients: int) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.recipients = recipients
        super().__init__(
            f"EVERY8D {endpoint}: outcome unknown for a send to {recipients} recipient(s) "
            f"({reason}); it may or may not have been accepted, so it is not retried"
        )
