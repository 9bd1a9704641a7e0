"""Configuration from ACCESS_API_* environment variables, refusing unsafe secrets."""

from __future__ import annotations

import os
import secrets
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SQLITE_DEFAULT_URL = "sqlite+aiosqlite:///./access-api.db"
MIN_SECRET_LENGTH = 32
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
_WEAK_SECRETS = {"changethis", "secret", "changeme", "password", "development"}


class InsecureConfiguration(RuntimeError):
    """The service refuses to start with a configuration that would be unsafe."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCESS_API_", extra="ignore")

    database_url: str = SQLITE_DEFAULT_URL
    secret_key: SecretStr | None = Field(
        default=None,
        description="Keys every token hash, cursor signature and encryption. Required unless "
        "the database is the embedded SQLite file, where one is generated and kept beside it.",
    )
    secret_key_file: Path = Path(".access-api-secret")
    public_url: str = "http://127.0.0.1:8000"
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The API's own public address: clients reach it there (bootstrap prints "
        "its login command against it) and the OpenID redirect URI is "
        "{base_url}/v1/auth/sso/callback; public_url is where people follow links from emails",
    )
    smtp_url: SecretStr | None = None
    smtp_from: str = "access-api <no-reply@access-api.localhost>"
    cors_origins: list[str] = Field(default_factory=list)
    forwarded_allow_ips: str = Field(
        default="",
        description="Comma-separated proxy addresses (or *) whose X-Forwarded-For/-Proto are "
        "trusted; empty (the default) trusts nobody, so clients cannot pick their address",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="Largest request body, refused with 413 from Content-Length or while read",
    )
    request_read_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request (headers and body) must arrive whole within this; else 408",
    )
    log_format: str = Field(default="text", pattern="^(text|json)$")
    log_level: str = "INFO"
    metrics_token: SecretStr | None = Field(
        default=None, description="When set, GET /metrics needs `Authorization: Bearer <it>`"
    )

    gc_tuning: bool = Field(
        default=True,
        description="Once the app has started, freeze what it built out of the garbage "
        "collector's reach and collect young objects every 10,000 allocations, not 700 "
        "(access_api.collector); false where the app shares its process with other code",
    )

    db_connect_timeout_seconds: float = 3.0
    db_statement_timeout_seconds: float = 5.0
    db_pool_size: int = 20
    db_pool_timeout_seconds: float = 3.0
    db_pooler: Literal["none", "transaction"] = Field(
        default="none",
        description="`transaction` when the database is reached through a pooler in "
        "transaction mode (PgBouncer): no prepared statement outlives its transaction",
    )

    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's OpenTelemetry instrumentation (spans, metrics and logs of each "
        "request) through the providers the process configures; off, it costs nothing per "
        "request",
    )

    mail_dispatcher: bool = Field(
        default=True,
        description="Deliver the outbox from inside the server process (off when a separate "
        "`access-api worker` does it)",
    )
    mail_lease_seconds: float = Field(default=60.0, gt=0)
    outbox_give_way_seconds: float = Field(
        default=0.05,
        ge=0,
        description="How long the server's own dispatchers wait, before each message, for a "
        "moment with no request in flight (deliveries then do not lengthen requests); under "
        "constant load they still deliver one message per this interval",
    )
    mail_poll_seconds: float = Field(default=5.0, gt=0)
    mail_retry_base_seconds: float = Field(default=5.0, gt=0)
    mail_retry_max_seconds: float = Field(default=900.0, gt=0)
    mail_max_attempts: int = Field(default=100, ge=1)

    allow_http_webhooks: bool = Field(
        default=False,
        description="Let webhook endpoints use http and private, loopback or link-local "
        "targets (a laptop, a test receiver); never in production: it opens SSRF",
    )
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_read_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_max_attempts: int = Field(default=200, ge=1)
    webhook_disable_after_hours: float = Field(
        default=72.0, gt=0, description="A receiver failing for this long is disabled"
    )

    export_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long one CSV export may run: a long read by design, so it has its own "
        "bound instead of the per-statement timeout",
    )
    session_absolute_lifetime_hours: int = 24 * 14
    idempotency_retention_hours: int = 24
    password_reset_answer_seconds: float = Field(
        default=0.25,
        ge=0,
        description="Forgot-password answers take at least this long, known email or not, so "
        "timing tells nothing about which emails have an account",
    )
    hosted_pages: bool = Field(
        default=True,
        description="Serve the pages behind every emailed link (reset password, accept an "
        "invitation, ...); off when a frontend under PUBLIC_URL serves them",
    )

    @field_validator("public_url", "base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _known_smtp_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = value.get_secret_value().split("://", 1)[0]
            if scheme not in SMTP_SCHEMES:
                raise ValueError(
                    f"ACCESS_API_SMTP_URL must start with one of {', '.join(SMTP_SCHEMES)}://"
                )
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def secret(self) -> bytes:
        """The server secret, from the environment or, for the embedded database, a key file."""
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if len(value) < MIN_SECRET_LENGTH or value.lower() in _WEAK_SECRETS:
                raise InsecureConfiguration(
                    f"ACCESS_API_SECRET_KEY must be at least {MIN_SECRET_LENGTH} random "
                    "characters (try: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
            return value.encode()
        if not self.is_sqlite:
            raise InsecureConfiguration(
                "ACCESS_API_SECRET_KEY is required with a shared database: every process must "
                "hash and verify tokens with the same key"
            )
        return _load_or_create_key_file(self.secret_key_file)


def _load_or_create_key_file(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    # Written whole to a private temporary file, then linked into place: a process starting
    # at the same moment either wins the link or reads the winner's complete key.
    key = secrets.token_urlsafe(48).encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    try:
        os.link(temporary, path)
    except FileExistsError:
        key = path.read_bytes().strip()
    finally:
        temporary.unlink()
    return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
