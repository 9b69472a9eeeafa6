"""The sandbox's ASGI application: dispatch, request log, faults, background tick.

A raw ASGI callable rather than a FastAPI app: a gateway call costs one
path check, one body read and one handler call, which is what keeps a single
process at thousands of requests per second.  ``*.ashx`` paths under any
prefix go to :mod:`.gateway`; ``.../_sandbox/...`` goes to :mod:`.control`
(Starlette); everything else is a 404.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from every8d.sandbox import control, faults, gateway
from every8d.sandbox.pushes import PushDispatcher
from every8d.sandbox.state import SandboxState, iso_utc

log = logging.getLogger(__name__)

DEFAULT_UID = "demo"
DEFAULT_PWD = "secret"
DEFAULT_CREDIT = 100000


class SandboxApp:
    """One sandbox gateway: state, faults, pushes and the request log.

    :param on_ready: called once the app has started (``__main__`` prints the URL then).
    :param tick: seconds between background passes that push due status changes.
    :param latency: seconds each gateway request waits before it is answered (without blocking
        others), to stand in for a remote gateway in benchmarks.
    """

    def __init__(
        self,
        *,
        uid: str = DEFAULT_UID,
        pwd: str = DEFAULT_PWD,
        credit: float | str = DEFAULT_CREDIT,
        international: bool = False,
        frozen_clock: bool = False,
        record: bool = True,
        tick: float = 1.0,
        on_ready: Callable[[], None] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.default_uid = uid
        self.state = SandboxState(
            {"uid": uid, "pwd": pwd, "credit": credit, "international": international},
            frozen_clock=frozen_clock,
        )
        self.faults = faults.FaultRegistry()
        self.pushes = PushDispatcher()
        self._record_default = record
        self.recording = record
        self.requests: list[tuple] = []  # see _record
        self.tick = tick
        self.latency = max(float(latency), 0.0)
        self.on_ready = on_ready
        self._ticker: asyncio.Task | None = None
        self._control = control.build_control(self)

    def reset(self) -> None:
        """Forget everything but the command-line settings."""
        self.state.reset()
        self.faults.clear()
        self.pushes.reset()
        self.requests = []
        self.recording = self._record_default

    def flush_pushes(self) -> int:
        """Queue pushes for every status change due by the sandbox's now."""
        return self.pushes.submit(self.state.collect(), self.state.accounts)

    # ------------------------------------------------------------ ASGI

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            lower = path.lower()
            if lower.endswith(".ashx"):
                await self._gateway(scope, receive, send, lower)
                return
            at = lower.find("/_sandbox")
            if at >= 0:
                await self._control(dict(scope, path=path[at:], root_path=""), receive, send)
                return
            body = await _read_body(receive)
            if self.recording:
                self._record(scope, body, None)
            await _respond(send, gateway.NOT_FOUND)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _gateway(self, scope, receive, send, lower: str) -> None:
        body = await _read_body(receive)
        key = gateway.endpoint_key(lower)
        if self.recording:
            self._record(scope, body, key)
        if self.latency:
            await asyncio.sleep(self.latency)
        if key is None:
            await _respond(send, gateway.NOT_FOUND)
            return
        fault = None
        if self.faults:
            page = faults.page_of(scope["query_string"], body) if self.faults.wants_page else None
            fault = self.faults.take(key, page)
        if fault is None:
            await _respond(send, gateway.handle(self.state, key, scope["query_string"], body))
            return

        def execute() -> gateway.Answer:
            return gateway.handle(self.state, key, scope["query_string"], body)

        async def respond(answer: gateway.Answer) -> None:
            await _respond(send, answer)

        async def trickle(answer: gateway.Answer, delay: float) -> None:
            await _trickle(send, answer, delay)

        await faults.serve_with_fault(fault, key, scope, execute, respond, body=body, trickle=trickle)

    def _record(self, scope, body: bytes, key: str | None) -> None:
        # Raw values only: decoding is deferred to recorded_requests(), off the hot path.
        self.requests.append(
            (time.time(), scope["method"], scope["path"], scope["query_string"], scope["headers"], body, key)
        )

    def recorded_requests(self) -> list[dict]:
        """The request log as JSON-ready dicts (bodies and headers decoded)."""
        return [
            {
                "at": iso_utc(at),
                "method": method,
                "path": path,
                "query_string": query.decode("latin-1"),
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
                "body": body.decode("utf-8", "replace"),
                "endpoint": gateway.ENDPOINTS.get(key) if key else None,
            }
            for at, method, path, query, headers, body, key in self.requests
        ]

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.pushes.start()
                self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
                await send({"type": "lifespan.startup.complete"})
                if self.on_ready is not None:
                    self.on_ready()
            elif message["type"] == "lifespan.shutdown":
                if self._ticker is not None:
                    self._ticker.cancel()
                await self.pushes.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.flush_pushes()
            except Exception:  # a bad push must not stop later ones
                log.exception("push tick failed")


async def _read_body(receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    while message.get("more_body", False):
        message = await receive()
        body += message.get("body", b"")
    return body


async def _respond(send, answer: gateway.Answer) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [*answer.headers, (b"content-length", str(len(answer.body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


async def _trickle(send, answer: gateway.Answer, delay: float) -> None:
    """The answer with its full Content-Length, one byte every ``delay`` seconds (until the client leaves)."""
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [*answer.headers, (b"content-length", str(len(answer.body)).encode())],
        }
    )
    try:
        for index in range(len(answer.body)):
            await send(
                {"type": "http.response.body", "body": answer.body[index : index + 1], "more_body": True}
            )
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": b""})
    except (OSError, RuntimeError):  # the client gave up: that is the point of the fault
        pass
