"""Agents: provision, reregister, deregister, reprovision; and the agent's own heartbeat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from access_api.domain import agents
from access_api.domain import errors as e
from access_api.domain.access import Caller, Scope
from access_api.domain.agents import Agent
from access_api.domain.audit import Action, ActorKind, created
from access_api.ids import new_id
from access_api.pagination import After, Page
from access_api.services.keyring import new_token
from access_api.use_cases.work import Work

CREATED_FIELDS = ("user_id", "tenant_id", "name", "status")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentWithToken:
    """An agent and its new token, which is shown this once."""

    agent: Agent
    token: str


async def list_for(
    work: Work,
    scope: Scope,
    user_id: UUID,
    *,
    sort: str,
    descending: bool,
    after: After | None,
    limit: int,
) -> Page[Agent]:
    """A user's agents provisioned in this account or below it."""
    user = await work.manageable_user(scope, user_id)
    return await work.agents.list_for(
        user.id, scope.tenant.id, sort=sort, descending=descending, after=after, limit=limit
    )


async def provision(
    work: Work, scope: Scope, user_id: UUID, *, name: str, tenant_id: UUID | None
) -> AgentWithToken:
    """A new agent for a user, in this account (by default) or one below it."""
    user = await work.manageable_user(scope, user_id)
    where = tenant_id or scope.tenant.id
    agent = agents.provision(
        id=new_id(),
        root_id=scope.tenant.root_id,
        tenant_id=where,
        reachable=await work.tenants.at_or_below(scope.tenant.id, [where]),
        user_id=user.id,
        name=name,
        created_by=scope.caller.user_id,
        now=work.now,
    )
    as_agent = Caller(
        user_id=user.id,
        email=user.email,
        credential=ActorKind.AGENT,
        credential_id=agent.id,
        root_id=agent.root_id,
    )
    agents.ensure_user_reaches(
        await work.grants.scope_facts(as_agent, agent.tenant_id, work.now), work.now
    )
    token = new_token(agents.PREFIX)
    await work.agents.insert(agent, work.keyring.digest(token))
    await work.record(
        scope.caller.actor,
        Action.AGENT_PROVISIONED,
        tenant=scope.tenant,
        target_id=agent.id,
        changes=created(agent, CREATED_FIELDS),
    )
    return AgentWithToken(agent=agent, token=token)


async def _agent(work: Work, scope: Scope, user_id: UUID, agent_id: UUID) -> Agent:
    """One of the user's agents at or below this account, locked for its transition, or 404."""
    user = await work.manageable_user(scope, user_id)
    agent = await work.agents.get(agent_id, user.id, scope.tenant.id, for_update=True)
    if agent is None:
        raise e.NotFound("no such agent")
    return agent


async def _record(work: Work, scope: Scope, before: Agent, after: Agent, action: Action) -> None:
    await work.record(
        scope.caller.actor,
        action,
        tenant=scope.tenant,
        target_id=after.id,
        changes=agents.status_changes(before, after),
    )


async def _with_new_token(
    work: Work, scope: Scope, before: Agent, after: Agent, action: Action
) -> AgentWithToken:
    """Store a fresh token's digest (the old token dies with it) and show the token once."""
    token = new_token(agents.PREFIX)
    await work.agents.update(after, work.keyring.digest(token))
    await _record(work, scope, before, after, action)
    return AgentWithToken(agent=after, token=token)


async def reregister(work: Work, scope: Scope, user_id: UUID, agent_id: UUID) -> AgentWithToken:
    before = await _agent(work, scope, user_id, agent_id)
    after = agents.reregister(before, work.now)
    return await _with_new_token(work, scope, before, after, Action.AGENT_REREGISTERED)


async def deregister(work: Work, scope: Scope, user_id: UUID, agent_id: UUID) -> Agent:
    """The token dies at once; deregistering again changes (and records) nothing."""
    before = await _agent(work, scope, user_id, agent_id)
    after = agents.deregister(before, work.now)
    if after != before:
        await work.agents.update(after, None)
        await _record(work, scope, before, after, Action.AGENT_DEREGISTERED)
    return after


async def reprovision(work: Work, scope: Scope, user_id: UUID, agent_id: UUID) -> AgentWithToken:
    before = await _agent(work, scope, user_id, agent_id)
    after = agents.reprovision(before, work.now)
    return await _with_new_token(work, scope, before, after, Action.AGENT_REPROVISIONED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Beat:
    agent: Agent
    seen_at: datetime


async def heartbeat(work: Work, agent: Agent) -> Beat:
    """The agent's sign of life: it was seen now."""
    await work.agents.seen(agent.id, work.now)
    return Beat(agent=agent, seen_at=work.now)
