"""A tiny loopback HTTP server that records every request it gets and answers 200.

The target of the sandbox's ``redirect`` fault: whatever a client sends after
following a redirect (UID and PWD re-posted by a 307/308, a bodiless GET after
a 301/302) lands here, so a test can prove that nothing did.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class CaughtRequest:
    method: str
    path: str
    body: bytes


class RequestCatcher:
    """Run with ``with RequestCatcher() as catcher: ... catcher.url ... catcher.requests``."""

    def __init__(self) -> None:
        self.requests: list[CaughtRequest] = []
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                catcher.requests.append(CaughtRequest(self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "9")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(b"caught it")

            do_GET = do_POST = do_PUT = do_HEAD = _record

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RequestCatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
