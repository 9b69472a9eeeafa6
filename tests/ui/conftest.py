"""A real api-server on loopback and a headless Chromium driving its UI.

Chromium and ChromeDriver come from the system's packages (``chromium``,
``chromium-driver``), which the ``browser`` fixture installs with apt-get when
they are missing and it may; otherwise it fails with one sentence saying so.
The api-server runs with the simple auth manager's all-admins switch so no
login page stands in the way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import provisioning
import pytest
import requests

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1400",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_api_server(log_path: Path, extra_env: dict[str, str]):
    """``airflow api-server`` on a free loopback port with ``extra_env``; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "AIRFLOW__API__WORKERS": "1", "AIRFLOW__CORE__PARALLELISM": "2", **extra_env}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"api-server exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/api/v2/version", timeout=2).status_code in (200, 401, 403):
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"api-server did not start:\n{log_path.read_text()[-3000:]}")
        yield base
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.fixture(scope="session")
def api_server(airflow_home: Path, demo_campaign, tmp_path_factory) -> str:
    """The api-server with every visitor an admin (no login page), reading the demo campaign's warehouse."""
    run, _, _ = demo_campaign
    # The UI reads DAGs from the metadata DB: serialize the dags folder first.
    subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "reserialize"],
        env=os.environ.copy(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    log_path = tmp_path_factory.mktemp("api-server") / "api-server.log"
    with running_api_server(
        log_path,
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__EVERY8D__WAREHOUSE": run.env["AIRFLOW__EVERY8D__WAREHOUSE"],
        },
    ) as base:
        yield base


@pytest.fixture(scope="session")
def api_server_with_login(api_server, demo_campaign, tmp_path_factory) -> tuple[str, str, str]:
    """The api-server as deployed: the simple auth manager with a real login; (base URL, user, password)."""
    run, _, _ = demo_campaign
    folder = tmp_path_factory.mktemp("api-server-login")
    passwords = folder / "passwords.json"
    passwords.write_text('{"viewer1": "a-long-test-password"}')
    with running_api_server(
        folder / "api-server.log",
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer1:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__EVERY8D__WAREHOUSE": run.env["AIRFLOW__EVERY8D__WAREHOUSE"],
        },
    ) as base:
        yield base, "viewer1", "a-long-test-password"


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium session (the system's chromium + chromium-driver, installed when missing)."""
    try:
        chromium, chromedriver = provisioning.ensure_chromium()
    except provisioning.MissingService as missing:
        pytest.fail(str(missing), pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(
        f"--user-data-dir={Path(shutil.os.environ.get('TMPDIR', '/tmp')) / f'every8d-chromium-{os.getpid()}'}"
    )
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.implicitly_wait(15)
    yield driver
    driver.quit()
