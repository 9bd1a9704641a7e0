"""Account recovery: password reset links, verified changes of email, TOTP recovery codes,
sessions a person or an admin can see and end, and the passkey rules (WebAuthn counters)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from access_api.domain.access import Caller, plan_person_targets
from access_api.domain.errors import (
    CannotResetOwnPassword,
    EmailTaken,
    FieldError,
    ValidationFailed,
)
from access_api.domain.throttle import PER_ACCOUNT, PER_ADDRESS, Rule
from access_api.domain.users import User, email_key

# A reset link is as good as the password: short-lived, and single use.
PASSWORD_RESET_LIFETIME = timedelta(hours=1)
EMAIL_CHANGE_LIFETIME = timedelta(hours=24)

# Forgot-password requests are counted (not only failures): each one sends a mail.
PASSWORD_RESET_ACCOUNT = Rule("password_reset:account", PER_ACCOUNT)
PASSWORD_RESET_ADDRESS = Rule("password_reset:address", PER_ADDRESS)


def plan_password_resets(
    caller: Caller,
    context_id: UUID,
    user_ids: Sequence[UUID],
    *,
    visible: Mapping[UUID, User],
    grant_chains: Mapping[UUID, Sequence[Sequence[UUID]]],
) -> list[User]:
    """Whom an admin may send a reset link: never themselves (they change their password with
    the current one, so a stolen session cannot take the account over), and only people they
    may manage from here (downward only). Atomic: every refused id is named."""
    return plan_person_targets(
        caller,
        context_id,
        user_ids,
        visible=visible,
        grant_chains=grant_chains,
        own=CannotResetOwnPassword,
    )


def plan_session_revocations(
    caller: Caller,
    context_id: UUID,
    user_ids: Sequence[UUID],
    *,
    visible: Mapping[UUID, User],
    grant_chains: Mapping[UUID, Sequence[Sequence[UUID]]],
) -> list[User]:
    """Whose sessions an admin may end from here: people they may manage (downward only);
    their own sessions too (that is "sign me out everywhere"). Atomic like every bulk action."""
    return plan_person_targets(
        caller, context_id, user_ids, visible=visible, grant_chains=grant_chains, own=None
    )


# --- change of email ------------------------------------------------------------------------


def ensure_new_email(user: User, new_email: str, taken: bool) -> str:
    """A new address must differ from the current one and belong to nobody else; it is taken
    on confirmation only, checked again then (email_taken if someone took it meanwhile)."""
    if email_key(new_email) == email_key(user.email):
        raise ValidationFailed(
            [FieldError("new_email", "unchanged", "this is already your email address")]
        )
    if taken:
        raise EmailTaken()
    return new_email


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailChange:
    id: UUID
    user_id: UUID
    new_email: str
    created_at: datetime
    expires_at: datetime


# --- recovery codes -------------------------------------------------------------------------

RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_GROUPS = 2
RECOVERY_CODE_GROUP_LENGTH = 5
# Lowercase letters and digits without the ones people misread (0/o, 1/l/i).
RECOVERY_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def recovery_code_from(randoms: Sequence[int]) -> str:
    """A code people can copy by hand: two groups of five, about 49 bits in all."""
    letters = [RECOVERY_CODE_ALPHABET[n % len(RECOVERY_CODE_ALPHABET)] for n in randoms]
    size = RECOVERY_CODE_GROUP_LENGTH
    return "-".join("".join(letters[i : i + size]) for i in range(0, len(letters), size))


def normalize_recovery_code(text: str) -> str | None:
    """The canonical form of what a person typed (case, spaces and hyphens do not matter), or
    None when it cannot be a recovery code (a TOTP or email code, say)."""
    squeezed = "".join(ch for ch in text.lower() if ch not in " -\t")
    length = RECOVERY_CODE_GROUPS * RECOVERY_CODE_GROUP_LENGTH
    if len(squeezed) != length or any(ch not in RECOVERY_CODE_ALPHABET for ch in squeezed):
        return None
    size = RECOVERY_CODE_GROUP_LENGTH
    return "-".join(squeezed[i : i + size] for i in range(0, length, size))


# --- passkeys -------------------------------------------------------------------------------

PASSKEY_CHALLENGE_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class Passkey:
    id: UUID
    user_id: UUID
    name: str
    credential_id: str  # base64url, as the browser names it
    public_key: bytes  # COSE
    sign_count: int
    created_at: datetime
    last_used_at: datetime | None


PASSKEY_NAME_MAX_LENGTH = 100


def counter_is_fresh(stored: int, presented: int) -> bool:
    """WebAuthn sign counters only grow. An authenticator that keeps none sends 0 each time;
    one that sends a number not above what we saw last is a clone of a key someone copied
    (W3C WebAuthn §6.1.1), so the assertion is refused."""
    if stored == 0 and presented == 0:
        return True
    return presented > stored


def passkey_name(name: str | None, count: int) -> str:
    cleaned = " ".join((name or "").split())
    if len(cleaned) > PASSKEY_NAME_MAX_LENGTH:
        raise ValidationFailed(
            [FieldError("name", "too_long", f"at most {PASSKEY_NAME_MAX_LENGTH} characters")]
        )
    return cleaned or f"Passkey {count + 1}"


# --- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInfo:
    """A login session as its owner (or an admin) sees it: where and when, never its token."""

    id: UUID
    user_id: UUID
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool
