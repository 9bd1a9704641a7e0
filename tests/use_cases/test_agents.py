"""Agent use cases, called directly: provisioning, the token's life, and the agent's scope."""

from __future__ import annotations

from datetime import timedelta

import pytest

from access_api.auth import credentials
from access_api.domain import errors as e
from access_api.domain.agents import AgentStatus
from access_api.domain.audit import Action
from access_api.domain.permissions import READ_ONLY_ROLE
from access_api.ids import new_id
from access_api.use_cases import agents
from tests.use_cases.conftest import START, Tree


class TestProvision:
    async def test_a_new_agent_acts_as_its_user_in_its_account_and_is_recorded(
        self, tree: Tree
    ) -> None:
        tech = await tree.member(READ_ONLY_ROLE)
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        made = await agents.provision(work, scope, tech.id, name=" Runner ", tenant_id=None)
        agent = made.agent
        assert made.token.startswith("aag_")
        assert (agent.name, agent.status, agent.tenant_id, agent.token_issued_at) == (
            "Runner",
            AgentStatus.REGISTERED,
            tree.root.id,
            START,
        )
        acting = await credentials.acting_agent(work, made.token)
        assert acting.agent.id == agent.id
        assert (acting.scope.caller.user_id, acting.scope.tenant.id) == (tech.id, tree.root.id)
        assert [(event.action, event.target_id) for event in work.events] == [
            (Action.AGENT_PROVISIONED, agent.id)
        ]
        assert work.events[0].changes["status"] == {"before": None, "after": "registered"}

    async def test_an_account_outside_the_context_is_absent(self, tree: Tree) -> None:
        tech = await tree.member(READ_ONLY_ROLE)
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        with pytest.raises(e.NotFound):
            await agents.provision(work, scope, tech.id, name="Runner", tenant_id=new_id())
        assert work.events == []

    async def test_a_user_the_context_cannot_see_is_absent(self, tree: Tree) -> None:
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        with pytest.raises(e.NotFound):
            await agents.provision(work, scope, new_id(), name="Runner", tenant_id=None)


class TestLifecycle:
    async def test_deregistering_kills_the_token_and_only_reregistering_revives(
        self, tree: Tree
    ) -> None:
        tech = await tree.member(READ_ONLY_ROLE)
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        made = await agents.provision(work, scope, tech.id, name="Runner", tenant_id=None)
        off = await agents.deregister(work, scope, tech.id, made.agent.id)
        assert off.status is AgentStatus.DEREGISTERED
        with pytest.raises(e.Unauthenticated):
            await credentials.acting_agent(work, made.token)
        recorded = len(work.events)
        assert await agents.deregister(work, scope, tech.id, made.agent.id) == off
        assert len(work.events) == recorded  # again: no change, nothing recorded
        with pytest.raises(e.AgentDeregistered):
            await agents.reprovision(work, scope, tech.id, made.agent.id)
        back = await agents.reregister(work, scope, tech.id, made.agent.id)
        assert (await credentials.acting_agent(work, back.token)).agent.id == made.agent.id
        assert [event.action for event in work.events] == [
            Action.AGENT_PROVISIONED,
            Action.AGENT_DEREGISTERED,
            Action.AGENT_REREGISTERED,
        ]

    async def test_a_heartbeat_marks_the_agent_seen(self, tree: Tree) -> None:
        tech = await tree.member(READ_ONLY_ROLE)
        work = tree.work()
        made = await agents.provision(
            work, await tree.scope(tree.admin, work), tech.id, name="Runner", tenant_id=None
        )
        later = tree.work(timedelta(minutes=5))
        acting = await credentials.acting_agent(later, made.token)
        beat = await agents.heartbeat(later, acting.agent)
        assert beat.seen_at == START + timedelta(minutes=5)
        page = await agents.list_for(
            later,
            await tree.scope(tree.admin, later),
            tech.id,
            sort="created_at",
            descending=False,
            after=None,
            limit=10,
        )
        assert [agent.last_seen_at for agent in page.items] == [beat.seen_at]

    async def test_a_token_that_is_not_an_agent_s_is_refused(self, tree: Tree) -> None:
        for token in (None, "aak_notanagent", "aag_unknown"):
            with pytest.raises(e.Unauthenticated):
                await credentials.acting_agent(tree.work(), token)
