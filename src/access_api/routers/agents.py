"""Agents (seed 004): provision, reregister, deregister, reprovision; and the agent's heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Path, status
from pydantic import BaseModel, Field

from access_api.dependencies import CurrentAgent, Work, requires
from access_api.domain import agents as agent_rules
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.agents import Agent, AgentStatus
from access_api.domain.permissions import Permission
from access_api.errors import problem_responses
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
from access_api.use_cases import agents
from access_api.use_cases.agents import AgentWithToken as NewToken
from access_api.use_cases.agents import Beat

router = api_router(prefix="/v1/tenants", tags=["agents"], responses=SCOPED_PROBLEMS)
agent_router = api_router(prefix="/v1/agent", tags=["agents"])

UserId = Annotated[UUID, Path(description="The user the agents act for")]
AgentId = Annotated[UUID, Path(description="One of the user's agents")]
ManageAgents = Annotated[Scope, requires(Permission.AGENTS_MANAGE)]
AgentSort = Literal["created_at", "-created_at", "name", "-name"]
PERSON_PROBLEMS = (e.UserOutsideScope, e.NotFound)


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

    @classmethod
    def of_new(cls, made: NewToken) -> AgentWithToken:
        return cls(**AgentOut.of(made.agent).model_dump(), token=made.token)


class AgentCreate(Body):
    name: str = Field(min_length=1, max_length=agent_rules.NAME_MAX_LENGTH)
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

    @classmethod
    def of(cls, beat: Beat) -> Heartbeat:
        agent = beat.agent
        return cls(
            agent_id=agent.id,
            status=agent.status,
            tenant_id=agent.tenant_id,
            user_id=agent.user_id,
            last_seen_at=beat.seen_at,
        )


# --- routes ----------------------------------------------------------------------------------


@router.get(
    "/{tenant_id}/users/{user_id}/agents",
    summary="List a user's agents provisioned in this account or below",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def list_agents(
    user_id: UserId,
    scope: ManageAgents,
    work: Work,
    sort: AgentSort = "created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[AgentOut]:
    field, descending = split_sort(sort)
    after = work.state.cursors.decode(cursor, sort)
    page = await agents.list_for(
        work, scope, user_id, sort=field, descending=descending, after=after, limit=limit
    )
    return page_of(page, AgentOut.of, work.state.cursors, sort)


@router.post(
    "/{tenant_id}/users/{user_id}/agents",
    status_code=status.HTTP_201_CREATED,
    summary="Provision an agent for a user in this account (the token is shown once)",
    responses=problem_responses(*PERSON_PROBLEMS, e.AgentUserWithoutAccess),
)
async def provision_agent(
    body: AgentCreate, user_id: UserId, scope: ManageAgents, work: Work
) -> AgentWithToken:
    made = await agents.provision(work, scope, user_id, name=body.name, tenant_id=body.tenant_id)
    return AgentWithToken.of_new(made)


@router.post(
    "/{tenant_id}/users/{user_id}/agents/{agent_id}/reregister",
    summary="Register the agent again, with a new token (the old one stops working)",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def reregister_agent(
    user_id: UserId, agent_id: AgentId, scope: ManageAgents, work: Work
) -> AgentWithToken:
    return AgentWithToken.of_new(await agents.reregister(work, scope, user_id, agent_id))


@router.post(
    "/{tenant_id}/users/{user_id}/agents/{agent_id}/deregister",
    summary="Deregister the agent: its token stops working at once (again: no change)",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def deregister_agent(
    user_id: UserId, agent_id: AgentId, scope: ManageAgents, work: Work
) -> AgentOut:
    return AgentOut.of(await agents.deregister(work, scope, user_id, agent_id))


@router.post(
    "/{tenant_id}/users/{user_id}/agents/{agent_id}/reprovision",
    summary="Give a registered agent a new token (the old one stops working)",
    responses=problem_responses(*PERSON_PROBLEMS, e.AgentDeregistered),
)
async def reprovision_agent(
    user_id: UserId, agent_id: AgentId, scope: ManageAgents, work: Work
) -> AgentWithToken:
    return AgentWithToken.of_new(await agents.reprovision(work, scope, user_id, agent_id))


@agent_router.post(
    "/heartbeat",
    summary="An agent's sign of life, made with its own token",
    responses=problem_responses(
        e.Unauthenticated, e.TenantDisabled, e.TwoFactorRequired, e.IpNotAllowed
    ),
)
async def heartbeat(current: CurrentAgent, work: Work) -> Heartbeat:
    return Heartbeat.of(await agents.heartbeat(work, current.agent))
