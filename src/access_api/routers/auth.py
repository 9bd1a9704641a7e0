"""Logging in and out."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import Request, status
from pydantic import BaseModel, Field

from access_api.dependencies import (
    SESSION_PREFIX,
    Audit,
    CurrentCaller,
    Now,
    Recorder,
    SecondFactors,
    Sessions,
    State,
    Throttling,
    Users,
    client_ip,
)
from access_api.domain import auth, throttle
from access_api.domain import errors as e
from access_api.domain.audit import Actor, ActorKind
from access_api.domain.users import User, email_key
from access_api.errors import problem_responses
from access_api.ids import new_id
from access_api.repositories.auth import SessionRepository
from access_api.repositories.users import UserRepository
from access_api.routers.common import Body, api_router
from access_api.services.keyring import new_token
from access_api.state import AppState

router = api_router(prefix="/v1/auth", tags=["auth"])

PASSWORD_MAX_LENGTH = 1024  # argon2 hashes any length; a cap keeps a huge body from costing CPU


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


@router.post(
    "/login",
    summary="Log in with email and password (and a two-factor code when asked for one)",
    responses=problem_responses(
        e.InvalidCredentials, e.OtpRequired, e.RateLimited, e.ValidationFailed
    ),
)
async def login(
    body: LoginRequest,
    request: Request,
    state: State,
    users: Users,
    sessions: Sessions,
    second_factor: SecondFactors,
    throttling: Throttling,
    audit: Audit,
    now: Now,
) -> Token:
    account = (throttle.LOGIN_ACCOUNT, email_key(body.email))
    address = (throttle.LOGIN_ADDRESS, client_ip(request) or "unknown")
    await throttling.check(account, address)
    found = await users.by_email(body.email)
    matched = await state.passwords.verify(body.password, found[1] if found else None)
    if found is None or not matched:
        throttling.failed(account, address)
        raise e.InvalidCredentials()
    user, stored = found
    await second_factor.check(user, body.otp, account, address)
    await throttling.succeeded(account)
    if state.passwords.needs_rehash(stored):
        await users.set_password_hash(user.id, await state.passwords.hash(body.password), now)
    return await start_session(user, request, state, sessions, users, audit, now)


async def start_session(
    user: User,
    request: Request,
    state: AppState,
    sessions: SessionRepository,
    users: UserRepository,
    audit: Recorder,
    now: datetime,
) -> Token:
    """A new login session for a user who proved who they are (login, invitation accept)."""
    token = new_token(SESSION_PREFIX)
    session = auth.Session(
        id=new_id(), user_id=user.id, created_at=now, last_seen_at=now, ended_at=None
    )
    await sessions.create(
        session,
        state.keyring.digest(token),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    await users.record_login(user.id, now)
    await audit.record(
        Actor(user_id=user.id, kind=ActorKind.SESSION),
        "session.created",
        tenant=None,
        target_type="session",
        target_id=session.id,
    )
    lifetime = timedelta(hours=state.settings.session_absolute_lifetime_hours)
    return Token(
        access_token=token,
        expires_at=auth.expires_at(session, user.session_timeout_minutes, lifetime),
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the current session",
    responses=problem_responses(e.Unauthenticated, e.Forbidden),
)
async def logout(caller: CurrentCaller, sessions: Sessions, audit: Audit, now: Now) -> None:
    if caller.credential is not ActorKind.SESSION:
        raise e.Forbidden("only a session can log out; revoke an API key instead")
    await sessions.end(caller.credential_id, now)
    await audit.record(
        caller.actor,
        "session.ended",
        tenant=None,
        target_type="session",
        target_id=caller.credential_id,
    )
