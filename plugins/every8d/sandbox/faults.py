"""Fault injection: wrong answers, slow answers and no answer at all.

The dangerous failures of a gateway are the ones where the request was
executed but the client cannot know (dropped connection, reset, read
timeout).  An ASGI app cannot produce them, because uvicorn answers 500 when
an app returns nothing, so :class:`FaultInjectingProtocol` (a uvicorn
httptools protocol) hands the connection's transport to the app through the
ASGI scope, and :func:`drop` / :func:`reset` act on the socket itself.

What servers and proxies in front of a gateway do is here too: ``redirect``
(301/302/307/308 to another host), ``trickle`` (the real answer a byte at a
time), ``echo`` (an error page that repeats the request, body and password
included, as ASP.NET and some proxies do), ``body`` (any answer) and ``cut``
(the real answer cut at a byte, at a line, or inside a line; optionally only
on one page of a listing).
"""

from __future__ import annotations

import asyncio
import html
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from every8d.sandbox.gateway import ENDPOINTS, TEXT, Answer, json_answer, text
from every8d.sandbox.state import MESSAGES

TRANSPORT_KEY = "every8d.transport"
CYCLE_KEY = "every8d.cycle"

#: kind -> whether the request is executed by default before the fault acts
KINDS: dict[str, bool] = {
    "http500": False,
    "http503": False,
    "reset": False,
    "drop": True,
    "reset_after": True,
    "slow": True,
    "error": False,
    "garbage": False,
    "html": False,
    "empty": False,
    "body": False,
    "cut": True,
    "redirect": False,
    "trickle": True,
    "echo": False,
}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

HTML_PAGE = (
    "<!DOCTYPE html>\r\n<html><head><title>Runtime Error</title></head>\r\n"
    "<body><h1>Server Error in '/' Application.</h1>\r\n"
    "<h2><i>Runtime Error</i></h2><p>An application error occurred on the server.</p></body></html>\r\n"
)


@dataclass
class Fault:
    endpoint: str  # lower-case endpoint key, or "*"
    kind: str
    count: int = 1  # -1 = forever
    delay: float = 2.0
    retry_after: int = 1
    code: int = -99
    message: str | None = None
    execute: bool = False
    #: ``body``: the HTTP status of the chosen body; ``redirect``: 301/302/303/307/308 (default 302);
    #: ``echo``: the error page's status (default 500).
    status: int = 200
    #: ``cut``: keep this many bytes of the real answer (negative: drop that many from its end);
    #: with ``rows``, this many bytes of the line after them (a cut inside a row).
    at: int | None = None
    #: ``cut``: keep this many lines of the real answer (the count line is the first).
    rows: int | None = None
    #: ``redirect``: base URL the Location points to (the request's path and query are kept).
    location: str | None = None
    #: Only requests for this page (``PNO``) match the fault.
    page: int | None = None

    def as_json(self) -> dict:
        data = asdict(self)
        data["endpoint"] = ENDPOINTS.get(self.endpoint, self.endpoint)
        return data


