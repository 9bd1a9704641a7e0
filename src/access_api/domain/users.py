"""Users: the person behind every credential, identified for life by their email."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from uuid import UUID

from access_api.domain.audit import Changes, diff
from access_api.domain.errors import EmailImmutable, FieldError, ValidationFailed

SESSION_TIMEOUT_MIN = 5
SESSION_TIMEOUT_MAX = 1440
SESSION_TIMEOUT_DEFAULT = 60
EXPORT_COLUMNS = (
    "user_id",
    "email",
    "first_name",
    "last_name",
    "roles",
    "two_factor",
    "status",
    "created_at",
    "last_login_at",
)
# A spreadsheet runs a cell starting with one of these as a formula (OWASP: CSV injection):
# text a person typed is exported with a leading apostrophe instead.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"

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


NAME_MAX_LENGTH = 100
PHONE_MAX_LENGTH = 40
# Search text over emails and names.
SEARCH_MAX_LENGTH = 200


def update_profile(user: User, fields: Mapping[str, object], now: datetime) -> tuple[User, Changes]:
    """Edit the person: names, phone, session timeout (seeds 000, 004). The email is who they
    are (seeds 000, 001): sending it back unchanged is harmless, another value is refused."""
    if "email" in fields and email_key(str(fields["email"])) != email_key(user.email):
        raise EmailImmutable("an email address cannot be changed; invite the new address instead")
    problems: list[FieldError] = []
    changed = replace(
        user,
        first_name=_name(fields, "first_name", user.first_name, problems),
        last_name=_name(fields, "last_name", user.last_name, problems),
        phone=_phone(fields, user.phone, problems),
        session_timeout_minutes=_timeout(fields, user.session_timeout_minutes, problems),
    )
    if problems:
        raise ValidationFailed(problems)
    changes = diff(user, changed, PROFILE_FIELDS)
    if changes:
        changed = replace(changed, updated_at=now)
    return changed, changes


def _name(fields: Mapping[str, object], name: str, current: str, problems: list[FieldError]) -> str:
    if name not in fields:
        return current
    value = str(fields[name] or "").strip()
    if not value or len(value) > NAME_MAX_LENGTH:
        problems.append(FieldError(name, "invalid_name", f"must be 1-{NAME_MAX_LENGTH} characters"))
        return current
    return value


def _phone(
    fields: Mapping[str, object], current: str | None, problems: list[FieldError]
) -> str | None:
    if "phone" not in fields:
        return current
    phone = str(fields["phone"] or "").strip() or None
    if phone is not None and len(phone) > PHONE_MAX_LENGTH:
        problems.append(FieldError("phone", "too_long", f"at most {PHONE_MAX_LENGTH} characters"))
        return current
    return phone


def _timeout(fields: Mapping[str, object], current: int, problems: list[FieldError]) -> int:
    if "session_timeout_minutes" not in fields:
        return current
    timeout = fields["session_timeout_minutes"]
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        timeout = -1
    if not SESSION_TIMEOUT_MIN <= timeout <= SESSION_TIMEOUT_MAX:
        problems.append(
            FieldError(
                "session_timeout_minutes",
                "out_of_range",
                f"must be {SESSION_TIMEOUT_MIN}-{SESSION_TIMEOUT_MAX} minutes",
            )
        )
        return current
    return timeout


def export_columns(columns: str | None) -> list[str]:
    """The columns of a CSV export, in the order asked for (seed 003); all by default."""
    if not columns:
        return list(EXPORT_COLUMNS)
    wanted = [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in EXPORT_COLUMNS]
    if unknown or not wanted:
        raise ValidationFailed(
            [
                FieldError(
                    "columns",
                    "unknown_column",
                    f"choose from {', '.join(EXPORT_COLUMNS)}"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
                )
            ]
        )
    return list(dict.fromkeys(wanted))


def neutralize(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def email_key(email: str) -> str:
    """Emails are unique case-insensitively: Alice@Example.com and alice@example.com are one."""
    return email.strip().lower()


def check_password(
    password: str, *, email: str, field: str = "password", min_length: int = PASSWORD_MIN_LENGTH
) -> str:
    """Length is what makes a password strong (NIST SP 800-63B); one that is, or contains,
    the account's own email name is the first thing an attacker tries."""
    problems: list[FieldError] = []
    if len(password) < min_length:
        problems.append(
            FieldError(field, "password_too_short", f"use at least {min_length} characters")
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
    elif _is_common(password):
        problems.append(
            FieldError(field, "password_common", "this password is one of the first ones guessed")
        )
    if problems:
        raise ValidationFailed(problems)
    return password


# Long passwords that still top the breach corpora (NIST SP 800-63B: refuse "values known to
# be commonly used"). Shorter ones already fail the length rule. Compared without case,
# spaces or punctuation, so "Password 1234!" is "password1234".
COMMON_PASSWORDS = frozenset(
    {
        "123456789012", "1234567890123", "12345678901234", "123456789123",
        "1234567891011", "123123123123", "111111111111", "000000000000",
        "123456123456", "121212121212", "147258369147", "987654321098",
        "qwertyuiopas", "qwertyuiopasdf", "qwertyuiop123", "qwerty123456",
        "1qaz2wsx3edc", "1q2w3e4r5t6y", "zaq12wsxcde3", "asdfghjkl123",
        "asdfasdfasdf", "qweasdzxc123", "password1234", "password12345",
        "password123456", "passwordpassword", "passw0rd1234", "p4ssw0rd1234",
        "mypassword123", "iloveyou1234", "iloveyouiloveyou", "letmein12345",
        "welcome12345", "welcome123456", "changeme1234", "changemenow1",
        "administrator", "administrator1", "admin1234567", "adminadmin123",
        "football1234", "baseball1234", "superman1234", "starwars1234",
        "monkey123456", "sunshine1234", "princess1234", "dragon123456",
        "trustno11234", "abc123abc123", "abcdefghijkl", "abcd1234abcd",
        "secret123456", "qwertyqwerty", "loveyou12345", "whatever1234",
    }
)  # fmt: skip


def _is_common(password: str) -> bool:
    squeezed = "".join(ch for ch in password.lower() if ch.isalnum())
    if squeezed in COMMON_PASSWORDS:
        return True
    # One short run repeated ("abcdabcdabcd") or a straight run of keys ("0123456789ab").
    for size in range(1, len(squeezed) // 3 + 1):
        if len(squeezed) % size == 0 and squeezed == squeezed[:size] * (len(squeezed) // size):
            return True
    steps = {ord(b) - ord(a) for a, b in pairwise(squeezed)}
    return len(squeezed) >= PASSWORD_MIN_LENGTH and steps in ({1}, {-1})


def new_user(
    *,
    id: UUID,
    email: str,
    first_name: str | None,
    last_name: str | None,
    phone: str | None,
    now: datetime,
) -> User:
    """A new person signing up (through an invitation): first and last name are required,
    the phone is optional; two-factor starts disabled and the session timeout at default."""
    problems: list[FieldError] = []
    fields: dict[str, object] = {}
    for name, value in (("first_name", first_name), ("last_name", last_name)):
        if value is None:
            problems.append(FieldError(name, "missing", "required for a new account"))
        else:
            fields[name] = value
    if phone is not None:
        fields["phone"] = phone
    blank = User(
        id=id,
        email=email,
        first_name="",
        last_name="",
        phone=None,
        session_timeout_minutes=SESSION_TIMEOUT_DEFAULT,
        two_factor=TwoFactor.DISABLED,
        created_at=now,
        updated_at=now,
        last_login_at=None,
    )
    user = replace(
        blank,
        first_name=_name(fields, "first_name", "", problems),
        last_name=_name(fields, "last_name", "", problems),
        phone=_phone(fields, None, problems),
    )
    if problems:
        raise ValidationFailed(problems)
    return user
