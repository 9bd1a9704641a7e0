"""Logging in and out."""

from __future__ import annotations

from datetime import datetime

from fastapi import status
from pydantic import BaseModel, Field

from access_api.dependencies import CurrentCaller, Work
from access_api.domain import errors as e
from access_api.domain.users import PASSWORD_MAX_LENGTH
from access_api.errors import problem_responses
from access_api.routers.common import Body, api_router
from access_api.use_cases import auth
from access_api.use_cases.auth import NewSession

router = api_router(prefix="/v1/auth", tags=["auth"])


class LoginRequest(Body):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    otp: str | None = Field(
        default=None, max_length=64, description="A two-factor code, when otp_required"
    )


class Token(BaseModel):
    access_token: str = Field(description="Send as Authorization: Bearer <access_token>")
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    expires_at: datetime = Field(
        description="When the session ends if left idle; each use extends it, up to the "
        "session's absolute lifetime"
    )

    @classmethod
    def of(cls, started: NewSession) -> Token:
        return cls(access_token=started.token, expires_at=started.expires_at)


@router.post(
    "/login",
    summary="Log in with email and password (and a two-factor code when asked for one)",
    responses=problem_responses(
        e.InvalidCredentials, e.OtpRequired, e.RateLimited, e.SsoRequired, e.ValidationFailed
    ),
)
async def login(body: LoginRequest, work: Work) -> Token:
    return Token.of(await auth.login(work, body.email, body.password, body.otp))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the current session",
    responses=problem_responses(e.Unauthenticated, e.Forbidden),
)
async def logout(caller: CurrentCaller, work: Work) -> None:
    await auth.logout(work, caller)
