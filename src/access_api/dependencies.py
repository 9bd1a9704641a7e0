"""Annotated dependency aliases: the session, the caller, the tenant scope and the repositories."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from access_api import use_cases
from access_api.auth import credentials
from access_api.auth.credentials import SESSION_PREFIX, Authenticated
from access_api.domain import access
from access_api.domain.access import Caller, Scope
from access_api.domain.audit import Actor, AuditEvent, Changes
from access_api.domain.errors import NotFound
from access_api.domain.tenants import Tenant
from access_api.domain.users import User
from access_api.ids import new_id
from access_api.repositories.access import AccessRepository
from access_api.repositories.agents import AgentRepository
from access_api.repositories.api_keys import ApiKeyRepository
from access_api.repositories.audit import AuditRepository
from access_api.repositories.auth import SessionRepository
from access_api.repositories.invitations import InvitationRepository
from access_api.repositories.outbox import OutboxRepository
from access_api.repositories.tenants import TenantRepository
from access_api.repositories.two_factor import TwoFactorRepository
from access_api.repositories.users import UserRepository
from access_api.services.second_factor import SecondFactor
from access_api.services.throttle import Throttle
from access_api.state import AppState

__all__ = ["SESSION_PREFIX"]


async def _state(request: Request) -> AppState:
    state: AppState = request.app.state.access
    return state


async def _session(request: Request) -> AsyncSession:
    session: AsyncSession = request.state.session
    return session


async def _now(state: Annotated[AppState, Depends(_state)]) -> datetime:
    return state.clock.now()


State = Annotated[AppState, Depends(_state)]
Session = Annotated[AsyncSession, Depends(_session)]
Now = Annotated[datetime, Depends(_now)]


R = TypeVar("R")


def _repository(cls: Callable[[AsyncSession], R]) -> Callable[[AsyncSession], Awaitable[R]]:
    # Dependencies are coroutines, even trivial ones: FastAPI runs a plain function in a worker
    # thread, a hop that costs more than the function.
    async def build(session: Session) -> R:
        return cls(session)

    return build


Tenants = Annotated[TenantRepository, Depends(_repository(TenantRepository))]
Access = Annotated[AccessRepository, Depends(_repository(AccessRepository))]
Users = Annotated[UserRepository, Depends(_repository(UserRepository))]
Sessions = Annotated[SessionRepository, Depends(_repository(SessionRepository))]
ApiKeys = Annotated[ApiKeyRepository, Depends(_repository(ApiKeyRepository))]
Agents = Annotated[AgentRepository, Depends(_repository(AgentRepository))]
Outbox = Annotated[OutboxRepository, Depends(_repository(OutboxRepository))]
Invitations = Annotated[InvitationRepository, Depends(_repository(InvitationRepository))]

_bearer = HTTPBearer(
    auto_error=False,
    description="A session token (aas_…), a user API key (aak_…) or an agent token (aag_…)",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def after_commit(request: Request, hook: Callable[[], None]) -> None:
    """Run hook once the request's transaction has committed (e.g. wake the mail dispatcher)."""
    request.state.after_commit.append(hook)


def after_refusal(request: Request, hook: Callable[[], Awaitable[None]]) -> None:
    """Run hook once the request was refused and its transaction rolled back (e.g. count a
    failed attempt, which must outlive the rollback); it opens a transaction of its own."""
    request.state.after_refusal.append(hook)


# --- the unit of work and the caller ------------------------------------------------------


async def _work(request: Request, session: Session, state: State) -> use_cases.Work:
    return use_cases.Work(
        session,
        state,
        now=state.clock.now(),
        request_id=getattr(request.state, "request_id", None),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        after_commit=request.state.after_commit,
        after_refusal=request.state.after_refusal,
    )


Work = Annotated[use_cases.Work, Depends(_work)]
"""The request's unit of work: one per request, shared by every dependency that asks."""


async def _authenticated(request: Request, bearer: Bearer, work: Work) -> Authenticated:
    found = await credentials.authenticate(work, bearer.credentials if bearer else None)
    request.state.caller = found.caller
    return found


Authentication = Annotated[Authenticated, Depends(_authenticated)]


async def _current_caller(found: Authentication) -> Caller:
    return found.caller


CurrentCaller = Annotated[Caller, Depends(_current_caller)]


async def _current_agent(bearer: Bearer, work: Work) -> credentials.ActingAgent:
    return await credentials.acting_agent(work, bearer.credentials if bearer else None)


CurrentAgent = Annotated[credentials.ActingAgent, Depends(_current_agent)]
"""The agent calling its own routes with its token (not a user-facing credential)."""


# --- the tenant scope ---------------------------------------------------------------------

TenantId = Annotated[UUID, Path(description="The tenant in whose context the call is made")]


