"""Run the receiver standalone: in the foreground (``serve``) or as a subprocess (:class:`PushServer`).

The socket is bound here, so ``--port 0`` picks a free port without a race,
and one ready line (``EVERY8D push receiver listening on http://HOST:PORT``)
is printed once requests are served.  uvicorn's access log stays off: it
would print every push's token and phone number.
"""

from __future__ import annotations

import gc
import signal
import socket

from every8d.child_server import ChildServer, bind_listening_socket, python_module_command

READY_PREFIX = "EVERY8D push receiver listening on "
DEFAULT_PREFIX = "/every8d"


def _long_query_protocol():
    """uvicorn's httptools protocol, answering the documented 414 JSON for a URL too long to parse.

    A query beyond what the HTTP parser takes (about 64 KiB) never reaches the
    app: uvicorn answers a bare ``400 Invalid HTTP request``.  A request line
    that long is a query too long, and gets the same answer as one the app refuses.
    """
    import json

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from every8d.callbacks.params import MAX_QUERY_BYTES

    body = json.dumps(
        {"error": "query_too_long", "detail": f"the query string is over {MAX_QUERY_BYTES} bytes"}
    )

    class LongQueryProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            if len(getattr(self, "url", b"") or b"") <= MAX_QUERY_BYTES:
                super().send_400_response(msg)
                return
            self.transport.write(
                b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\n"
                b"content-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body.encode()
            )
            self.transport.close()

    return LongQueryProtocol


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening socket and its root URL (port 0: a free port)."""
    return bind_listening_socket(host, port)


def serve(
    app, sock: socket.socket, url: str, *, log_level: str = "warning", forwarded_allow_ips: str | None = None
) -> bool:
    """Serve ``app`` on ``sock`` until SIGTERM/SIGINT; True when it started at all."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                # Everything imported so far lives for good: a full collection scanning it stalled
                # the event loop for ~100 ms, and every push in flight with it (the p99).
                gc.freeze()
                print(READY_PREFIX + url, flush=True)  # noqa: T201  (the parent process reads this line)

    config = uvicorn.Config(
        app,
        lifespan="on",
        ws="none",
        http=_long_query_protocol(),
        access_log=False,
        log_level=log_level,
        backlog=2048,
        timeout_graceful_shutdown=5,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    server = Server(config)
    # uvicorn re-raises the signal after its graceful shutdown; no-op handlers beneath make that exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    server.run(sockets=[sock])
    return server.started


class PushServer(ChildServer):
    """``python -m every8d.callbacks`` in a subprocess on a free loopback port (tests, bench, demo).

    :param env: extra environment for the child (``AIRFLOW__EVERY8D__PUSH_TOKEN``,
        ``AIRFLOW__EVERY8D__PUSH_JOURNAL``, ...).
    """

    name = "push receiver"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = DEFAULT_PREFIX,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(READY_PREFIX, startup_timeout=startup_timeout, env=env)
        self.host, self.port, self.prefix = host, port, prefix

    @property
    def base_url(self) -> str:
        """Root URL plus the prefix, e.g. ``http://127.0.0.1:41234/every8d``."""
        if self.root_url is None:
            raise RuntimeError("the push receiver is not running")
        return self.root_url + self.prefix.rstrip("/")

    def command(self) -> list[str]:
        return python_module_command(
            "every8d.callbacks", "--host", self.host, "--port", str(self.port), "--prefix", self.prefix
        )
