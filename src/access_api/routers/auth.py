"""Logging in and out."""

from __future__ import annotations

from typing import Any

from fastapi import status
from pydantic import Field

from access_api.dependencies import CurrentCaller, Work
from access_api.domain import errors as e
from access_api.domain.users import PASSWORD_MAX_LENGTH
from access_api.errors import problem_responses
from access_api.routers.common import Body, Token, api_router
from access_api.use_cases import auth

router = api_router(prefix="/v1/auth", tags=["auth"])


class LoginRequest(Body):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    otp: str | None = Field(
        default=None,
        max_length=64,
        description="A two-factor code (or a recovery code), when otp_required",
    )
    webauthn: dict[str, Any] | None = Field(
        default=None,
        description="A passkey's assertion (PublicKeyCredential as JSON) answering the "
        "challenge of the otp_required answer",
    )


@router.post(
    "/login",
    summary="Log in with email and password (and a two-factor code when asked for one)",
    responses=problem_responses(
        e.InvalidCredentials, e.OtpRequired, e.RateLimited, e.ValidationFailed
    ),
)
async def login(body: LoginRequest, work: Work) -> Token:
    return Token.of(await auth.login(work, body.email, body.password, body.otp, body.webauthn))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the current session",
    responses=problem_responses(e.Unauthenticated, e.Forbidden),
)
async def logout(caller: CurrentCaller, work: Work) -> None:
    await auth.logout(work, caller)
