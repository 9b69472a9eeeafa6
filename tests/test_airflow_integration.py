"""The provider as Airflow sees it: provider list, connection form, Test button."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def airflow_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=env, timeout=180
    )


def test_providers_list_shows_the_provider(airflow_home):
    result = airflow_cli("providers", "list", "--output", "plain")
    assert result.returncode == 0, result.stderr
    assert "airflow-provider-every8d" in result.stdout


def test_connection_type_and_form_fields_are_registered():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook_info = ProvidersManagerTaskRuntime().hooks["every8d"]
    assert hook_info.hook_class_name == "every8d.hooks.every8d.Every8dHook"
    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    for field in ("timeout", "connect_timeout", "verify", "validity_minutes", "read_retries"):
        assert f"extra__every8d__{field}" in widgets, field
    behaviour = manager.field_behaviours["every8d"]
    assert "port" in behaviour["hidden_fields"]
    assert behaviour["placeholders"]["host"] == "https://api.e8d.tw"


def test_cli_connection_test_succeeds_against_the_sandbox(airflow_home, sandbox):
    result = airflow_cli(
        "connections",
        "test",
        "every8d_default",
        env_extra={
            "AIRFLOW_CONN_EVERY8D_DEFAULT": sandbox.connection_json(),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    assert [r["path"].rsplit("/", 1)[-1] for r in sandbox.requests()] == ["getCredit.ashx"]
    assert sandbox.pwd not in result.stdout + result.stderr


def test_cli_connection_test_reports_a_wrong_password(airflow_home, sandbox):
    conn = sandbox.connection_json().replace(f'"{sandbox.pwd}"', '"not-the-password"')
    result = airflow_cli(
        "connections",
        "test",
        "every8d_default",
        env_extra={"AIRFLOW_CONN_EVERY8D_DEFAULT": conn, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"},
    )
    assert "Connection failed" in result.stdout
    assert "-101" in result.stdout
    assert "not-the-password" not in result.stdout + result.stderr


@pytest.mark.parametrize("module", ["every8d", "every8d.assets", "every8d.get_provider_info"])
def test_light_modules_do_not_import_heavy_libraries(module):
    code = (
        f"import sys, {module}; "
        "heavy = [m for m in ('pandas', 'pyarrow', 'duckdb', 'requests') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
