"""Start campaign runners as real processes (send_campaign_process.py) and wait for them (imported, not
collected)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Short timeouts so leases, settle times and takeovers play out in seconds.
FAST = {
    "options": {"lease_seconds": 3, "settle_seconds": 1.5, "concurrency": 2},
    "hook": {"timeout": 1, "connect_timeout": 1},
}


def merged(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        for key, value in part.items():
            out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


class Runner:
    """One runner process of one campaign."""

    def __init__(
        self,
        warehouse_target: str,
        audience: Path,
        campaign_id: str = "camp",
        chunk_size: int = 50,
        settings: dict | None = None,
    ) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "send_campaign_process.py"),
                warehouse_target,
                str(audience),
                campaign_id,
                str(chunk_size),
                json.dumps(merged(FAST, settings or {})),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.pid = self.process.pid
        self._output: str | None = None

    def signal(self, number: int) -> None:
        os.kill(self.pid, number)

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout)

    @property
    def output(self) -> str:
        if self._output is None:
            self.wait()
            self._output = self.process.stdout.read()
        return self._output

    def result(self) -> dict:
        """The last JSON line the runner printed ({"ok": ..., "summary": ...})."""
        for line in reversed(self.output.splitlines()):
            if line.startswith("{") and '"ok"' in line:
                return json.loads(line)
        raise AssertionError(
            f"runner printed no result (rc {self.process.returncode}):\n{self.output[-3000:]}"
        )


def wait_until(predicate, timeout: float = 60, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_stopped(pid: int, timeout: float = 60) -> None:
    """Until the process is in state T (stopped by SIGSTOP)."""

    def stopped() -> bool:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "T"

    wait_until(stopped, timeout, "the runner to stop itself")
