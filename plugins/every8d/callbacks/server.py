"""Run the receiver standalone: in the foreground (``serve``) or as a subprocess (:class:`PushServer`).

The socket is bound here, so ``--port 0`` picks a free port without a race,
and one ready line (``EVERY8D push receiver listening on http://HOST:PORT``)
is printed once requests are served.  uvicorn's access log stays off: it
would print every push's token and phone number.
"""

from __future__ import annotations

import collections
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

READY_PREFIX = "EVERY8D push receiver listening on "
DEFAULT_PREFIX = "/every8d"

_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the every8d package


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening socket and its root URL (port 0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    bound_host, bound_port = sock.getsockname()[:2]
    url = (
        f"http://[{bound_host}]:{bound_port}"
        if family == socket.AF_INET6
        else f"http://{bound_host}:{bound_port}"
    )
    return sock, url


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
                print(READY_PREFIX + url, flush=True)

    config = uvicorn.Config(
        app,
        lifespan="on",
        ws="none",
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


class PushServer:
    """``python -m every8d.callbacks`` in a subprocess on a free loopback port (tests, bench, demo).

    :param env: extra environment for the child (``EVERY8D_PUSH_TOKEN``, ``EVERY8D_PUSH_JOURNAL``, ...).
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = DEFAULT_PREFIX,
        startup_timeout: float = 30.0,
    ) -> None:
        self.env = dict(env or {})
        self.host, self.port, self.prefix = host, port, prefix
        self.startup_timeout = startup_timeout
        self.root_url: str | None = None
        self.process: subprocess.Popen | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=200)

    @property
    def base_url(self) -> str:
        """Root URL plus the prefix, e.g. ``http://127.0.0.1:41234/every8d``."""
        if self.root_url is None:
            raise RuntimeError("the push receiver is not running")
        return self.root_url + self.prefix.rstrip("/")

    def start(self) -> PushServer:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE_ROOT, env.get("PYTHONPATH")) if p)
        cmd = [
            sys.executable,
            "-m",
            "every8d.callbacks",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--prefix",
            self.prefix,
        ]
        self.process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
        )
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(ready,), daemon=True, name="every8d-push-output").start()
        if not ready.wait(self.startup_timeout) or self.root_url is None:
            self.stop()
            raise RuntimeError("the push receiver did not start:\n" + self.output())
        return self

    def _pump(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self._output.append(line)
            if not ready.is_set() and line.startswith(READY_PREFIX):
                self.root_url = line[len(READY_PREFIX) :].strip()
                ready.set()
        ready.set()

    def output(self) -> str:
        return "\n".join(self._output)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (queued pushes are written first), SIGKILL as a last resort; the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.root_url = None
        return process.returncode

    def __enter__(self) -> PushServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
