"""Access explained: for each tenant a user reaches, each effective permission, the grants it
comes from, and the policy (if any) that blocks it right now."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from access_api.domain.access import Held, Role, standing
from access_api.domain.tenants import Tenant

TENANT_DISABLED = "tenant_disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One grant a permission comes from: the tenant it was made on, the role that carries
    the permission, whether it is on the tenant itself (direct) or inherited from an
    ancestor's include_descendants grant, and when it stops counting."""

    tenant_id: UUID
    role: str
    inherited: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionExplained:
    permission: str
    sources: tuple[Source, ...]
    blocked_by: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantExplained:
    tenant: Tenant
    blocked_by: str | None
    permissions: tuple[PermissionExplained, ...]


# A policy check: given a tenant, the permission and whether the tenant is disabled from
# above, the refusal code that blocks it now (`two_factor_required`, `ip_not_allowed`, …) or
# None. Tenant security policies (SPEC §5.2) plug in here.
PolicyCheck = Callable[[Tenant, str], str | None]


def no_policy(tenant: Tenant, permission: str) -> str | None:
    return None


def explain_tenant(
    tenant: Tenant,
    held: Iterable[Held],
    roles: Mapping[str, Role],
    now: datetime,
    *,
    disabled_from_above: bool,
    policy: PolicyCheck = no_policy,
) -> TenantExplained | None:
    """What the user may do on one tenant and why; None if no live grant reaches it.
    Expired grants count for nothing, exactly as when a request is judged."""
    held = list(held)
    effective = standing(held, roles, now)
    if not effective.reached:
        return None
    blocked_here = TENANT_DISABLED if disabled_from_above else None
    explained = []
    for permission in sorted(effective.permissions):
        sources = sorted(
            (
                Source(
                    tenant_id=item.grant.tenant_id,
                    role=key,
                    inherited=item.depth > 0,
                    expires_at=item.grant.expires_at,
                )
                for item in held
                if item.grant.live(now) and (item.depth == 0 or item.grant.include_descendants)
                for key in sorted(item.grant.roles)
                if key in roles and permission in roles[key].permissions
            ),
            key=lambda source: (source.inherited, source.role, str(source.tenant_id)),
        )
        explained.append(
            PermissionExplained(
                permission=permission,
                sources=tuple(sources),
                blocked_by=blocked_here or policy(tenant, permission),
            )
        )
    return TenantExplained(tenant=tenant, blocked_by=blocked_here, permissions=tuple(explained))