class FaultRegistry:
    """Armed faults, consumed in the order they were added."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def __bool__(self) -> bool:
        return bool(self.faults)

    def add(self, spec: dict) -> Fault:
        spec = dict(spec)
        endpoint = str(spec.pop("endpoint", "*")).strip("/").lower()
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(ENDPOINTS.values())} or '*'")
        kind = str(spec.pop("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(KINDS)}")
        execute = spec.pop("execute", None)
        fault = Fault(endpoint=endpoint, kind=kind, execute=KINDS[kind] if execute is None else bool(execute))
        if kind == "redirect":
            fault.status = 302
        elif kind == "echo":
            fault.status = 500
        for name in ("count", "retry_after", "code", "status", "at", "rows", "page"):
            if spec.get(name) is not None:
                setattr(fault, name, int(spec.pop(name)))
        if spec.get("location") is not None:
            fault.location = str(spec.pop("location"))
        if spec.get("delay") is not None:
            fault.delay = float(spec.pop("delay"))
        if spec.get("message") is not None:
            fault.message = str(spec.pop("message"))
        unknown = sorted(k for k, v in spec.items() if v is not None)
        if unknown:
            raise ValueError(f"unknown fault option(s) {unknown}")
        if fault.count == 0:
            raise ValueError("count must be positive or -1 (forever)")
        if kind == "cut" and fault.at is None and fault.rows is None:
            raise ValueError("a cut fault needs at (bytes), rows (lines) or both (a cut inside a row)")
        if kind == "redirect" and (fault.location is None or fault.status not in REDIRECT_STATUSES):
            raise ValueError(f"a redirect fault needs location and a status in {REDIRECT_STATUSES}")
        if kind == "trickle" and fault.delay <= 0:
            raise ValueError("a trickle fault needs a positive delay (seconds between bytes)")
        if kind == "body" and fault.message is None:
            raise ValueError("a body fault needs message (the body to serve)")
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    @property
    def wants_page(self) -> bool:
        """Whether some fault matches on the page number (so requests' PNO must be read)."""
        return any(fault.page is not None for fault in self.faults)

    def take(self, endpoint: str, page: int | None = None) -> Fault | None:
        """The first armed fault matching ``endpoint`` (and ``page``), consuming one use of it."""
        for fault in self.faults:
            if fault.page is not None and fault.page != page:
                continue
            if fault.endpoint == "*" or fault.endpoint == endpoint:
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                return fault
        return None


class FaultInjectingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that exposes its transport to the app."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The ASGI task is created but has not run yet: the scope is still ours to extend.
        if self.scope is not None and self.cycle is not None and self.cycle.scope is self.scope:
            # ASGI lets a server add keys to the scope; uvicorn's TypedDict does not list them.
            self.scope[TRANSPORT_KEY] = self.transport  # type: ignore[literal-required]
            self.scope[CYCLE_KEY] = self.cycle  # type: ignore[literal-required]


def _detach(scope: dict) -> asyncio.Transport:
    transport = scope.get(TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("socket-level faults need uvicorn with http=FaultInjectingProtocol")
    cycle = scope.get(CYCLE_KEY)
    if cycle is not None:
        # Tell uvicorn the client is gone, so it does not answer 500 on our behalf.
        cycle.disconnected = True
    return transport


def drop(scope: dict) -> None:
    """Close the connection without a byte of answer (FIN: "remote end closed")."""
    _detach(scope).close()


def reset(scope: dict) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), answering nothing."""
    transport = _detach(scope)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def cut_answer(fault: Fault, answer: Answer) -> Answer:
    """The real answer cut short, with a Content-Length that matches the cut (as a truncating proxy does)."""
    body = answer.body
    if fault.rows is not None:
        lines = body.splitlines(keepends=True)
        body = b"".join(lines[: fault.rows])
        if fault.at is not None and fault.rows < len(lines):
            body += lines[fault.rows][: max(fault.at, 0)]
    else:
        assert fault.at is not None
        body = body[: fault.at] if fault.at >= 0 else body[: max(0, len(body) + fault.at)]
    return Answer(answer.status, body, answer.headers)


def page_of(query: bytes, body: bytes) -> int | None:
    """The ``PNO`` of a form request (body or query string), or None."""
    for raw in (body, query):
        try:
            for key, value in parse_qsl(raw.decode("utf-8", "replace")):
                if key.upper() == "PNO":
                    return int(value.strip() or 1)
        except ValueError:
            return None
    return None


def redirect_answer(fault: Fault, path: str, query: bytes) -> Answer:
    """A redirect to the same path and query under ``fault.location``."""
    assert fault.location is not None
    target = fault.location.rstrip("/") + path + (("?" + query.decode("latin-1")) if query else "")
    return Answer(fault.status, b"Object moved", [*TEXT, (b"location", target.encode("latin-1"))])


def echo_answer(fault: Fault, method: str, path: str, query: bytes, body: bytes) -> Answer:
    """An error page repeating the request, as ASP.NET's and proxies' error pages do (the password included).

    The raw form comes first, then its decoded values, so even a short excerpt of the page holds them.
    """
    raw = body.decode("utf-8", "replace")
    decoded = " ".join(f"{k}={v}" for k, v in parse_qsl(raw)) if "=" in raw else ""
    prefix = fault.message if fault.message is not None else "<html><body><p>"
    page = f"{prefix}{raw} | {decoded} | {method} {path}?{query.decode('latin-1')}" + (
        ""
        if fault.message is not None
        else f"</p><h1>Server Error in '/' Application.</h1><pre>{html.escape(raw)}</pre></body></html>"
    )
    content_type = b"text/plain; charset=utf-8" if fault.message is not None else b"text/html; charset=utf-8"
    return Answer(fault.status, page.encode("utf-8"), [(b"content-type", content_type)])


def fault_answer(fault: Fault, endpoint: str) -> Answer:
    """The answer of a fault that still speaks HTTP."""
    kind = fault.kind
    if kind == "http500":
        return text("Internal Server Error", 500)
    if kind == "http503":
        headers = [*TEXT, (b"retry-after", str(fault.retry_after).encode())]
        return Answer(503, b"Service Unavailable", headers)
    if kind == "error":
        message = fault.message if fault.message is not None else MESSAGES.get(fault.code, MESSAGES[-99])
        if endpoint == "sendparamsms":
            return json_answer({"Result": False, "Status": str(fault.code), "Msg": message})
        return text(f"{fault.code},{message}")
    if kind == "garbage":
        return Answer(200, b"\x00\xff\xfe" + os.urandom(29), TEXT)
    if kind == "body":
        assert fault.message is not None
        return Answer(fault.status, fault.message.encode("utf-8"), TEXT)
    if kind == "html":
        return Answer(200, HTML_PAGE.encode(), [(b"content-type", b"text/html; charset=utf-8")])
    return text("")  # empty


async def serve_with_fault(
    fault: Fault,
    endpoint: str,
    scope: dict,
    execute: Callable[[], Answer],
    respond: Callable[[Answer], Awaitable[None]],
    *,
    body: bytes = b"",
    trickle: Callable[[Answer, float], Awaitable[None]] | None = None,
) -> None:
    """Serve one request under ``fault``: maybe execute it, then misbehave."""
    answer = execute() if fault.execute else None
    kind = fault.kind
    if kind == "redirect":
        await respond(redirect_answer(fault, scope["path"], scope["query_string"]))
        return
    if kind == "echo":
        await respond(echo_answer(fault, scope["method"], scope["path"], scope["query_string"], body))
        return
    if kind == "trickle":
        assert trickle is not None
        await trickle(answer if answer is not None else execute(), fault.delay)
        return
    if kind in ("reset", "reset_after"):
        reset(scope)
    elif kind == "drop":
        drop(scope)
    elif kind == "slow":
        await asyncio.sleep(fault.delay)
        await respond(answer if answer is not None else execute())
    elif kind == "cut":
        await respond(cut_answer(fault, answer if answer is not None else execute()))
    else:
        await respond(fault_answer(fault, endpoint))
