"""The caller's own two-factor authentication: TOTP enrolment and its first code."""

from __future__ import annotations

from pydantic import BaseModel, Field

from access_api.dependencies import CurrentCaller, Work
from access_api.domain import errors as e
from access_api.domain.users import TwoFactor
from access_api.errors import problem_responses
from access_api.routers.common import AUTHENTICATED_PROBLEMS, Body, api_router
from access_api.services import totp
from access_api.use_cases import two_factor
from access_api.use_cases.two_factor import Enrolment

router = api_router(prefix="/v1/me/two-factor", tags=["me"], responses=AUTHENTICATED_PROBLEMS)


class TotpEnrolment(BaseModel):
    secret: str = Field(description="Base32 secret, for typing into an authenticator app")
    otpauth_uri: str = Field(description="The same secret as an otpauth:// URI")
    qr_svg: str = Field(description="The URI as an SVG QR code, to scan")

    @classmethod
    def of(cls, enrolment: Enrolment) -> TotpEnrolment:
        uri = enrolment.otpauth_uri
        return cls(secret=enrolment.secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))


class TotpCode(Body):
    code: str = Field(min_length=6, max_length=10, description="The code the app shows now")


class TwoFactorState(BaseModel):
    two_factor: TwoFactor
    recovery_codes: list[str] | None = Field(
        default=None, description="Ten single-use codes for when the phone is lost: shown once"
    )


@router.post(
    "/totp",
    summary="Start TOTP enrolment: a new secret, enabled once a first code proves it",
    responses=problem_responses(e.Forbidden, e.TwoFactorEnabled),
)
async def enrol_totp(caller: CurrentCaller, work: Work) -> TotpEnrolment:
    return TotpEnrolment.of(await two_factor.enrol_totp(work, caller))


@router.post(
    "/totp/verify",
    summary="Confirm TOTP enrolment with the code the app shows; two-factor is then on",
    responses=problem_responses(e.Forbidden, e.TwoFactorEnabled, e.TotpNotEnrolling, e.InvalidOtp),
)
async def verify_totp(body: TotpCode, caller: CurrentCaller, work: Work) -> TwoFactorState:
    enabled = await two_factor.verify_totp(work, caller, body.code)
    return TwoFactorState(two_factor=enabled.two_factor, recovery_codes=enabled.recovery_codes)
