"""Authorizations: who holds which roles where, set by tenant (many users) or by user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from access_api.domain import access
from access_api.domain import errors as e
from access_api.domain.access import Grant, GrantChange, GrantContext, GrantRequest, Scope
from access_api.domain.permissions import Permission
from access_api.domain.users import User
from access_api.pagination import After, Page
from access_api.use_cases.work import Work


@dataclass(frozen=True, slots=True, kw_only=True)
class Wanted:
    """Roles asked for one user on one tenant ([] removes the grant)."""

    user_id: UUID
    tenant_id: UUID
    roles: tuple[str, ...]
    include_descendants: bool
    expires_at: datetime | None = None  # time-limited access ends then


@dataclass(frozen=True, slots=True, kw_only=True)
class UserGrants:
    """A user's grants on the context and below, and the roles reaching it from above."""

    grants: list[Grant]
    inherited_roles: list[str]


async def record_grant_changes(work: Work, scope: Scope, changes: Sequence[GrantChange]) -> None:
    for change in changes:
        await work.record(
            scope.caller.actor,
            change.action,
            tenant=scope.tenant,
            target_id=change.user_id,
            changes=access.grant_changes(change),
        )


async def list_on_tenant(
    work: Work, scope: Scope, *, after: After | None, limit: int
) -> Page[tuple[User, Grant]]:
    """Who is authorized on the context (grants made on it), by email."""
    return await work.grants.list_grants_on(scope.tenant.id, after=after, limit=limit)


async def set_on_tenant(
    work: Work, scope: Scope, wanted: Sequence[Wanted]
) -> list[tuple[User, Grant]]:
    """Set the listed users' roles on the context; returns the grants they now hold on it."""
    scope = await work.lock_tree(scope, Permission.AUTHORIZATIONS_WRITE)
    tenant, now = scope.tenant, work.now
    requests = [
        GrantRequest(
            user_id=item.user_id,
            tenant_id=tenant.id,
            roles=item.roles,
            include_descendants=item.include_descendants,
            expires_at=item.expires_at,
        )
        for item in wanted
    ]
    roles = await work.roles.of_tree(tenant.root_id)
    changes = access.plan_grants(
        requests,
        GrantContext(
            caller=scope.caller,
            reachable_tenants=frozenset({tenant.id}),
            visible_users=await work.members.grantable_users(
                scope.caller.user_id, tenant.id, tenant.root_id, (r.user_id for r in requests), now
            ),
            caller_standing={tenant.id: scope.standing},
            current=await work.grants.grants((r.user_id, tenant.id) for r in requests),
            roles=roles,
            root_id=tenant.root_id,
            root_admins=await work.grants.root_admins(tenant.root_id, now),
            now=now,
        ),
    )
    await work.grants.apply(changes, root_id=tenant.root_id, roles_by_key=roles, now=now)
    await record_grant_changes(work, scope, changes)
    page = await work.grants.list_grants_on(tenant.id, after=None, limit=len(wanted) + 1)
    listed = {item.user_id for item in wanted}
    return [(user, grant) for user, grant in page.items if user.id in listed]


async def of_user(work: Work, scope: Scope, user_id: UUID) -> UserGrants:
    """A visible user's grants on the context and below."""
    await work.visible_user(scope, user_id)
    return await _user_grants(work, scope, user_id)


async def _user_grants(work: Work, scope: Scope, user_id: UUID) -> UserGrants:
    found = await work.grants.grants_at_or_below(scope.tenant.id, [user_id])
    held = await work.grants.held_by(scope.tenant.id, [user_id])
    inherited = [h for h in held.get(user_id, []) if h.depth > 0]
    return UserGrants(
        grants=sorted(found[user_id], key=lambda g: str(g.tenant_id)),
        inherited_roles=sorted(access.roles_applying(inherited, work.now)),
    )


async def set_for_user(
    work: Work, scope: Scope, user_id: UUID, wanted: Sequence[Wanted]
) -> UserGrants:
    """Set a user's complete grants on the context and below: those not listed are removed."""
    access.ensure_not_self(scope.caller, user_id)
    scope = await work.lock_tree(scope, Permission.AUTHORIZATIONS_WRITE)
    tenant, now = scope.tenant, work.now
    grantable = await work.members.grantable_users(
        scope.caller.user_id, tenant.id, tenant.root_id, [user_id], now
    )
    if user_id not in grantable:
        raise e.NotFound(f"no user {user_id} here")
    requests = [
        GrantRequest(
            user_id=user_id,
            tenant_id=item.tenant_id,
            roles=item.roles,
            include_descendants=item.include_descendants,
            expires_at=item.expires_at,
        )
        for item in wanted
    ]
    reachable = await work.tenants.at_or_below(tenant.id, {r.tenant_id for r in requests})
    held = await work.grants.held_on(scope.caller.user_id, reachable)
    roles = await work.roles.of_tree(tenant.root_id)
    existing = (await work.grants.grants_at_or_below(tenant.id, [user_id]))[user_id]
    changes = access.plan_grants(
        requests,
        GrantContext(
            caller=scope.caller,
            reachable_tenants=reachable,
            visible_users=grantable,
            caller_standing={
                tenant_id: access.standing(
                    held[tenant_id], roles, now, scope.caller.permission_limit
                )
                for tenant_id in reachable
            },
            current={(g.user_id, g.tenant_id): g for g in existing}
            | await work.grants.grants((user_id, t) for t in reachable),
            roles=roles,
            root_id=tenant.root_id,
            root_admins=await work.grants.root_admins(tenant.root_id, now),
            now=now,
        ),
        replace_within=[(user_id, g.tenant_id) for g in existing],
        item="tenant",
    )
    await work.grants.apply(changes, root_id=tenant.root_id, roles_by_key=roles, now=now)
    await record_grant_changes(work, scope, changes)
    return await _user_grants(work, scope, user_id)
