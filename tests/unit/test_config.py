"""Settings: environment variables, nested messages, the TOML file and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from watchword_server.config import EMBEDDED_DATABASE_URL, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("WATCHWORD_"):
            monkeypatch.delenv(key)


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.database_url == EMBEDDED_DATABASE_URL
    assert settings.listen == "127.0.0.1:50051"
    assert settings.hmac_key_id == "k1"
    assert settings.hmac_alg == "bcrypt(12)"
    assert settings.password_min_length == 8
    assert (settings.session_expiration, settings.session_long_expiration) == (3600, 2592000)
    assert settings.registration_verification and not settings.registration_approval
    assert (settings.verification_key_ttl, settings.reset_key_ttl) == (259200, 86400)
    assert settings.remember_option and settings.log_events
    assert not settings.auth_requires_key
    assert settings.disabled_rpcs == frozenset()
    assert settings.is_embedded and settings.migrates_itself


def test_environment_and_nested_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHWORD_SESSION_EXPIRATION", "60")
    monkeypatch.setenv("WATCHWORD_MESSAGES__LOGIN_INVALID", "Nope")
    monkeypatch.setenv("WATCHWORD_DISABLED_RPCS", "Register, RequestPasswordReset")
    settings = load_settings()
    assert settings.session_expiration == 60
    assert settings.messages.login_invalid == "Nope"
    assert settings.messages.login_log == "User {id} logged in"
    assert settings.disabled_rpcs == {"Register", "RequestPasswordReset"}


def test_toml_file_with_environment_winning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "watchword.toml"
    config.write_text(
        'database_url = "postgresql+psycopg://db/watchword"\n'
        'hmac_key = "0123456789abcdef0123"\n'
        "password_min_length = 12\n"
        'disabled_rpcs = ["Logout"]\n'
        "[messages]\n"
        'login_invalid = "From the file"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("WATCHWORD_CONFIG", str(config))
    monkeypatch.setenv("WATCHWORD_PASSWORD_MIN_LENGTH", "10")
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://db/watchword"
    assert not settings.is_embedded and not settings.migrates_itself
    assert settings.password_min_length == 10
    assert settings.disabled_rpcs == {"Logout"}
    assert settings.messages.login_invalid == "From the file"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hmac_alg", "md5"),
        ("hmac_alg", "bcrypt(3)"),
        ("listen", "50051"),
        ("password_min_length", 0),
        ("hmac_key", "short"),
        ("no_such_setting", 1),
    ],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_unknown_message_keys_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(messages={"login_invalidd": "typo"})


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.listen = "0.0.0.0:1"  # type: ignore[misc]


def test_broken_message_templates_are_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="messages.login_log"):
        Settings(messages={"login_log": "User {id[x]} in"})
    with pytest.raises(ValidationError, match="messages.registration_email_text"):
        Settings(messages={"registration_email_text": "Open {link"})


def test_webauthn_settings_default_to_local_use_and_read_a_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert (settings.webauthn_rp_id, settings.webauthn_rp_name) == ("localhost", "Watchword")
    assert settings.webauthn_origins == {"http://localhost:8000"}
    assert settings.webauthn_challenge_ttl == 300
    monkeypatch.setenv("WATCHWORD_WEBAUTHN_RP_ID", "example.com")
    monkeypatch.setenv("WATCHWORD_WEBAUTHN_ORIGINS", "https://example.com, https://app.example.com")
    assert load_settings().webauthn_origins == {"https://example.com", "https://app.example.com"}


@pytest.mark.parametrize(
    ("rp_id", "origin", "complaint"),
    [
        ("example.com", "https://example.net", "nor under it"),
        ("example.com", "https://notexample.com", "nor under it"),
        ("example.com", "http://example.com", "http only on localhost"),
        ("example.com", "https://example.com/login", "not an origin"),
        ("localhost", "localhost:8000", "not an origin"),
        ("https://example.com", "https://example.com", "webauthn_rp_id must be"),
    ],
)
def test_webauthn_origins_must_be_origins_of_the_relying_party(
    rp_id: str, origin: str, complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(webauthn_rp_id=rp_id, webauthn_origins=frozenset({origin}))
