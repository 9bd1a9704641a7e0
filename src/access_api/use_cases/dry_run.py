"""Dry runs: a change is run for real inside its transaction, described, and rolled back;
nothing is kept, no audit event, no mail, no webhook. The same use case, the same checks and
refusals as the real call."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from access_api.domain import dry_run
from access_api.domain.audit import Action
from access_api.domain.dry_run import WouldChange
from access_api.repositories.dry_run import DryRunRepository
from access_api.use_cases.work import Work


async def reaching(work: Work, tenant_id: UUID) -> frozenset[UUID]:
    """Who can do anything at all in the tenant's tree now (read before the change runs)."""
    tenant = await work.tenants.get(tenant_id)
    if tenant is None:
        return frozenset()
    return frozenset(await DryRunRepository(work.session).reaching(tenant.root_id, work.now))


async def describe(
    work: Work, tenant_id: UUID, since: datetime, request_id: str, before: frozenset[UUID]
) -> WouldChange:
    """What the change made so far in this transaction would do, read before it is rolled
    back: its events, the grants it adds, removes and changes, the users it leaves with no
    access in the tree (whether by grants, user deletion, or deleting or disabling their
    tenants), and the API keys, agents and sessions that would stop for them (or that the
    change ends itself)."""
    tenant = await work.tenants.get(tenant_id)
    if tenant is None:
        return WouldChange(events=[])
    reads = DryRunRepository(work.session)
    events = await reads.events(tenant.root_id, since, request_id)
    losing = sorted(before - await reads.reaching(tenant.root_id, work.now))
    keys, agents, sessions = await reads.credentials_of(tenant.root_id, losing, work.now)
    return WouldChange(
        events=events,
        grants=dry_run.grants_in(events),
        users_losing_all_access=losing,
        api_key_ids=sorted(set(keys) | dry_run.targets(events, Action.API_KEY_REVOKED)),
        agent_ids=sorted(set(agents) | dry_run.targets(events, Action.AGENT_DEREGISTERED)),
        sessions=sessions,
    )
