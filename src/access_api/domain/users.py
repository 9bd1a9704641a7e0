"""Users: the person behind every credential, identified for life by their email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from access_api.domain.errors import FieldError, ValidationFailed

SESSION_TIMEOUT_MIN = 5
SESSION_TIMEOUT_MAX = 1440
SESSION_TIMEOUT_DEFAULT = 60
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024
PROFILE_FIELDS = ("first_name", "last_name", "phone", "session_timeout_minutes")


class TwoFactor(StrEnum):
    DISABLED = "disabled"
    TOTP = "totp"
    EMAIL = "email"


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    id: UUID
    email: str
    first_name: str
    last_name: str
    phone: str | None
    session_timeout_minutes: int
    two_factor: TwoFactor
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


def email_key(email: str) -> str:
    """Emails are unique case-insensitively: Alice@Example.com and alice@example.com are one."""
    return email.strip().lower()


def check_password(password: str, *, email: str, field: str = "password") -> str:
    """Length is what makes a password strong (NIST SP 800-63B); one that is, or contains,
    the account's own email name is the first thing an attacker tries."""
    problems: list[FieldError] = []
    if len(password) < PASSWORD_MIN_LENGTH:
        problems.append(
            FieldError(
                field, "password_too_short", f"use at least {PASSWORD_MIN_LENGTH} characters"
            )
        )
    elif len(password) > PASSWORD_MAX_LENGTH:
        problems.append(
            FieldError(field, "password_too_long", f"use at most {PASSWORD_MAX_LENGTH} characters")
        )
    local = email_key(email).split("@", 1)[0]
    if len(local) >= 4 and local in password.lower():
        problems.append(FieldError(field, "password_contains_email", "must not contain your email"))
    if len(set(password)) < 4:
        problems.append(FieldError(field, "password_too_simple", "use more different characters"))
    if problems:
        raise ValidationFailed(problems)
    return password
