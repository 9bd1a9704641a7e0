"""Agents (seed 004): provision, reregister, deregister, reprovision; and the agent's heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Path, status
from pydantic import BaseModel, Field

from access_api.auth.credentials import active_agent
from access_api.dependencies import (
    Access,
    Agents,
    Audit,
    Bearer,
    Now,
    People,
    Recorder,
    State,
    Tenants,
    Work,
    requires,
)
from access_api.domain import agents
from access_api.domain import errors as e
from access_api.domain.access import Caller, Scope
from access_api.domain.agents import Agent, AgentStatus
from access_api.domain.audit import ActorKind, created
from access_api.domain.permissions import Permission
from access_api.errors import problem_responses
from access_api.ids import new_id
from access_api.repositories.agents import AgentRepository
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
    split_sort,
)
from access_api.services.keyring import new_token
from access_api.state import AppState

router = api_router(prefix="/v1/tenants", tags=["agents"], responses=SCOPED_PROBLEMS)
agent_router = api_router(prefix="/v1/agent", tags=["agents"])

UserId = Annotated[UUID, Path(description="The user the agents act for")]
AgentId = Annotated[UUID, Path(description="One of the user's agents")]
ManageAgents = Annotated[Scope, requires(Permission.AGENTS_MANAGE)]
AgentSort = Literal["created_at", "-created_at", "name", "-name"]
PERSON_PROBLEMS = (e.UserOutsideScope, e.NotFound)
CREATED_FIELDS = ("user_id", "tenant_id", "name", "status")


# --- agent tokens as credentials ------------------------------------------------------------


async def _current_agent(
    credentials: Bearer, work: Work, grants: Access, now: Now
) -> tuple[Agent, Scope]:
    """The agent behind the token, while its user still reaches the agent's account."""
    if credentials is None or not credentials.credentials.startswith(f"{agents.PREFIX}_"):
        raise e.Unauthenticated("send this agent's token as Authorization: Bearer aag_…")
    agent, email = await active_agent(work, credentials.credentials)
    caller = Caller(
        user_id=agent.user_id,
        email=email,
        credential=ActorKind.AGENT,
        credential_id=agent.id,
        root_id=agent.root_id,
        ip=work.ip,
    )
    facts = await grants.scope_facts(caller, agent.tenant_id, now)
    return agent, agents.agent_scope(caller, facts, now)


CurrentAgent = Annotated[tuple[Agent, Scope], Depends(_current_agent)]


# --- bodies and answers ----------------------------------------------------------------------


class AgentOut(BaseModel):
    id: UUID
    user_id: UUID
    tenant_id: UUID = Field(description="The account the agent was provisioned in")
    name: str
    status: AgentStatus
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None = Field(description="The agent's last heartbeat")
    token_issued_at: datetime | None = Field(description="None while deregistered")

    @classmethod
    def of(cls, agent: Agent) -> AgentOut:
        return cls(
            id=agent.id,
            user_id=agent.user_id,
            tenant_id=agent.tenant_id,
            name=agent.name,
            status=agent.status,
            created_at=agent.created_at,
            updated_at=agent.updated_at,
            last_seen_at=agent.last_seen_at,
            token_issued_at=agent.token_issued_at,
        )


class AgentWithToken(AgentOut):
    token: str = Field(
        description="The agent's token, shown this once: configure the agent with it"
    )


class AgentCreate(Body):
    name: str = Field(min_length=1, max_length=agents.NAME_MAX_LENGTH)
    tenant_id: UUID | None = Field(
        default=None,
        description="The account the agent works in: this one (the default) or one below it. "
        "The agent works while its user reaches that account.",
    )


class Heartbeat(BaseModel):
    agent_id: UUID
    status: AgentStatus
    tenant_id: UUID
    user_id: UUID
    last_seen_at: datetime


# --- routes ----------------------------------------------------------------------------------


