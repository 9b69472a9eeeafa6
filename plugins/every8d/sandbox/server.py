"""Run the sandbox gateway in a subprocess for the length of a test session or demo.

A subprocess (not a thread) so the gateway has its own event loop and GIL,
and so tests talk to it exactly as the hook talks to the real gateway: over
TCP.  The child binds port 0 itself and reports the port on stdout, so there
is no window in which another process can take a port we picked.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
from pathlib import Path

from every8d.sandbox import READY_PREFIX
from every8d.sandbox.client import SandboxClient

# The directory holding the ``every8d`` package, so the child imports the same code.
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


class SandboxError(RuntimeError):
    """The sandbox process failed to start or died."""


class SandboxServer:
    """``python -m every8d.sandbox`` in a subprocess on a free loopback port.

    :param prefix: path prefix of :attr:`base_url` (e.g. ``/tenant``); the gateway accepts any.
    :param frozen_clock: start with the clock frozen (tests move it with ``advance``).
    :param record: keep every gateway request for :meth:`SandboxClient.requests`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        uid: str = "demo",
        pwd: str = "secret",
        credit: float | str = 100000,
        international: bool = False,
        frozen_clock: bool = False,
        record: bool = True,
        prefix: str = "",
        tick: float = 1.0,
        log_level: str = "warning",
        startup_timeout: float = 20.0,
    ) -> None:
        self.host, self.port = host, port
        self.uid, self.pwd = uid, pwd
        self.credit, self.international = credit, international
        self.frozen_clock, self.record = frozen_clock, record
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.tick, self.log_level = tick, log_level
        self.startup_timeout = startup_timeout
        self.root_url: str | None = None
        self.process: subprocess.Popen | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=200)

    @property
    def base_url(self) -> str:
        """URL to give a client: scheme, host, port and the path prefix."""
        if self.root_url is None:
            raise SandboxError("the sandbox is not running")
        return self.root_url + self.prefix

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "every8d.sandbox", "--host", self.host, "--port", str(self.port),
            "--uid", self.uid, "--pwd", self.pwd, "--credit", str(self.credit),
            "--tick", str(self.tick), "--log-level", self.log_level,
        ]
        if self.international:
            cmd.append("--international")
        if self.frozen_clock:
            cmd.append("--frozen-clock")
        if not self.record:
            cmd.append("--no-record")
        return cmd

    def start(self) -> SandboxServer:
        if self.process is not None:
            raise SandboxError("already started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE_ROOT, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, text=True, encoding="utf-8", errors="replace",
        )
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(ready,), name="every8d-sandbox-output", daemon=True).start()
        if not ready.wait(self.startup_timeout) or self.root_url is None:
            self.stop()
            raise SandboxError("the sandbox did not start:\n" + self.output())
        return self

    def _pump(self, ready: threading.Event) -> None:
        """Read the child's output (the ready line first) so its pipe never fills."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self._output.append(line)
            if not ready.is_set() and line.startswith(READY_PREFIX):
                self.root_url = line[len(READY_PREFIX):].strip()
                ready.set()
        ready.set()  # the child exited: stop waiting

    def output(self) -> str:
        """The last lines the child printed (stdout and stderr)."""
        return "\n".join(self._output)

    def client(self, **kwargs) -> SandboxClient:
        return SandboxClient(self.base_url, uid=self.uid, pwd=self.pwd, **kwargs)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait for the graceful shutdown, SIGKILL as a last resort; returns the exit code."""
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

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxServer({self.root_url or 'not running'})"