def requires(permission: str | None) -> Any:
    """A dependency resolving the caller's scope in {tenant_id} and demanding a permission
    (None: none; the use case decides, e.g. everyone manages their own API keys)."""

    async def scope(tenant_id: TenantId, caller: CurrentCaller, work: Work) -> Scope:
        return await work.scope(caller, tenant_id, permission)

    scope.__doc__ = (
        f"Requires `{permission}` in the tenant's context." if permission else "Any standing."
    )
    return Depends(scope)


@dataclass(slots=True)
class TreeLock:
    """Serializes changes to a tree's access. Lock the tree's root row, then judge the caller
    again: a change is applied as the tree is now (admins, grants), and a request that began
    while its caller still had access is not applied once that access is gone."""

    tenants: TenantRepository
    access: AccessRepository
    now: datetime

    async def __call__(self, scope: Scope, permission: str) -> Scope:
        await self.tenants.lock_tree(scope.tenant.root_id)
        facts = await self.access.scope_facts(scope.caller, scope.tenant.id, self.now)
        fresh = access.resolve_scope(scope.caller, facts, self.now)
        access.require(fresh, permission)
        return fresh


async def _tree_lock(tenants: Tenants, repo: Access, now: Now) -> TreeLock:
    return TreeLock(tenants=tenants, access=repo, now=now)


Locked = Annotated[TreeLock, Depends(_tree_lock)]


# --- the people a scope can see and manage ------------------------------------------------


@dataclass(slots=True)
class PeopleFinder:
    """Users as seen from a tenant's context: absent when the context cannot see them."""

    access: AccessRepository
    users: UserRepository
    now: datetime

    async def visible(self, scope: Scope, user_id: UUID) -> User:
        tenant = scope.tenant
        visible = await self.access.visible_from(tenant.id, tenant.root_id, [user_id], self.now)
        user = await self.users.get(user_id) if user_id in visible else None
        if user is None:
            raise NotFound(f"no user {user_id} here")
        return user

    async def manageable(self, scope: Scope, user_id: UUID) -> User:
        """A user whose person (profile, keys, agents, 2FA) the caller may manage from here."""
        user = await self.visible(scope, user_id)
        chains = await self.access.grant_chains(user.id, scope.tenant.root_id, self.now)
        access.ensure_can_manage_person(scope.caller, scope.tenant.id, user.id, chains)
        return user


async def _people(repo: Access, users: Users, now: Now) -> PeopleFinder:
    return PeopleFinder(access=repo, users=users, now=now)


People = Annotated[PeopleFinder, Depends(_people)]


# --- the audit trail ----------------------------------------------------------------------


@dataclass(slots=True)
class Recorder:
    """Writes audit events into the request's transaction, so a change and its record commit
    (or roll back) together."""

    repo: AuditRepository
    request_id: str | None
    ip: str | None
    now: datetime

    async def record(
        self,
        actor: Actor,
        action: str,
        *,
        tenant: Tenant | None,
        target_type: str,
        target_id: UUID | None,
        changes: Changes | None = None,
    ) -> None:
        await self.repo.record(
            [
                AuditEvent(
                    id=new_id(),
                    at=self.now,
                    actor=actor,
                    root_id=tenant.root_id if tenant else None,
                    tenant_id=tenant.id if tenant else None,
                    action=action,
                    target_type=target_type,
                    target_id=target_id,
                    changes=changes or {},
                    request_id=self.request_id,
                    ip=self.ip,
                )
            ]
        )


async def _recorder(request: Request, session: Session, now: Now) -> Recorder:
    return Recorder(
        repo=AuditRepository(session),
        request_id=getattr(request.state, "request_id", None),
        ip=client_ip(request),
        now=now,
    )


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


Audit = Annotated[Recorder, Depends(_recorder)]


# --- throttling failed attempts -----------------------------------------------------------


async def _throttle(request: Request, session: Session, state: State, now: Now) -> Throttle:
    return Throttle(
        session=session,
        database=state.database,
        keyring=state.keyring,
        now=now,
        after_refusal=lambda hook: after_refusal(request, hook),
    )


Throttling = Annotated[Throttle, Depends(_throttle)]


async def _second_factor(
    request: Request, session: Session, state: State, throttling: Throttling, now: Now
) -> SecondFactor:
    return SecondFactor(
        factors=TwoFactorRepository(session),
        throttling=throttling,
        database=state.database,
        keyring=state.keyring,
        dispatcher=state.dispatcher,
        now=now,
        after_refusal=lambda hook: after_refusal(request, hook),
    )


SecondFactors = Annotated[SecondFactor, Depends(_second_factor)]
"""Check buckets before an attempt, count its failure, clear on success (services/throttle)."""
