"""Every kind of bearer credential the service accepts, told apart by its prefix.

The table at the bottom is the whole list: a new credential kind (SCIM tokens, say) is added
there, not registered as a side effect of importing a router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from access_api.domain import agents, api_keys, auth, policies
from access_api.domain import errors as e
from access_api.domain.access import Caller, Scope, ScopeFacts
from access_api.domain.agents import Agent
from access_api.domain.api_keys import ApiKey
from access_api.domain.audit import ActorKind
from access_api.domain.auth import Session
from access_api.domain.users import User
from access_api.use_cases.work import Work

SESSION_PREFIX = "aas"


@dataclass(frozen=True, slots=True, kw_only=True)
class Authenticated:
    """A caller, and when the credential they used stops working (None: it does not expire)."""

    caller: Caller
    expires_at: datetime | None


Resolver = Callable[[Work, str], Awaitable[Authenticated]]


async def session(work: Work, token: str) -> Authenticated:
    """A login session, while it is neither idle past the user's timeout nor too old."""
    found = await work.sessions.resolve(work.keyring.digest(token))
    if found is None:
        raise e.Unauthenticated("unknown or ended session")
    login, user = found
    return await session_of(work, login, user)


async def session_of(work: Work, login: Session, user: User) -> Authenticated:
    """A session found by its digest, while it is neither idle past its timeout nor too old
    (its last use recorded at most once a minute)."""
    timeout = policies.session_timeout(user.session_timeout_minutes, login.timeout_cap_minutes)
    lifetime = timedelta(hours=work.settings.session_absolute_lifetime_hours)
    if not auth.is_active(login, timeout, lifetime, work.now):
        raise e.Unauthenticated("this session has ended; log in again")
    if auth.should_touch(login, timeout, work.now):
        await work.stamp(lambda w: w.sessions.touch(login.id, work.now))
        login = replace(login, last_seen_at=work.now)
    return Authenticated(
        caller=Caller(
            user_id=user.id,
            email=user.email,
            credential=ActorKind.SESSION,
            credential_id=login.id,
            ip=work.ip,
        ),
        expires_at=auth.expires_at(login, timeout, lifetime),
    )


async def api_key(work: Work, token: str) -> Authenticated:
    """A key acts as its user, with that user's current roles, in the tree it was made in."""
    found = await work.api_keys.resolve(work.keyring.digest(token))
    key, email, member = found or (None, "", False)
    return await api_key_of(work, key, email, member=member)


async def api_key_of(work: Work, key: ApiKey | None, email: str, *, member: bool) -> Authenticated:
    """A key found by its digest (None: unknown), while usable; its last use is recorded at
    most once a minute."""
    key = api_keys.check_usable(key, member=member, now=work.now)
    if api_keys.should_touch(key, work.now):
        await work.stamp(lambda w: w.api_keys.touch(key.id, work.now))
    return Authenticated(
        caller=Caller(
            user_id=key.user_id,
            email=email,
            credential=ActorKind.API_KEY,
            credential_id=key.id,
            root_id=key.root_id,
            permission_limit=key.permissions,
            tenant_limit=key.tenant_ids,
            ip=work.ip,
        ),
        expires_at=key.expires_at,
    )


async def active_agent(work: Work, token: str) -> tuple[Agent, str]:
    """The registered agent behind a token, and its user's email."""
    found = await work.agents.resolve(work.keyring.digest(token))
    agent, email = found or (None, "")
    return agents.check_active(agent), email


@dataclass(frozen=True, slots=True, kw_only=True)
class ActingAgent:
    """A registered agent on its own routes, acting as its user in its account."""

    agent: Agent
    scope: Scope


async def acting_agent(work: Work, token: str | None) -> ActingAgent:
    """The agent behind a token on the agent's own routes (/v1/agent/…), while its user still
    reaches the agent's account."""
    if token is None or not token.startswith(f"{agents.PREFIX}_"):
        raise e.Unauthenticated("send this agent's token as Authorization: Bearer aag_…")
    agent, email = await active_agent(work, token)
    caller = Caller(
        user_id=agent.user_id,
        email=email,
        credential=ActorKind.AGENT,
        credential_id=agent.id,
        root_id=agent.root_id,
        ip=work.ip,
    )
    facts = await work.grants.scope_facts(caller, agent.tenant_id, work.now)
    return ActingAgent(agent=agent, scope=agents.agent_scope(caller, facts, work.now))


async def agent_elsewhere(work: Work, token: str) -> Authenticated:
    """An agent token is known here, but it only serves the agent's own routes."""
    await active_agent(work, token)
    raise e.Forbidden("an agent token only serves /v1/agent/ routes")


CREDENTIALS: dict[str, Resolver] = {
    SESSION_PREFIX: session,
    api_keys.PREFIX: api_key,
    agents.PREFIX: agent_elsewhere,
}
"""Bearer token prefix -> how it becomes a caller on the user-facing routes."""


def kind_of(token: str | None) -> tuple[str, str]:
    """A credential the service knows, with its prefix (401 otherwise)."""
    if token is None:
        raise e.Unauthenticated("send a credential as Authorization: Bearer <token>")
    prefix = token.split("_", 1)[0]
    if prefix not in CREDENTIALS:
        raise e.Unauthenticated("unrecognized credential")
    return prefix, token


async def authenticate(work: Work, token: str | None) -> Authenticated:
    prefix, known = kind_of(token)
    return await CREDENTIALS[prefix](work, known)


async def in_tenant(
    work: Work, token: str | None, tenant_id: UUID, permission: str | None
) -> Scope:
    """The caller behind a credential acting in a tenant's context: the credential and the
    scope's facts are read in one statement (a key scoped to some tenants needs one more)."""
    prefix, known = kind_of(token)
    digest = work.keyring.digest(known)
    if prefix == SESSION_PREFIX:
        login = await work.scoped.by_session(digest, tenant_id, work.now)
        if login is None:
            raise e.Unauthenticated("unknown or ended session")
        found = await session_of(work, login.session, login.user)
        facts = login.facts
    elif prefix == api_keys.PREFIX:
        key = await work.scoped.by_api_key(digest, tenant_id, work.now)
        if key is None:
            found = await api_key_of(work, None, "", member=False)
        else:
            found = await api_key_of(work, key.key, key.email, member=key.member)
        facts = key.facts if key else ScopeFacts(tenant=None)
    else:
        found = await CREDENTIALS[prefix](work, known)
        facts = await work.grants.scope_facts(found.caller, tenant_id, work.now)
    return await work.judge(found.caller, tenant_id, facts, permission)
