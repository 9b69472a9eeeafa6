"""The ``[every8d]`` section: Airflow's names win, the old ``EVERY8D_*`` names still work with a warning."""

from __future__ import annotations

import warnings

import pytest

from every8d import settings
from every8d.get_provider_info import get_provider_info


def test_the_airflow_name_is_read_and_wins_over_the_old_one(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EVERY8D__REPORT_DIR", "/new")
    monkeypatch.setenv("EVERY8D_REPORT_DIR", "/old")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name set: no deprecation warning either
        assert settings.get("report_dir") == "/new"


def test_the_old_name_still_works_and_says_it_is_deprecated(monkeypatch):
    monkeypatch.delenv("AIRFLOW__EVERY8D__SQL_DIR", raising=False)
    monkeypatch.setenv("EVERY8D_SQL_DIR", " /old ")
    monkeypatch.setattr(settings, "_warned", set())
    with pytest.warns(DeprecationWarning, match="AIRFLOW__EVERY8D__SQL_DIR"):
        assert settings.get("sql_dir") == "/old"


def test_an_old_name_is_not_hidden_by_the_declared_default_in_airflows_conf(monkeypatch):
    from airflow.configuration import conf

    monkeypatch.delenv("AIRFLOW__EVERY8D__DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.setenv("EVERY8D_DUCKDB_MEMORY_LIMIT", "1GB")
    monkeypatch.setattr(settings, "_warned", set())
    assert conf.get("every8d", "duckdb_memory_limit") == "512MB"  # the declared default, as a worker sees it
    with pytest.warns(DeprecationWarning, match="EVERY8D_DUCKDB_MEMORY_LIMIT is deprecated"):
        assert settings.get("duckdb_memory_limit") == "1GB"
    monkeypatch.delenv("EVERY8D_DUCKDB_MEMORY_LIMIT")
    assert settings.get("duckdb_memory_limit") == "512MB"


def test_unset_gives_the_declared_default_or_nothing(monkeypatch):
    for name in (
        "AIRFLOW__EVERY8D__STATUS_POOL",
        "EVERY8D_STATUS_POOL",
        "AIRFLOW__EVERY8D__PUSH_JOURNAL",
        "EVERY8D_PUSH_JOURNAL",
    ):
        monkeypatch.delenv(name, raising=False)
    assert settings.get("status_pool") == "default_pool"
    assert settings.get("push_journal") == ""
    with pytest.raises(KeyError, match="no option"):
        settings.get("no_such_option")


def test_the_push_receiver_reads_its_token_through_the_section(monkeypatch, tmp_path):
    import secrets

    from every8d.callbacks.settings import PushSettings

    token = secrets.token_urlsafe(32)
    monkeypatch.setenv("AIRFLOW__EVERY8D__PUSH_TOKEN", token)
    monkeypatch.setenv("AIRFLOW__EVERY8D__PUSH_JOURNAL", str(tmp_path / "j.sqlite3"))
    monkeypatch.delenv("EVERY8D_PUSH_TOKEN", raising=False)
    loaded = PushSettings.from_env()
    assert loaded.tokens == (token,) and loaded.journal_path == tmp_path / "j.sqlite3"


def test_provider_info_declares_every_option_the_code_reads():
    section = get_provider_info()["config"]["every8d"]
    assert set(section["options"]) == set(settings.OPTIONS)
    for option in section["options"].values():
        assert option["description"] and option["type"] in {"string", "integer", "float", "boolean"}
        assert {"version_added", "example", "default"} <= set(option)
    assert section["options"]["push_token"]["sensitive"] is True  # masked like Airflow's own secrets


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("ON", True), ("1", True), ("no", False), ("", False)]
)
def test_booleans_parse_one_way(text, value):
    assert settings.parse_bool(text) is value


def test_a_bad_boolean_is_an_error_not_false():
    with pytest.raises(ValueError, match="not a boolean"):
        settings.parse_bool("maybe")
