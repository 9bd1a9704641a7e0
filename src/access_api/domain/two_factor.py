"""Two-factor authentication with TOTP: enrolment, and codes that each work only once."""

from __future__ import annotations

from access_api.domain.errors import OtpRequired, TotpNotEnrolling, TwoFactorEnabled
from access_api.domain.users import TwoFactor, User

# A code from the step before or after the server's is accepted: phone clocks drift.
DRIFT_STEPS = 1
ISSUER = "access-api"


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
