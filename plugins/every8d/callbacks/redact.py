"""Keep phone numbers and reply texts out of the host's access log.

Under ``airflow api-server`` every request is logged with its query string
(Airflow masks only values under secret-looking names such as ``token``), and
a push's query holds the recipient's number and their reply.  The access log
reads the query from the request scope after the app answered, and mounted
apps share that scope, so this middleware blanks the values there once the
push was handled.  Batch id and status stay readable for debugging.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

KEPT = frozenset({b"batchid", b"status", b"rt"})


def redact_query(query: bytes) -> bytes:
    """``query`` with every value blanked to ``***`` except batch id, status and report time."""
    parts = []
    for part in query.split(b"&"):
        key, sep, _value = part.partition(b"=")
        parts.append(part if key.lower() in KEPT or not sep else key + b"=***")
    return b"&".join(parts)


class RedactQueryForLogs:
    """ASGI middleware: after the request, the scope's query string no longer holds personal data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope.get("query_string"):
                scope["query_string"] = redact_query(scope["query_string"])
