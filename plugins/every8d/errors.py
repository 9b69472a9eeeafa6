"""One exception hierarchy for everything that can go wrong talking to EVERY8D.

Whether a caller may retry is decided by class, never by reading messages:
``TransientError`` subclasses are safe to retry as they are, ``TerminalError``
subclasses are not.  No message built here holds a password or a list of
phone numbers; raw gateway text is cut to a short excerpt.
"""

from __future__ import annotations

EXCERPT_CHARS = 120


def excerpt(text: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable, single-line excerpt of a response body for error messages."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Every8dError(Exception):
    """Base class of every error this provider raises."""

    retry_safe: bool = False


class TransientError(Every8dError):
    """Mixin-like base: the same call may simply be tried again."""

    retry_safe = True


class TerminalError(Every8dError):
    """Base for errors a retry cannot fix (bad input, bad credentials, refused)."""

    retry_safe = False


class GatewayError(TerminalError):
    """The gateway answered with an error code (``-<code>,<message>``).

    :param endpoint: the endpoint's file name, e.g. ``sendSMS.ashx``.
    :param code: the gateway's (negative) code, e.g. ``-306``.
    :param meaning: the code's meaning in English, from our code table.
    :param gateway_message: the gateway's own message text (Chinese, as sent).
    """

    def __init__(self, endpoint: str, code: int, meaning: str, gateway_message: str = "") -> None:
        self.endpoint = endpoint
        self.code = code
        self.meaning = meaning
        self.gateway_message = gateway_message
        detail = f" (gateway said: {excerpt(gateway_message)})" if gateway_message else ""
        super().__init__(f"EVERY8D {endpoint} failed with code {code}: {meaning}{detail}")


class AuthenticationError(GatewayError):
    """Credentials were refused (-100, -101, -300): check the connection's login and password."""


class TemporaryGatewayError(GatewayError):
    """The gateway reported a temporary condition (-8): a later retry may work."""

    retry_safe = True


class WireFormatError(TerminalError):
    """The answer was not in any format the endpoint is known to produce (HTML, garbage, empty)."""

    def __init__(self, endpoint: str, problem: str, body: str | bytes | None = None) -> None:
        self.endpoint = endpoint
        self.problem = problem
        self.body_excerpt = excerpt(body)
        shown = f": {self.body_excerpt!r}" if self.body_excerpt else ""
        super().__init__(f"EVERY8D {endpoint} answered in an unexpected format ({problem}){shown}")


class HttpStatusError(Every8dError):
    """The gateway answered with a non-200 HTTP status."""

    def __init__(self, endpoint: str, status: int, body: str | bytes | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.retry_safe = status >= 500 or status == 429
        super().__init__(f"EVERY8D {endpoint} answered HTTP {status}: {excerpt(body)!r}")


class GatewayUnreachableError(TransientError):
    """The request never left this machine (connection refused, DNS failure, connect timeout).

    Safe to retry even for sends: the gateway cannot have seen the request.
    """

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"EVERY8D {endpoint} could not be reached: {reason}")


class ReadFailedError(TransientError):
    """A read-only call lost its answer (timeout, reset) after the request left; safe to repeat."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"EVERY8D {endpoint} gave no usable answer: {reason}")


class SendOutcomeUnknownError(TerminalError):
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
