"""The caller's own two-factor authentication: TOTP enrolment and its first code."""

from __future__ import annotations

from pydantic import BaseModel, Field

from access_api.dependencies import Audit, CurrentCaller, Now, State, TwoFactors, Users, Work
from access_api.domain import errors as e
from access_api.domain import two_factor
from access_api.domain.access import Caller
from access_api.domain.audit import ActorKind
from access_api.domain.users import TwoFactor, User
from access_api.errors import problem_responses
from access_api.repositories.users import UserRepository
from access_api.routers.common import AUTHENTICATED_PROBLEMS, Body, api_router
from access_api.services import totp
from access_api.use_cases import recovery_codes

router = api_router(prefix="/v1/me/two-factor", tags=["me"], responses=AUTHENTICATED_PROBLEMS)

SEAL_PURPOSE = "totp"


class TotpEnrolment(BaseModel):
    secret: str = Field(description="Base32 secret, for typing into an authenticator app")
    otpauth_uri: str = Field(description="The same secret as an otpauth:// URI")
    qr_svg: str = Field(description="The URI as an SVG QR code, to scan")


class TotpCode(Body):
    code: str = Field(min_length=6, max_length=10, description="The code the app shows now")


class TwoFactorState(BaseModel):
    two_factor: TwoFactor
    recovery_codes: list[str] | None = Field(
        default=None, description="Ten single-use codes for when the phone is lost: shown once"
    )


async def _person(caller: Caller, users: UserRepository) -> User:
    """Two-factor settings belong to the person at the keyboard: a session, not an API key."""
    if caller.credential is not ActorKind.SESSION:
        raise e.Forbidden("two-factor settings can only be changed from a login session")
    user = await users.get(caller.user_id)
    if user is None:
        raise e.Unauthenticated()
    return user


@router.post(
    "/totp",
    summary="Start TOTP enrolment: a new secret, enabled once a first code proves it",
    responses=problem_responses(e.Forbidden, e.TwoFactorEnabled),
)
async def enrol_totp(
    caller: CurrentCaller,
    users: Users,
    factors: TwoFactors,
    state: State,
    audit: Audit,
    now: Now,
) -> TotpEnrolment:
    user = await _person(caller, users)
    two_factor.ensure_can_enrol(user)
    secret = totp.new_secret()
    await factors.start_enrolment(user.id, state.keyring.seal_text(secret, SEAL_PURPOSE), now)
    await audit.record(
        caller.actor,
        "two_factor.enrolment_started",
        tenant=None,
        target_type="user",
        target_id=user.id,
    )
    uri = totp.provisioning_uri(secret, user.email)
    return TotpEnrolment(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))


@router.post(
    "/totp/verify",
    summary="Confirm TOTP enrolment with the code the app shows; two-factor is then on",
    responses=problem_responses(e.Forbidden, e.TwoFactorEnabled, e.TotpNotEnrolling, e.InvalidOtp),
)
async def verify_totp(
    body: TotpCode,
    caller: CurrentCaller,
    work: Work,
    users: Users,
    factors: TwoFactors,
    state: State,
    audit: Audit,
    now: Now,
) -> TwoFactorState:
    user = await _person(caller, users)
    two_factor.ensure_can_enrol(user)
    current = await factors.totp(user.id)
    pending = two_factor.ensure_enrolling(current.sealed_pending)
    step = totp.matching_step(state.keyring.unseal_text(pending, SEAL_PURPOSE), body.code, now)
    if (
        step is None
        or not two_factor.is_fresh(step, current.last_step)
        or not await factors.enable(user.id, pending, step, now)
    ):
        raise e.InvalidOtp()
    await audit.record(
        caller.actor,
        "two_factor.enabled",
        tenant=None,
        target_type="user",
        target_id=user.id,
        changes={"two_factor": {"before": user.two_factor.value, "after": TwoFactor.TOTP.value}},
    )
    codes = await recovery_codes.issue(work, user.id)
    return TwoFactorState(two_factor=TwoFactor.TOTP, recovery_codes=codes)
