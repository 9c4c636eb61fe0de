"""Settings: one frozen object read from ``WATCHWORD_*`` variables and an optional TOML file.

Names follow the auth module's options where one exists (``hmac_key``, ``session_expiration``,
``registration_verification``, ``messages``…), so an existing deployment's configuration
carries over. Nested tables use ``__`` in variable names, e.g.
``WATCHWORD_MESSAGES__LOGIN_INVALID``. ``WATCHWORD_CONFIG`` names the TOML file.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from watchword_server.security.passwords import parse_algorithm
from watchword_server.templates import TemplateError, render

__all__ = [
    "EMBEDDED_DATABASE_URL",
    "CustomField",
    "Messages",
    "SchemaSettings",
    "Settings",
    "SettingsError",
    "check_environment",
    "load_settings",
]

_log = logging.getLogger(__name__)

_PREFIX = "WATCHWORD_"
# Read by the server but not settings themselves; WATCHWORD_TEST_* belong to our tests
# and benchmarks.
_NOT_SETTINGS = frozenset({"WATCHWORD_CONFIG"})
_TEST_PREFIX = "WATCHWORD_TEST_"
# How alike a variable must be to a setting's name to be taken for its misspelling.
_TYPO_CUTOFF = 0.8


class SettingsError(Exception):
    """Settings that cannot be read as given: a missing file, a misspelt variable."""


EMBEDDED_DATABASE_URL = "sqlite+aiosqlite:///./watchword.db"


class Messages(BaseModel):
    """Every user-facing text and event template; keys follow the auth module's names.

    Event templates are rendered with ``str.format`` and the fields ``id``, ``email`` (the
    user's) and, where they apply, ``group``, ``name`` and ``origin``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    login_invalid: str = "Invalid credentials"
    approval_pending: str = "Registration is pending approval"
    verification_pending: str = "Registration needs verification"
    login_disabled: str = "The account is disabled"
    login_blocked: str = "The account is blocked"
    # An embedding's hook failed (docs/embedding.md): nothing was done.
    hook_failed: str = "This cannot be done right now; please try again later"
    session_invalid: str = "The session is invalid or has expired"
    invalid_argument: str = "The request has invalid fields"
    email_taken: str = "The e-mail address is already registered"
    password_too_short: str = "The password must be at least {min_length} characters long"
    too_many_attempts: str = "Too many attempts, try again later"
    overloaded: str = "The service is busy, try again shortly"
    database_unavailable: str = "The service is unavailable, try again shortly"
    rpc_disabled: str = "This operation is disabled"
    service_key_missing: str = "A service key is required: send `authorization: Bearer <key>`"
    service_key_invalid: str = "The service key is unknown or revoked"
    scope_insufficient: str = "The service key's scope does not allow this call"
    service_key_subject_mismatch: str = (
        "The service key is bound to a client certificate this call does not present"
    )
    user_not_found: str = "No such user"
    group_not_found: str = "No such group"
    group_taken: str = "A group with this name exists already"
    membership_not_found: str = "The user is not a member of this group"
    permission_not_found: str = "No such permission"
    page_token_invalid: str = "The page token is invalid"
    stream_overflow: str = "The event stream fell too far behind and was closed"
    shutting_down: str = "The server is shutting down"
    rpc_unimplemented: str = "This operation is not implemented yet"
    registration_email_subject: str = "Email verification"
    registration_email_text: str = "Click on the link {link} to verify your email"
    reset_password_email_subject: str = "Password reset requested"
    reset_password_email_text: str = (
        "A password reset was requested for your account, click on the link {link} to proceed"
    )
    registration_exists_email_subject: str = "Someone tried to register with your address"
    registration_exists_email_text: str = (
        "Someone tried to register a new account with this address, {email}. You have an "
        "account already: log in, or reset your password if you forgot it. If it was not "
        "you, nothing changed and you can ignore this mail."
    )
    verification_key_invalid: str = "The verification link is invalid or has expired"
    reset_key_invalid: str = "The password reset link is invalid or has expired"
    password_incorrect: str = "The current password is incorrect"
    second_factor_invalid: str = (
        "The code or passkey is wrong or has expired; log in again if this persists"
    )
    totp_already_enabled: str = "Two-step verification is on already"
    totp_not_enabled: str = "Two-step verification is not set up"
    passkey_taken: str = "This passkey is registered already"
    passkey_not_found: str = "No such passkey"
    registration_log: str = "User {id} registered"
    login_log: str = "User {id} logged in"
    login_failed_log: str = "Failed login for {email}"
    logout_log: str = "User {id} logged out"
    email_verification_log: str = "User {id} verified the e-mail address"
    password_retrieval_log: str = "Password reset requested for user {id}"
    password_reset_log: str = "User {id} reset the password"
    password_change_log: str = "User {id} changed the password"
    profile_log: str = "User {id} updated the profile"
    user_created_log: str = "User {id} created by {origin}"
    user_updated_log: str = "User {id} updated by {origin}"
    user_deleted_log: str = "User {id} deleted by {origin}"
    user_disabled_log: str = "User {id} disabled by {origin}"
    user_blocked_log: str = "User {id} blocked by {origin}"
    user_allowed_log: str = "User {id} allowed by {origin}"
    user_approved_log: str = "User {id} approved by {origin}"
    sessions_revoked_log: str = "Sessions of user {id} revoked by {origin}"
    add_group_log: str = "Group {group} created"
    del_group_log: str = "Group {group} deleted"
    add_membership_log: str = "User {id} is now member of group {group}"
    del_membership_log: str = "User {id} is no longer member of group {group}"
    add_permission_log: str = "Permission {name} granted to group {group}"
    del_permission_log: str = "Permission {name} withdrawn from group {group}"
    totp_enrollment_log: str = "User {id} started setting up an authenticator app"
    totp_enabled_log: str = "User {id} turned on two-step verification"
    totp_disabled_log: str = "User {id} turned off two-step verification"
    recovery_codes_regenerated_log: str = "User {id} made new recovery codes"
    second_factor_required_log: str = "User {id} gave the right password; second step asked"
    second_factor_failed_log: str = "Failed second step for {email}"
    recovery_code_used_log: str = "User {id} used a recovery code"
    second_factors_reset_log: str = "Second factors of user {id} removed by {origin}"
    passkey_registered_log: str = "User {id} registered the passkey {name}"
    passkey_deleted_log: str = "User {id} deleted the passkey {name}"
    passkey_login_log: str = "User {id} logged in with a passkey"
    passkey_login_failed_log: str = "Failed passkey login for {email}"


def _check_templates(messages: Messages) -> None:
    # Render every text once now, so a broken override fails at start, not in a flow.
    sample = dict(
        id="u",
        email="e",
        group="g",
        name="n",
        origin="o",
        link="l",
        min_length=8,
        first_name="f",
        last_name="l",
    )
    for key, template in messages.model_dump().items():
        try:
            render(str(template), sample)
        except TemplateError as error:
            raise ValueError(f"messages.{key} is not a valid template: {error}") from None


class CustomField(BaseModel):
    """A deployment's own user field, carried in ``User.extra``.

    ``registration`` and ``profile`` say whether end users may write it when registering
    and when updating their profile (the auth module's ``form_registration_rw`` and
    ``form_profile_rw``); as there, a field is not theirs to write unless declared so.
    ``readable`` says whether users see it in their own account (Register, Authenticate,
    Introspect, GetProfile…); a hidden field they may not write is refused to them as an
    unknown one, and one they may write (write-only) is kept when their profile replaces
    all of ``extra`` without it. Administrators always read and write every field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: Literal["string", "integer", "number", "boolean"] = "string"
    required: bool = False
    registration: bool = False
    profile: bool = False
    readable: bool = True
    max_length: int = Field(default=1024, ge=1)


def _check_tls_files(settings: Settings) -> None:
    # Only whether they go together; the files themselves are read (and their errors
    # reported) when the server starts.
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ValueError(
            "tls_cert_file and tls_key_file go together: set both (TLS) or neither (plaintext)"
        )
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        raise ValueError(
            "tls_client_ca_file (client certificates) needs TLS: set tls_cert_file and "
            "tls_key_file too"
        )


def _check_webauthn(settings: Settings) -> None:
    # What browsers accept, checked at start rather than found out at the first ceremony.
    rp_id = settings.webauthn_rp_id
    if not rp_id or any(char in rp_id for char in "/:@ ") or rp_id != rp_id.lower():
        raise ValueError(f"webauthn_rp_id must be a lower-case domain name, not {rp_id!r}")
    if not settings.webauthn_origins:
        raise ValueError("webauthn_origins must name at least one origin")
    for origin in sorted(settings.webauthn_origins):
        parts = urlsplit(origin)
        host = parts.hostname or ""
        local = host == "localhost" or host.endswith(".localhost")
        if (
            parts.scheme not in ("https", "http")
            or (parts.scheme == "http" and not local)
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ValueError(
                f"webauthn_origins: {origin!r} is not an origin like https://example.com "
                "(http only on localhost)"
            )
        if host != rp_id and not host.endswith(f".{rp_id}"):
            raise ValueError(
                f"webauthn_origins: {origin!r} is neither webauthn_rp_id ({rp_id}) nor under it"
            )


class Settings(BaseSettings):
    """The server's whole configuration, validated once at start and never mutated."""

    model_config = SettingsConfigDict(
        env_prefix="WATCHWORD_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    database_url: str = EMBEDDED_DATABASE_URL
    listen: str = "127.0.0.1:50051"
    # TLS: PEM files of the server's certificate (chain) and its unencrypted private key;
    # with both set the server listens with TLS only. A client CA file (PEM) also makes
    # every client show a certificate issued by one of its CAs (mutual TLS).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    hmac_key: str | None = None
    hmac_key_id: str = "k1"
    hmac_retired_keys: dict[str, str] = Field(default_factory=dict)
    hmac_alg: str = "bcrypt(12)"
    log_events: bool = True
    password_min_length: int = Field(default=8, ge=1, le=1024)
    password_max_length: int = Field(default=1024, ge=8)
    password_refuse_common: bool = True
    names_required: bool = True
    # Password guessing: after this many failures within login_failure_window seconds, an
    # address (known or not) or a client address is refused with TOO_MANY_ATTEMPTS; 0 = off.
    login_max_failures: int = Field(default=10, ge=0)
    login_max_failures_per_client: int = Field(default=100, ge=0)
    login_failure_window: int = Field(default=900, ge=1)
    remember_option: bool = True
    session_expiration: int = Field(default=3600, ge=1)
    session_long_expiration: int = Field(default=2_592_000, ge=1)
    registration_verification: bool = True
    registration_approval: bool = False
    # Register with an address in use answers as for a new one and mails its owner.
    registration_enumeration_safe: bool = False
    verification_key_ttl: int = Field(default=259_200, ge=1)
    # Passkeys (WebAuthn): the relying party's id (the site's domain, which every origin
    # must be or be under), its name shown by authenticators, the origins (scheme://host
    # [:port]) the browser may report, and how long a ceremony's challenge may be answered.
    webauthn_rp_id: str = "localhost"
    webauthn_rp_name: str = "Watchword"
    webauthn_origins: Annotated[frozenset[str], NoDecode] = frozenset({"http://localhost:8000"})
    webauthn_challenge_ttl: int = Field(default=300, ge=1, le=86_400)
    reset_key_ttl: int = Field(default=86_400, ge=1)
    # Second factors: seconds a login has to give its second factor after the password;
    # the issuer name authenticator apps show next to the account; recovery codes per set.
    second_factor_challenge_ttl: int = Field(default=300, ge=1, le=3600)
    totp_issuer: str = Field(default="Watchword", min_length=1, max_length=64)
    recovery_code_count: int = Field(default=10, ge=1, le=100)
    # NoDecode: a plain variable may say `A,B` as well as a JSON list.
    disabled_rpcs: Annotated[frozenset[str], NoDecode] = frozenset()
    messages: Messages = Field(default_factory=Messages)
    verification_url: str = "http://localhost:8000/verify/{key}"
    reset_url: str = "http://localhost:8000/reset/{key}"
    custom_fields: tuple[CustomField, ...] = ()
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    # A PEM file of CAs to trust for the SMTP server's certificate (default: the system's).
    smtp_ca_file: str | None = None
    # A mail that failed this many times is given up ("dead"): logged, kept, listed by
    # `watchword mail dead`, sent again only after `watchword mail retry`.
    mail_max_attempts: int = Field(default=12, ge=1)
    # Seconds a server may take to send a mail it claimed before another may claim it; a
    # mail whose server died meanwhile goes out this long after it was claimed. Keep it
    # well above the SMTP timeouts (10 s per step), or a slow send may go out twice.
    mail_claim_lease: int = Field(default=60, ge=1)
    # Retention: every retention_interval seconds (0: never) each server deletes expired
    # sessions, mailed keys used or expired more than used_key_retention seconds ago, mail
    # sent more than sent_mail_retention and given up more than dead_mail_retention ago,
    # login failures past login_failure_window and expired passkey challenges. The audit
    # log is kept.
    retention_interval: int = Field(default=3600, ge=0)
    used_key_retention: int = Field(default=7 * 86_400, ge=0)
    sent_mail_retention: int = Field(default=7 * 86_400, ge=0)
    dead_mail_retention: int = Field(default=30 * 86_400, ge=0)
    mail_sender: str | None = None
    # "package.module:callable" that delivers mails instead of SMTP (the auth module's
    # registration_mail / reset_password_mail hooks); it receives an OutgoingMail.
    mail_hook: str | None = None
    auth_requires_key: bool = False
    # Peers whose `x-forwarded-for` / `x-real-ip` name the end user's address (the app
    # backends calling on users' behalf); from anyone else the peer's own address counts.
    trusted_proxies: Annotated[frozenset[str], NoDecode] = frozenset({"127.0.0.1", "::1"})
    database_pool_size: int = Field(default=10, ge=1)
    # Operations: Prometheus metrics on host:port (/metrics), off when unset; log lines as
    # `text` or `json`, from `log_level` up; with `log_rpcs`, one line per RPC (at info).
    metrics_listen: str | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_rpcs: bool = False
    # Password hashing (every login, registration and password change) runs on its own
    # threads: this many (0 = one per core), those beyond cores - 1 at this many nice steps
    # below the process so the event loop serving checks wins a core in a login storm (a
    # lone login runs on a thread at full priority), and with at most
    # password_hash_max_waiting jobs waiting beyond the running ones; one more is refused
    # at once with RESOURCE_EXHAUSTED (OVERLOADED) and a retry delay.
    password_hash_threads: int = Field(default=0, ge=0)
    password_hash_max_waiting: int = Field(default=32, ge=0)
    password_hash_niceness: int = Field(default=10, ge=0, le=19)
    # Seconds a cached check answer, session or service key may be used even if no change
    # notice arrives (they are dropped at once when one does); 0 turns the cache off.
    check_cache_max_staleness: float = Field(default=30.0, ge=0)
    # Entries in each process's check cache; the oldest go first beyond that.
    check_cache_size: int = Field(default=100_000, ge=1)
    # The same bound for cached service keys (revoking one still reaches every process at
    # once through the change notices); 0 checks each call's key in the database.
    service_key_cache_max_staleness: float = Field(default=30.0, ge=0)
    auto_migrate: bool | None = None
    grace_period: float = Field(default=5.0, ge=0)
    # On SIGTERM, seconds the server says NOT_SERVING but still serves, so load balancers
    # and health-watching clients move away before calls are refused; 0 = stop at once.
    shutdown_drain_seconds: float = Field(default=5.0, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, so one variable can override a shared config file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("WATCHWORD_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                # Silently running on defaults instead of the named file is worse than not
                # starting.
                raise SettingsError(f"WATCHWORD_CONFIG={config_file}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @field_validator("hmac_alg")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        return parse_algorithm(value).spec

    @field_validator("listen", "metrics_listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("listen must be HOST:PORT")
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def logs_rpcs(self) -> bool:
        """Whether one line per RPC is written (``log_rpcs`` at a level that shows it)."""
        return self.log_rpcs and self.log_level in ("debug", "info")

    @field_validator("tls_cert_file", "tls_key_file", "tls_client_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `WATCHWORD_TLS_CERT_FILE=` (a variable left empty) means no file, not a file "".
        return None if value == "" else value

    @field_validator("disabled_rpcs", "trusted_proxies", "webauthn_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # Accept "A,B" from a plain environment variable as well as a JSON/TOML list.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _pepper_outside_embedded(self) -> Settings:
        # Its own validator so that SchemaSettings (`watchword migrate`) can drop it.
        if self.hmac_key is None and not self.is_embedded:
            raise ValueError(
                "hmac_key is required with a database_url: set WATCHWORD_HMAC_KEY "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self

    @model_validator(mode="after")
    def _key_outside_embedded(self) -> Settings:
        if self.hmac_key is not None and len(self.hmac_key) < 16:
            raise ValueError("hmac_key must be at least 16 characters long")
        if self.hmac_key_id in self.hmac_retired_keys:
            raise ValueError("hmac_key_id must not also name a retired key")
        _check_templates(self.messages)
        names = [field.name for field in self.custom_fields]
        if len(names) != len(set(names)):
            raise ValueError("custom_fields names must be unique")
        if self.smtp_host and not self.mail_sender:
            raise ValueError("mail_sender (the From address) is required with smtp_host")
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("smtp_ssl and smtp_starttls exclude each other")
        _check_tls_files(self)
        _check_webauthn(self)
        if self.registration_enumeration_safe and not (
            self.registration_verification or self.registration_approval
        ):
            raise ValueError(
                "registration_enumeration_safe needs registration_verification or "
                "registration_approval: otherwise a new address gets a session at once, "
                "which an address in use cannot be given"
            )
        return self

    @property
    def is_embedded(self) -> bool:
        """Whether the server runs on the embedded SQLite file rather than PostgreSQL."""
        return self.database_url.startswith("sqlite")

    @property
    def migrates_itself(self) -> bool:
        """Whether `serve` may bring the schema up to date on its own (embedded default)."""
        return self.is_embedded if self.auto_migrate is None else self.auto_migrate


class SchemaSettings(Settings):
    """The settings of `watchword migrate`: changing the schema needs no pepper.

    Every other setting is still read and checked, so a migration runs against the
    database the server will use.
    """

    @model_validator(mode="after")
    def _pepper_outside_embedded(self) -> SchemaSettings:  # replaces the check of Settings
        return self


def check_environment(environ: Mapping[str, str]) -> list[str]:
    """Warnings for ``WATCHWORD_*`` variables that name no setting (a client's, say).

    Raises:
        SettingsError: a variable is so like a setting's name that it must be a misspelling
            of it (``WATCHWORD_SESSION_EXPIRATON``): ignoring it would run with a default
            its author meant to change.
    """
    fields = list(Settings.model_fields)
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(_PREFIX) or upper in _NOT_SETTINGS:
            continue
        if upper.startswith(_TEST_PREFIX):
            continue
        field = name[len(_PREFIX) :].lower().split("__", 1)[0]
        if field in Settings.model_fields:
            continue
        nearest = difflib.get_close_matches(field, fields, n=1, cutoff=_TYPO_CUTOFF)
        if nearest:
            raise SettingsError(
                f"{name} names no setting: did you mean {_PREFIX}{nearest[0].upper()}?"
            )
        warnings.append(f"{name} names no setting of the server; it is ignored")
    return warnings


def load_settings(*, schema_only: bool = False, **overrides: Any) -> Settings:
    """Read settings from the environment and ``WATCHWORD_CONFIG``; keyword overrides win.

    With ``schema_only`` (``watchword migrate``) the pepper is not required.

    Raises:
        SettingsError: see ``check_environment``; or ``WATCHWORD_CONFIG`` names no file.
        pydantic.ValidationError: a setting's value is invalid.
    """
    for warning in check_environment(os.environ):
        _log.warning("%s", warning)
    model = SchemaSettings if schema_only else Settings
    return model(**overrides)
