"""Two-factor authentication: TOTP and emailed codes that each work once, and the reset of a
lost authenticator, requested by an admin and confirmed (or denied) by its owner (seed 000)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from access_api.domain.access import Caller, plan_person_targets
from access_api.domain.audit import ActorKind, Changes
from access_api.domain.errors import (
    CannotResetOwnTwoFactor,
    Forbidden,
    OtpRequired,
    TotpNotEnrolling,
    TwoFactorEnabled,
    TwoFactorNotEnabled,
)
from access_api.domain.users import TwoFactor, User

# A code from the step before or after the server's is accepted: phone clocks drift.
DRIFT_STEPS = 1
ISSUER = "access-api"


def ensure_at_the_keyboard(caller: Caller) -> None:
    """Two-factor settings belong to the person at the keyboard: a login session, not an API
    key or an agent, which act for their user but are not them."""
    if caller.credential is not ActorKind.SESSION:
        raise Forbidden("two-factor settings can only be changed from a login session")


def ensure_can_enrol(user: User) -> None:
    """TOTP already on is changed only through a reset (seed 000), never by whoever holds a
    session: a stolen session must not be able to move the second factor to another phone."""
    if user.two_factor is TwoFactor.TOTP:
        raise TwoFactorEnabled()


def ensure_enrolling(pending_secret: str | None) -> str:
    if pending_secret is None:
        raise TotpNotEnrolling()
    return pending_secret


def needs_totp(user: User, otp: str | None) -> bool:
    """After the password, a TOTP user must send a code: without one, ask for it."""
    if user.two_factor is not TwoFactor.TOTP:
        return False
    if not otp:
        raise OtpRequired()
    return True


def is_fresh(step: int, last_accepted: int | None) -> bool:
    """A code is accepted once: only a time step newer than the last accepted one counts, so a
    code seen over a shoulder (or replayed by a second, parallel login) is refused. The
    database applies the same rule atomically; this is its statement."""
    return last_accepted is None or step > last_accepted


# --- codes sent by email (seed 003: after a reset, verification falls back to email) -------

EMAIL_CODE_DIGITS = 6
EMAIL_CODE_LIFETIME = timedelta(minutes=10)
# Each login without a code would otherwise mail one: at most one a minute per user.
EMAIL_CODE_RESEND_AFTER = timedelta(minutes=1)


def should_send_code(last_sent_at: datetime | None, now: datetime) -> bool:
    return last_sent_at is None or now - last_sent_at >= EMAIL_CODE_RESEND_AFTER


def is_email_code_shape(code: str) -> bool:
    return len(code) == EMAIL_CODE_DIGITS and code.isdigit()


# --- resets ---------------------------------------------------------------------------------

RESET_LIFETIME = timedelta(hours=24)


class ResetStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset:
    """An admin's request to clear a user's authenticator, made in one tenant's context."""

    id: UUID
    root_id: UUID
    tenant_id: UUID
    user_id: UUID
    requested_by: UUID | None
    status: ResetStatus
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None

    def status_at(self, now: datetime) -> ResetStatus:
        """A request nobody answered in time is expired, and its links are dead."""
        if self.status is ResetStatus.PENDING and self.expires_at <= now:
            return ResetStatus.EXPIRED
        return self.status


def new_reset(
    *, id: UUID, root_id: UUID, tenant_id: UUID, user_id: UUID, requested_by: UUID, now: datetime
) -> Reset:
    """A pending request, answerable for RESET_LIFETIME: long enough to read one's mail."""
    return Reset(
        id=id,
        root_id=root_id,
        tenant_id=tenant_id,
        user_id=user_id,
        requested_by=requested_by,
        status=ResetStatus.PENDING,
        created_at=now,
        expires_at=now + RESET_LIFETIME,
        decided_at=None,
    )


def answer_changes(reset: Reset, user: User) -> Changes:
    """What an answer changed: the request's status and, when confirmed, the user's factor."""
    changes: Changes = {
        "status": {"before": ResetStatus.PENDING.value, "after": reset.status.value}
    }
    if reset.status is ResetStatus.CONFIRMED:
        changes["two_factor"] = {"before": TwoFactor.TOTP.value, "after": user.two_factor.value}
    return changes


def plan_resets(
    caller: Caller,
    context_id: UUID,
    user_ids: Sequence[UUID],
    *,
    visible: Mapping[UUID, User],
    grant_chains: Mapping[UUID, Sequence[Sequence[UUID]]],
) -> list[User]:
    """Whose authenticator an admin may ask to reset: never their own (seed 000), only people
    they may manage from here (downward only), and only people who have one. Atomic: every
    refused id is named and nothing is requested."""
    return plan_person_targets(
        caller,
        context_id,
        user_ids,
        visible=visible,
        grant_chains=grant_chains,
        own=CannotResetOwnTwoFactor,
        also=_has_totp,
    )


def _has_totp(user: User) -> None:
    if user.two_factor is not TwoFactor.TOTP:
        raise TwoFactorNotEnabled()
