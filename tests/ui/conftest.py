"""A real api-server on loopback and a headless Chromium driving its UI.

Chromium and ChromeDriver come from the system's packages (``chromium``,
``chromium-driver``), which the ``browser`` fixture installs with apt-get when
they are missing and it may; otherwise it fails with one sentence saying so.  The api-server runs with the simple auth manager's all-admins switch
so no login page stands in the way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import provisioning
import pytest
import requests

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1400",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def api_server(airflow_home: Path, tmp_path_factory) -> str:
    """``airflow api-server`` on a free loopback port; its base URL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("api-server") / "api-server.log"
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__PARALLELISM": "2",
    }
    # The UI reads DAGs from the metadata DB: serialize the dags folder first.
    subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], env=env, check=True,
                   capture_output=True, timeout=300)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"api-server exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/api/v2/version", timeout=2).ok:
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
    options.add_argument(f"--user-data-dir={Path(shutil.os.environ.get('TMPDIR', '/tmp')) / f'every8d-chromium-{os.getpid()}'}")
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.implicitly_wait(15)
    yield driver
    driver.quit()
