"""Logging in and out, and starting the session that every way of proving oneself ends in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from access_api.auth.credentials import SESSION_PREFIX
from access_api.domain import auth, policies, throttle
from access_api.domain import errors as e
from access_api.domain.access import Caller
from access_api.domain.audit import Action, Actor, ActorKind
from access_api.domain.users import User, email_key
from access_api.ids import new_id
from access_api.services.keyring import new_token
from access_api.use_cases.work import Work


@dataclass(frozen=True, slots=True, kw_only=True)
class NewSession:
    """A session just started: its token is shown once, here."""

    id: UUID
    user: User
    token: str
    expires_at: datetime


async def login(
    work: Work,
    email: str,
    password: str,
    otp: str | None,
    webauthn: dict[str, Any] | None = None,
) -> NewSession:
    """Password, then the second factor if the user has one (a code, a recovery code or a
    passkey's assertion); every failure counts against the account and the address, and reads
    the same whether or not the email exists."""
    account = (throttle.LOGIN_ACCOUNT, email_key(email))
    address = (throttle.LOGIN_ADDRESS, work.ip or "unknown")
    await work.throttle.check(account, address)
    found = await work.users.by_email(email)
    matched = await work.passwords.verify(password, found[1] if found else None)
    if found is None or not matched:
        work.throttle.failed(account, address)
        raise e.InvalidCredentials()
    user, stored = found
    method = await work.second_factor.check(user, otp, account, address, assertion=webauthn)
    await work.throttle.succeeded(account)
    if method == "recovery_code":
        actor = Actor(user_id=user.id, kind=ActorKind.SESSION)
        await work.record(actor, Action.RECOVERY_CODE_USED, tenant=None, target_id=user.id)
    if work.passwords.needs_rehash(stored):
        await work.users.set_password_hash(user.id, await work.passwords.hash(password), work.now)
    return await start_session(work, user)


async def start_session(work: Work, user: User) -> NewSession:
    """A new login session for a user who proved who they are (login, invitation accept)."""
    token = new_token(SESSION_PREFIX)
    session = auth.Session(
        id=new_id(), user_id=user.id, created_at=work.now, last_seen_at=work.now, ended_at=None
    )
    await work.sessions.create(
        session, work.keyring.digest(token), ip=work.ip, user_agent=work.user_agent
    )
    await work.users.record_login(user.id, work.now)
    await work.record(
        Actor(user_id=user.id, kind=ActorKind.SESSION),
        Action.SESSION_CREATED,
        tenant=None,
        target_id=session.id,
    )
    lifetime = timedelta(hours=work.settings.session_absolute_lifetime_hours)
    cap = await work.policies.timeout_cap(user.id)
    timeout = policies.session_timeout(user.session_timeout_minutes, cap)
    return NewSession(
        id=session.id,
        user=user,
        token=token,
        expires_at=auth.expires_at(session, timeout, lifetime),
    )


async def logout(work: Work, caller: Caller) -> None:
    """End the caller's session; other credentials are revoked, not logged out."""
    if caller.credential is not ActorKind.SESSION:
        raise e.Forbidden("only a session can log out; revoke an API key instead")
    await work.sessions.end(caller.credential_id, work.now)
    await work.record(
        caller.actor, Action.SESSION_ENDED, tenant=None, target_id=caller.credential_id
    )
