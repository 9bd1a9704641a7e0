"""Logging in and out, and starting the session that every way of proving oneself ends in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from access_api.auth.credentials import SESSION_PREFIX
from access_api.domain import auth, policies, sso, throttle
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
    account_key, address_key = work.throttle.key(*account), work.throttle.key(*address)
    # Read apart from the request's transaction, which begins only after the hash: nothing
    # is held while the hash runs or waits for a thread, so a login storm neither drains the
    # pool nor, on SQLite, keeps every other write waiting for the lock.
    facts = await work.read_apart(
        lambda apart: apart.logins.facts(
            email_key=account[1],
            domain=sso.email_domain(email),
            account_key=account_key,
            address_key=address_key,
        )
    )
    work.throttle.ensure_open(facts.buckets, (account_key, address_key))
    sso.ensure_not_enforced(facts.sso_enforced)
    matched = await work.passwords.verify(password, facts.password_hash)
    if facts.user is None or facts.password_hash is None or not matched:
        work.throttle.failed(account, address)
        raise e.InvalidCredentials()
    user, stored = facts.user, facts.password_hash
    method = await work.second_factor.check(
        user, otp, account, address, assertion=webauthn, has_passkeys=facts.has_passkeys
    )
    if method == "recovery_code":
        actor = Actor(user_id=user.id, kind=ActorKind.SESSION)
        await work.record(actor, Action.RECOVERY_CODE_USED, tenant=None, target_id=user.id)
    if work.passwords.needs_rehash(stored):
        # Unless the password was changed meanwhile: the new one is kept.
        await work.users.set_password_hash(
            user.id, await work.passwords.hash(password), work.now, replacing=stored
        )
    # A successful login forgets the account's failures as it starts the session.
    return await _open_session(work, user, facts.timeout_cap_minutes, forget=[account_key])


async def start_session(work: Work, user: User) -> NewSession:
    """A new login session for a user who proved who they are (login, invitation accept)."""
    return await _open_session(work, user, await work.policies.timeout_cap(user.id))


async def _open_session(
    work: Work, user: User, cap: int | None, forget: Sequence[str] = ()
) -> NewSession:
    token = new_token(SESSION_PREFIX)
    session = auth.Session(
        id=new_id(), user_id=user.id, created_at=work.now, last_seen_at=work.now, ended_at=None
    )
    created = work.event(
        Actor(user_id=user.id, kind=ActorKind.SESSION),
        Action.SESSION_CREATED,
        tenant=None,
        target_id=session.id,
    )
    digest = work.keyring.digest(token)
    await work.one_statement(
        lambda done: done.sessions.open(
            session,
            digest,
            ip=work.ip,
            user_agent=work.user_agent,
            forget=forget,
            event=created,
        )
    )
    await work.record_events([created], written=True)
    lifetime = timedelta(hours=work.settings.session_absolute_lifetime_hours)
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