@router.get(
    "/{tenant_id}/users/{user_id}/agents",
    summary="List a user's agents provisioned in this account or below",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def list_agents(
    user_id: UserId,
    scope: ManageAgents,
    people: People,
    repo: Agents,
    state: State,
    sort: AgentSort = "created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[AgentOut]:
    user = await people.manageable(scope, user_id)
    field, descending = split_sort(sort)
    page = await repo.list_for(
        user.id,
        scope.tenant.id,
        sort=field,
        descending=descending,
        after=state.cursors.decode(cursor, sort),
        limit=limit,
    )
    return page_of(page, AgentOut.of, state.cursors, sort)


@router.post(
    "/{tenant_id}/users/{user_id}/agents",
    status_code=status.HTTP_201_CREATED,
    summary="Provision an agent for a user in this account (the token is shown once)",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def provision_agent(
    body: AgentCreate,
    user_id: UserId,
    scope: ManageAgents,
    people: People,
    repo: Agents,
    tenants: Tenants,
    state: State,
    audit: Audit,
    now: Now,
) -> AgentWithToken:
    user = await people.manageable(scope, user_id)
    tenant_id = body.tenant_id or scope.tenant.id
    agent = agents.provision(
        id=new_id(),
        root_id=scope.tenant.root_id,
        tenant_id=tenant_id,
        reachable=await tenants.at_or_below(scope.tenant.id, [tenant_id]),
        user_id=user.id,
        name=body.name,
        created_by=scope.caller.user_id,
        now=now,
    )
    token = new_token(agents.PREFIX)
    await repo.insert(agent, state.keyring.digest(token))
    await audit.record(
        scope.caller.actor,
        "agent.provisioned",
        tenant=scope.tenant,
        target_type="agent",
        target_id=agent.id,
        changes=created(agent, CREATED_FIELDS),
    )
    return AgentWithToken(**AgentOut.of(agent).model_dump(), token=token)


async def _agent(
    repo: AgentRepository, scope: Scope, people: People, user_id: UUID, agent_id: UUID
) -> Agent:
    """One of the user's agents at or below this account, locked for its transition, or 404."""
    user = await people.manageable(scope, user_id)
    agent = await repo.get(agent_id, user.id, scope.tenant.id, for_update=True)
    if agent is None:
        raise e.NotFound("no such agent")
    return agent


async def _record(audit: Audit, scope: Scope, before: Agent, after: Agent, action: str) -> None:
    await audit.record(
        scope.caller.actor,
        action,
        tenant=scope.tenant,
        target_type="agent",
        target_id=after.id,
        changes=agents.status_changes(before, after),
    )


async def _with_new_token(
    before: Agent,
    after: Agent,
    action: str,
    scope: Scope,
    repo: AgentRepository,
    state: AppState,
    audit: Recorder,
) -> AgentWithToken:
    """Store a fresh token's digest (the old token dies with it) and show the token once."""
    token = new_token(agents.PREFIX)
    await repo.update(after, state.keyring.digest(token))
    await _record(audit, scope, before, after, action)
    return AgentWithToken(**AgentOut.of(after).model_dump(), token=token)


@router.post(
    "/{tenant_id}/users/{user_id}/agents/{agent_id}/reregister",
    summary="Register the agent again, with a new token (the old one stops working)",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def reregister_agent(
    user_id: UserId,
    agent_id: AgentId,
    scope: ManageAgents,
    people: People,
    repo: Agents,
    state: State,
    audit: Audit,
    now: Now,
) -> AgentWithToken:
    before = await _agent(repo, scope, people, user_id, agent_id)
    after = agents.reregister(before, now)
    return await _with_new_token(before, after, "agent.reregistered", scope, repo, state, audit)


@router.post(
    "/{tenant_id}/users/{user_id}/agents/{agent_id}/deregister",
    summary="Deregister the agent: its token stops working at once (again: no change)",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def deregister_agent(
    user_id: UserId,
    agent_id: AgentId,
    scope: ManageAgents,
    people: People,
    repo: Agents,
    audit: Audit,
    now: Now,
) -> AgentOut:
    before = await _agent(repo, scope, people, user_id, agent_id)
    after = agents.deregister(before, now)
    if after != before:
        await repo.update(after, None)
        await _record(audit, scope, before, after, "agent.deregistered")
    return AgentOut.of(after)


@router.post(
    "/{tenant_id}/users/{user_id}/agents/{agent_id}/reprovision",
    summary="Give a registered agent a new token (the old one stops working)",
    responses=problem_responses(*PERSON_PROBLEMS, e.AgentDeregistered),
)
async def reprovision_agent(
    user_id: UserId,
    agent_id: AgentId,
    scope: ManageAgents,
    people: People,
    repo: Agents,
    state: State,
    audit: Audit,
    now: Now,
) -> AgentWithToken:
    before = await _agent(repo, scope, people, user_id, agent_id)
    after = agents.reprovision(before, now)
    return await _with_new_token(before, after, "agent.reprovisioned", scope, repo, state, audit)


@agent_router.post(
    "/heartbeat",
    summary="An agent's sign of life, made with its own token",
    responses=problem_responses(
        e.Unauthenticated, e.TenantDisabled, e.TwoFactorRequired, e.IpNotAllowed
    ),
)
async def heartbeat(current: CurrentAgent, repo: Agents, now: Now) -> Heartbeat:
    agent, _ = current
    await repo.seen(agent.id, now)
    return Heartbeat(
        agent_id=agent.id,
        status=agent.status,
        tenant_id=agent.tenant_id,
        user_id=agent.user_id,
        last_seen_at=now,
    )
