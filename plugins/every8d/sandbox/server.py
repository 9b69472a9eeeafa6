"""Run the sandbox gateway in a subprocess for the length of a test session or demo.

A subprocess (not a thread) so the gateway has its own event loop and GIL,
and so tests talk to it exactly as the hook talks to the real gateway: over
TCP.  The child binds port 0 itself and reports the port on stdout, so there
is no window in which another process can take a port we picked.
"""

from __future__ import annotations

from every8d.child_server import ChildServer, python_module_command
from every8d.sandbox import READY_PREFIX
from every8d.sandbox.client import SandboxClient


class SandboxError(RuntimeError):
    """The sandbox process failed to start or died."""


class SandboxServer(ChildServer):
    """``python -m every8d.sandbox`` in a subprocess on a free loopback port.

    :param prefix: path prefix of :attr:`base_url` (e.g. ``/tenant``); the gateway accepts any.
    :param frozen_clock: start with the clock frozen (tests move it with ``advance``).
    :param record: keep every gateway request for :meth:`SandboxClient.requests`.
    :param latency_ms: delay before each gateway answer (benchmarks: a remote gateway's round trip).
    """

    error_class = SandboxError
    name = "sandbox"

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
        latency_ms: float = 0.0,
    ) -> None:
        self.host, self.port = host, port
        self.uid, self.pwd = uid, pwd
        self.credit, self.international = credit, international
        self.frozen_clock, self.record = frozen_clock, record
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.tick, self.log_level = tick, log_level
        self.latency_ms = latency_ms
        super().__init__(READY_PREFIX, startup_timeout=startup_timeout)

    @property
    def base_url(self) -> str:
        """URL to give a client: scheme, host, port and the path prefix."""
        if self.root_url is None:
            raise SandboxError("the sandbox is not running")
        return self.root_url + self.prefix

    def command(self) -> list[str]:
        cmd = python_module_command(
            "every8d.sandbox",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--uid",
            self.uid,
            "--pwd",
            self.pwd,
            "--credit",
            str(self.credit),
            "--tick",
            str(self.tick),
            "--log-level",
            self.log_level,
        )
        if self.latency_ms:
            cmd += ["--latency-ms", str(self.latency_ms)]
        if self.international:
            cmd.append("--international")
        if self.frozen_clock:
            cmd.append("--frozen-clock")
        if not self.record:
            cmd.append("--no-record")
        return cmd

    def client(self, **kwargs) -> SandboxClient:
        return SandboxClient(self.base_url, uid=self.uid, pwd=self.pwd, **kwargs)
