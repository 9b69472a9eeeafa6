"""A local HTTP server in a child process, announced by one "ready" line.

Shared by the sandbox gateway and the push receiver.  The child binds its
socket itself (port 0 picks a free port with no race) and prints
``<prefix><url>`` once it serves; the parent waits for that line, keeps the
child's output for error messages, and stops it with SIGTERM (SIGKILL as a
last resort).
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

# The folder holding the ``every8d`` package, so the child imports the same code.
SOURCE_ROOT = str(Path(__file__).resolve().parents[1])


def bind_listening_socket(host: str, port: int, backlog: int = 2048) -> tuple[socket.socket, str]:
    """A listening TCP socket on ``host:port`` (0 = any free port) and its root URL."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    bound_host, bound_port = sock.getsockname()[:2]
    url = (
        f"http://[{bound_host}]:{bound_port}"
        if family == socket.AF_INET6
        else f"http://{bound_host}:{bound_port}"
    )
    return sock, url


class ChildServer:
    """Base for ``python -m <module>`` servers run as a subprocess; subclasses give :meth:`command`.

    :param ready_prefix: the line start the child prints, followed by its root URL.
    :param startup_timeout: seconds to wait for that line.
    :param env: extra environment for the child.
    """

    error_class: type[Exception] = RuntimeError
    name = "server"

    def __init__(
        self, ready_prefix: str, *, startup_timeout: float = 30.0, env: dict[str, str] | None = None
    ) -> None:
        self.ready_prefix = ready_prefix
        self.startup_timeout = startup_timeout
        self.env = dict(env or {})
        self.root_url: str | None = None
        self.process: subprocess.Popen | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=200)

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self):
        if self.process is not None and self.process.poll() is None:
            raise self.error_class(f"the {self.name} is already running")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (SOURCE_ROOT, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        ready = threading.Event()
        threading.Thread(
            target=self._pump, args=(ready,), name=f"every8d-{self.name}-output", daemon=True
        ).start()
        if not ready.wait(self.startup_timeout) or self.root_url is None:
            self.stop()
            raise self.error_class(f"the {self.name} did not start:\n" + self.output())
        return self

    def _pump(self, ready: threading.Event) -> None:
        """Read the child's output (the ready line first) so its pipe never fills."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self._output.append(line)
            if not ready.is_set() and line.startswith(self.ready_prefix):
                self.root_url = line[len(self.ready_prefix) :].strip()
                ready.set()
        ready.set()  # the child exited: stop waiting

    def output(self) -> str:
        """The last lines the child printed (stdout and stderr)."""
        return "\n".join(self._output)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def python_module_command(module: str, *args: str) -> list[str]:
    """``[python, -m, module, *args]`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
