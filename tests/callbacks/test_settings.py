"""The receiver's configuration: strong tokens only, clear errors, nothing secret in them."""

from __future__ import annotations

import secrets

import pytest

from every8d.callbacks.settings import (
    DEFAULT_OPT_OUT_KEYWORDS,
    ENV_ALLOWED_CIDRS,
    ENV_JOURNAL,
    ENV_OPT_OUT_KEYWORDS,
    ENV_TOKEN,
    ENV_TOKEN_FILE,
    PushSettings,
    SettingsError,
    check_token,
    default_journal_path,
    parse_keywords,
)

STRONG = "k3J9-x_Qz7LmPw2RtYv8NcBd5FgHs4Ua"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (ENV_TOKEN, ENV_TOKEN_FILE, ENV_ALLOWED_CIDRS, ENV_JOURNAL, ENV_OPT_OUT_KEYWORDS):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("token", "complaint"),
    [
        pytest.param("", "no push token", id="missing"),
        pytest.param("abc", "too short", id="short"),
        pytest.param("changethis" * 4, "placeholder", id="changethis"),
        pytest.param("my-secret-push-token-for-every8d!", "may only contain", id="bad-char"),
        pytest.param("my_super_secret_value_for_pushes_1", "placeholder", id="contains-secret"),
        pytest.param("Example_Token_Value_0123456789abcdefg", "placeholder", id="example"),
        pytest.param("a" * 40, "not random enough", id="one-char"),
        pytest.param("abababababababababababababababab12", "not random enough", id="few-chars"),
        pytest.param("1234567890123456789012345678901234", "placeholder", id="digits"),
    ],
)
def test_weak_tokens_are_refused(token, complaint):
    with pytest.raises(SettingsError, match=complaint) as info:
        check_token(token)
    assert token == "" or token not in str(info.value)


def test_generated_tokens_pass():
    for _ in range(200):
        token = secrets.token_urlsafe(32)
        assert check_token(token) == token


def test_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_TOKEN, f"{STRONG}, {STRONG[::-1]}")
    monkeypatch.setenv(ENV_ALLOWED_CIDRS, "203.0.113.0/24, 2001:db8::/32")
    monkeypatch.setenv(ENV_JOURNAL, str(tmp_path / "j.sqlite3"))
    settings = PushSettings.from_env()
    assert settings.tokens == (STRONG, STRONG[::-1])
    assert [str(n) for n in settings.allowed_networks] == ["203.0.113.0/24", "2001:db8::/32"]
    assert settings.journal_path == tmp_path / "j.sqlite3"
    assert STRONG not in repr(settings)


def test_token_from_a_file(monkeypatch, tmp_path):
    path = tmp_path / "token"
    path.write_text(STRONG + "\n")
    monkeypatch.setenv(ENV_TOKEN_FILE, str(path))
    assert PushSettings.from_env().tokens == (STRONG,)
    monkeypatch.setenv(ENV_TOKEN_FILE, str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="cannot read"):
        PushSettings.from_env()


def test_unset_token_and_bad_cidr(monkeypatch):
    with pytest.raises(SettingsError, match=ENV_TOKEN):
        PushSettings.from_env()
    monkeypatch.setenv(ENV_TOKEN, STRONG)
    monkeypatch.setenv(ENV_ALLOWED_CIDRS, "10.0.0.0/8, not-a-network")
    with pytest.raises(SettingsError, match="not a CIDR"):
        PushSettings.from_env()


def test_journal_defaults_under_airflow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_journal_path() == tmp_path / "every8d" / "push-journal.sqlite3"


def test_keywords():
    assert parse_keywords(None) == DEFAULT_OPT_OUT_KEYWORDS
    assert parse_keywords("  ") == DEFAULT_OPT_OUT_KEYWORDS
    assert parse_keywords("STOP, 取消訂閱 ,,") == ("STOP", "取消訂閱")
