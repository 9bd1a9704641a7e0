"""Access explained: why a user can (or cannot right now) do each thing, tenant by tenant."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from access_api.domain.access import Scope
from access_api.domain.explained import TenantExplained, explain_tenant, no_policy
from access_api.domain.users import User
from access_api.use_cases.work import Work


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessExplained:
    user: User
    tenants: list[TenantExplained]


async def explain(work: Work, scope: Scope, user_id: UUID) -> AccessExplained:
    """For each tenant the user reaches at or below the context: the effective permissions,
    each with the grants it comes from and the policy that blocks it, if any."""
    user = await work.visible_user(scope, user_id)
    reached = await work.grants.reachable(user.id, scope.tenant.root_id)
    in_view = await work.tenants.at_or_below(scope.tenant.id, [t.id for t, *_ in reached])
    # Tenant security policies (SPEC §5.2, issue 13) plug in as a PolicyCheck here; until
    # then the only policy that blocks a permission is a disabled tenant (or one above it).
    policy = no_policy
    tenants = []
    for tenant, disabled, held, roles in reached:
        if tenant.id not in in_view:
            continue
        explained = explain_tenant(
            tenant, held, roles, work.now, disabled_from_above=disabled, policy=policy
        )
        if explained is not None:
            tenants.append(explained)
    return AccessExplained(user=user, tenants=tenants)
