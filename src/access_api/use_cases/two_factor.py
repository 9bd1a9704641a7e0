"""The caller's own two-factor authentication: TOTP enrolment and the first code that ends it."""

from __future__ import annotations

from dataclasses import dataclass

from access_api.domain import errors as e
from access_api.domain import two_factor
from access_api.domain.access import Caller
from access_api.domain.audit import Action
from access_api.domain.users import TwoFactor, User
from access_api.services import totp
from access_api.use_cases import recovery_codes
from access_api.use_cases.work import Work

SEAL_PURPOSE = "totp"


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolment:
    """A new TOTP secret, shown this once, and the same secret as an otpauth:// URI."""

    secret: str
    otpauth_uri: str


async def _person(work: Work, caller: Caller) -> User:
    two_factor.ensure_at_the_keyboard(caller)
    user = await work.users.get(caller.user_id)
    if user is None:
        raise e.Unauthenticated()
    return user


async def enrol_totp(work: Work, caller: Caller) -> Enrolment:
    """Start (or restart) enrolment: a new pending secret, enabled once a code proves it."""
    user = await _person(work, caller)
    two_factor.ensure_can_enrol(user)
    secret = totp.new_secret()
    await work.two_factor.start_enrolment(
        user.id, work.keyring.seal_text(secret, SEAL_PURPOSE), work.now
    )
    await work.record(
        caller.actor, Action.TWO_FACTOR_ENROLMENT_STARTED, tenant=None, target_id=user.id
    )
    return Enrolment(secret=secret, otpauth_uri=totp.provisioning_uri(secret, user.email))


@dataclass(frozen=True, slots=True, kw_only=True)
class TotpEnabled:
    """TOTP is on; the recovery codes are shown here, once."""

    two_factor: TwoFactor
    recovery_codes: list[str]


async def verify_totp(work: Work, caller: Caller, code: str) -> TotpEnabled:
    """The app's code proves the pending secret: TOTP is on. A code is accepted once."""
    user = await _person(work, caller)
    two_factor.ensure_can_enrol(user)
    current = await work.two_factor.totp(user.id)
    pending = two_factor.ensure_enrolling(current.sealed_pending)
    secret = work.keyring.unseal_text(pending, SEAL_PURPOSE)
    step = totp.matching_step(secret, code, work.now)
    if (
        step is None
        or not two_factor.is_fresh(step, current.last_step)
        or not await work.two_factor.enable(user.id, pending, step, work.now)
    ):
        raise e.InvalidOtp()
    await work.record(
        caller.actor,
        Action.TWO_FACTOR_ENABLED,
        tenant=None,
        target_id=user.id,
        changes={"two_factor": {"before": user.two_factor.value, "after": TwoFactor.TOTP.value}},
    )
    codes = await recovery_codes.issue(work, user.id)
    return TotpEnabled(two_factor=TwoFactor.TOTP, recovery_codes=codes)
