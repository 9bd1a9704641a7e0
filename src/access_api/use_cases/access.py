"""Access explained: why a user can (or cannot right now) do each thing, tenant by tenant."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from access_api.domain import policies
from access_api.domain.access import Scope
from access_api.domain.explained import PolicyCheck, TenantExplained, explain_tenant
from access_api.domain.tenants import Tenant
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
    second_factor = policies.has_second_factor(user.two_factor)
    tenants = []
    for tenant, disabled, held, roles, chain in reached:
        if tenant.id not in in_view:
            continue
        explained = explain_tenant(
            tenant,
            held,
            roles,
            work.now,
            disabled_from_above=disabled,
            policy=_policy_of(policies.effective(chain), second_factor),
        )
        if explained is not None:
            tenants.append(explained)
    return AccessExplained(user=user, tenants=tenants)


def _policy_of(policy: policies.Effective, second_factor: bool) -> PolicyCheck:
    """What the tenant's security policy refuses this user, whatever they ask: a second factor
    they lack. An address allow-list depends on where they call from, not on who they are, so
    it is not named here (their every call from outside the ranges meets ip_not_allowed)."""
    blocked = policies.blocked_by(policy, has_second_factor=second_factor, ip=None)
    code = policies.TWO_FACTOR_REQUIRED if policies.TWO_FACTOR_REQUIRED in blocked else None

    def check(tenant: Tenant, permission: str) -> str | None:
        return code

    return check
