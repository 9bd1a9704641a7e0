"""Agent rules as plain calls: the lifecycle, where an agent works, and its scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from access_api.domain import agents
from access_api.domain.access import Caller, Grant, Held, Role, ScopeFacts
from access_api.domain.agents import AgentStatus
from access_api.domain.audit import ActorKind
from access_api.domain.errors import (
    AgentDeregistered,
    NotFound,
    TenantDisabled,
    Unauthenticated,
    ValidationFailed,
)
from access_api.domain.tenants import Tenant, TenantKind, TenantStatus

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class TestAgents:
    def agent(self) -> agents.Agent:
        tenant = uuid4()
        return agents.provision(
            id=uuid4(),
            root_id=uuid4(),
            tenant_id=tenant,
            reachable={tenant},
            user_id=uuid4(),
            name=" Runner ",
            created_by=uuid4(),
            now=NOW,
        )

    def test_the_lifecycle(self) -> None:
        agent = self.agent()
        assert (agent.status, agent.name) == (AgentStatus.REGISTERED, "Runner")
        off = agents.deregister(agent, NOW)
        assert (off.status, off.token_issued_at) == (AgentStatus.DEREGISTERED, None)
        assert agents.deregister(off, NOW) == off
        with pytest.raises(AgentDeregistered):
            agents.reprovision(off, NOW)
        with pytest.raises(Unauthenticated):
            agents.check_active(off)
        back = agents.reregister(off, NOW + timedelta(minutes=1))
        assert back.status is AgentStatus.REGISTERED
        assert agents.status_changes(off, back) == {
            "status": {"before": "deregistered", "after": "registered"}
        }

    def test_an_agent_works_only_in_a_reachable_account(self) -> None:
        with pytest.raises(NotFound):
            agents.provision(
                id=uuid4(),
                root_id=uuid4(),
                tenant_id=uuid4(),
                reachable=set(),
                user_id=uuid4(),
                name="Runner",
                created_by=uuid4(),
                now=NOW,
            )

    def test_a_name_is_trimmed_and_bounded(self) -> None:
        assert agents.check_name("  Runner ") == "Runner"
        for bad in ("", "   ", "x" * (agents.NAME_MAX_LENGTH + 1)):
            with pytest.raises(ValidationFailed):
                agents.check_name(bad)

    def test_reprovisioning_a_registered_agent_renews_its_token_only(self) -> None:
        agent = self.agent()
        later = NOW + timedelta(hours=1)
        renewed = agents.reprovision(agent, later)
        assert (renewed.status, renewed.token_issued_at) == (AgentStatus.REGISTERED, later)
        assert agents.status_changes(agent, renewed) == {}


class TestAgentScope:
    def facts(self, *, reached: bool, disabled: bool = False) -> tuple[Caller, ScopeFacts]:
        tenant = Tenant(
            id=uuid4(),
            root_id=uuid4(),
            parent_id=None,
            kind=TenantKind.MSP,
            name="MSP",
            domain_prefix="msp",
            street_address=None,
            status=TenantStatus.ENABLED,
            created_at=NOW,
            updated_at=NOW,
        )
        caller = Caller(
            user_id=uuid4(),
            email="a@example.com",
            credential=ActorKind.AGENT,
            credential_id=uuid4(),
            root_id=tenant.root_id,
        )
        role = Role(
            id=uuid4(),
            root_id=tenant.root_id,
            key="tech",
            name="Tech",
            permissions=frozenset({"users.read"}),
            builtin=False,
            created_at=NOW,
            updated_at=NOW,
        )
        grant = Grant(
            user_id=caller.user_id,
            tenant_id=tenant.id,
            roles=frozenset({"tech"}),
            include_descendants=False,
        )
        facts = ScopeFacts(
            tenant=tenant,
            chain_disabled=disabled,
            member=True,
            has_live_grant_in_tree=reached,
            held=[Held(grant, 0)] if reached else [],
            roles={"tech": role},
        )
        return caller, facts

    def test_an_agent_acts_as_its_user_where_they_still_reach(self) -> None:
        caller, facts = self.facts(reached=True)
        scope = agents.agent_scope(caller, facts, NOW)
        assert scope.permissions == frozenset({"users.read"})

    def test_an_agent_whose_user_lost_access_no_longer_authenticates(self) -> None:
        caller, facts = self.facts(reached=False)
        with pytest.raises(Unauthenticated):
            agents.agent_scope(caller, facts, NOW)

    def test_a_disabled_account_pauses_the_agent_without_ending_it(self) -> None:
        caller, facts = self.facts(reached=True, disabled=True)
        with pytest.raises(TenantDisabled):
            agents.agent_scope(caller, facts, NOW)

    def test_only_a_registered_agent_authenticates(self) -> None:
        with pytest.raises(Unauthenticated):
            agents.check_active(None)
