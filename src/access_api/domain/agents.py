"""Agents (seed 004): on-premise programs provisioned for a user in a tenant, with a token."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from access_api.domain.access import Caller, Scope, ScopeFacts, resolve_scope, standing
from access_api.domain.audit import Changes
from access_api.domain.errors import (
    AgentDeregistered,
    AgentUserWithoutAccess,
    FieldError,
    NoAccess,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)

PREFIX = "aag"
NAME_MAX_LENGTH = 100


class AgentStatus(StrEnum):
    REGISTERED = "registered"
    DEREGISTERED = "deregistered"


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    id: UUID
    root_id: UUID
    tenant_id: UUID
    user_id: UUID
    name: str
    status: AgentStatus
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None
    token_issued_at: datetime | None


def check_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > NAME_MAX_LENGTH:
        raise ValidationFailed(
            [FieldError("name", "invalid_name", f"must be 1-{NAME_MAX_LENGTH} characters")]
        )
    return clean


def provision(
    *,
    id: UUID,
    root_id: UUID,
    tenant_id: UUID,
    reachable: Collection[UUID],
    user_id: UUID,
    name: str,
    created_by: UUID,
    now: datetime,
) -> Agent:
    """A new agent is registered, with a token issued now (shown once). It works in the
    context's account or one below it (reachable): an MSP provisions an agent in a client for
    a technician whose access spans several clients."""
    if tenant_id not in reachable:
        raise NotFound(f"no account {tenant_id} here")
    return Agent(
        id=id,
        root_id=root_id,
        tenant_id=tenant_id,
        user_id=user_id,
        name=check_name(name),
        status=AgentStatus.REGISTERED,
        created_by=created_by,
        created_at=now,
        updated_at=now,
        last_seen_at=None,
        token_issued_at=now,
    )


def ensure_user_reaches(facts: ScopeFacts, now: datetime) -> None:
    """An agent acts as its user in its account: a user with no access there would get a
    token that never works, so the agent is refused at provisioning instead."""
    if (
        facts.tenant is None
        or not facts.member
        or not standing(facts.held, facts.roles, now).reached
    ):
        raise AgentUserWithoutAccess()


def reregister(agent: Agent, now: datetime) -> Agent:
    """Back to registered with a new token, whatever the status was: the caller asked for a
    working agent, and on a registered one that is what reprovisioning gives too."""
    return replace(agent, status=AgentStatus.REGISTERED, updated_at=now, token_issued_at=now)


def deregister(agent: Agent, now: datetime) -> Agent:
    """Deregistered, token dead. Deregistering a deregistered agent changes nothing."""
    if agent.status is AgentStatus.DEREGISTERED:
        return agent
    return replace(agent, status=AgentStatus.DEREGISTERED, updated_at=now, token_issued_at=None)


def reprovision(agent: Agent, now: datetime) -> Agent:
    """A fresh token for a registered agent (seed 004: "refresh a registered client token").
    A deregistered agent was switched off on purpose: only reregistering revives it."""
    if agent.status is AgentStatus.DEREGISTERED:
        raise AgentDeregistered("reregister this agent instead: it is deregistered")
    return replace(agent, updated_at=now, token_issued_at=now)


def check_active(agent: Agent | None) -> Agent:
    """Only a registered agent's current token authenticates."""
    if agent is None or agent.status is not AgentStatus.REGISTERED:
        raise Unauthenticated("unknown or deregistered agent token")
    return agent


def agent_scope(caller: Caller, facts: ScopeFacts, now: datetime) -> Scope:
    """An agent acts in the account it was provisioned in, as its user, for as long as that
    user reaches it. When they no longer do (removed, roles gone, account deleted) the token
    no longer authenticates anything: 401, and only an administrator can fix it. A disabled
    account is a pause, not an end: it answers 403 tenant_disabled, and the token stays good."""
    try:
        return resolve_scope(caller, facts, now)
    except (NotFound, NoAccess) as lost:
        raise Unauthenticated("this agent's user no longer has access to its account") from lost


def status_changes(before: Agent, after: Agent) -> Changes:
    if before.status == after.status:
        return {}
    return {"status": {"before": before.status.value, "after": after.status.value}}
