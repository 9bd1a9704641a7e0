"""Tenants and client accounts: edit, add (with its first grants), disable, enable, delete."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from access_api.domain import access, tenants
from access_api.domain.access import GrantContext, GrantRequest, Scope
from access_api.domain.audit import Action, created
from access_api.domain.permissions import Permission
from access_api.domain.tenants import Tenant, TenantKind, TenantStatus
from access_api.ids import new_id
from access_api.pagination import After, Page
from access_api.use_cases.work import Work

TENANT_FIELDS = ("kind", "parent_id", "name", "domain_prefix", "street_address", "status")

Precondition = Callable[[Tenant], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class InitialGrant:
    user_id: UUID
    roles: tuple[str, ...]
    include_descendants: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NewClient:
    kind: TenantKind
    name: str
    domain_prefix: str
    street_address: str | None
    authorizations: Sequence[InitialGrant] = ()


async def update(
    work: Work, scope: Scope, fields: dict[str, object], expect: Precondition
) -> Tenant:
    """Edit the context's own name or street address. `expect` judges the current state
    first (a client's If-Match), under the tree lock so nobody edits in between."""
    scope = await work.lock_tree(scope, Permission.CLIENTS_WRITE)
    current = scope.tenant
    expect(current)
    updated, changes = tenants.update(current, fields, work.now)
    if changes:
        await work.tenants.update(updated)
        await work.record(
            scope.caller.actor,
            Action.TENANT_UPDATED,
            tenant=updated,
            target_id=updated.id,
            changes=changes,
        )
    return updated


async def create_client(work: Work, scope: Scope, new: NewClient) -> Tenant:
    """Add a client or multi-client below the context, authorizing users on it at once (that
    part needs authorizations.write too, and grants no more than the caller holds)."""
    scope = await work.lock_tree(scope, Permission.CLIENTS_WRITE)
    client = tenants.new_child(
        scope.tenant,
        id=new_id(),
        kind=new.kind,
        name=new.name,
        domain_prefix=new.domain_prefix,
        street_address=new.street_address,
        now=work.now,
    )
    if new.authorizations:
        access.require(scope, Permission.AUTHORIZATIONS_WRITE)
    root_id = scope.tenant.root_id
    requests = [
        GrantRequest(
            user_id=item.user_id,
            tenant_id=client.id,
            roles=item.roles,
            include_descendants=item.include_descendants,
        )
        for item in new.authorizations
    ]
    changes: list[access.GrantChange] = []
    roles: dict[str, access.Role] = {}
    if requests:
        roles = await work.roles.of_tree(root_id)
        changes = access.plan_grants(
            requests,
            GrantContext(
                caller=scope.caller,
                reachable_tenants=frozenset({client.id}),
                visible_users=await work.members.grantable_users(
                    scope.caller.user_id,
                    scope.tenant.id,
                    root_id,
                    (r.user_id for r in requests),
                    work.now,
                ),
                caller_standing={client.id: access.standing_below(scope.standing)},
                current={},
                roles=roles,
                root_id=root_id,
                root_admins=frozenset(),
                now=work.now,
            ),
            field="authorizations",
        )
    await work.tenants.insert(client)
    await work.grants.apply(changes, root_id=root_id, roles_by_key=roles, now=work.now)
    actor = scope.caller.actor
    await work.record(
        actor,
        Action.TENANT_CREATED,
        tenant=client,
        target_id=client.id,
        changes=created(client, TENANT_FIELDS),
    )
    for change in changes:
        await work.record(
            actor,
            Action.AUTHORIZATION_GRANTED,
            tenant=client,
            target_id=change.user_id,
            changes=access.grant_changes(change),
        )
    return client


async def set_status(
    work: Work, scope: Scope, ids: Sequence[UUID], wanted: TenantStatus
) -> list[Tenant]:
    """Disable or enable accounts below the context; returns each listed account as it is."""
    reachable = await work.tenants.below(scope.tenant.id, ids, for_update=True)
    changes = tenants.plan_status_change(
        ids, reachable, wanted, work.now, root_id=scope.tenant.root_id
    )
    action = Action.TENANT_DISABLED if wanted is TenantStatus.DISABLED else Action.TENANT_ENABLED
    for before, after in changes:
        await work.tenants.update(after)
        await work.record(
            scope.caller.actor,
            action,
            tenant=after,
            target_id=after.id,
            changes={"status": {"before": before.status.value, "after": after.status.value}},
        )
    current = {after.id: after for _, after in changes}
    return [current.get(i, reachable[i]) for i in tenants.unique(ids)]


async def delete(
    work: Work, scope: Scope, ids: Sequence[UUID], *, confirm: str | None, cascade: bool
) -> list[UUID]:
    """Delete accounts below the context (and, with cascade, everything below them); their
    agents are deregistered. Returns every deleted account, cascaded ones included."""
    scope = await work.lock_tree(scope, Permission.CLIENTS_DELETE)
    reachable = await work.tenants.subtrees(scope.tenant.id, ids, for_update=True)
    targets = tenants.plan_deletion(ids, reachable, confirm=confirm, cascade=cascade)
    deleted: list[UUID] = []
    for target in targets:
        below = sorted(reachable[target.id].descendant_ids)
        deleted += [target.id, *[i for i in below if i not in deleted]]
        await work.record(
            scope.caller.actor,
            Action.TENANT_DELETED,
            tenant=target,
            target_id=target.id,
            changes={
                "domain_prefix": {"before": target.domain_prefix, "after": None},
                "cascaded": {"before": None, "after": [str(i) for i in below]},
            },
        )
    deleted = list(dict.fromkeys(deleted))
    await work.tenants.delete(deleted, work.now)
    for agent in await work.agents.deregister_in(deleted, work.now):
        await work.record(
            scope.caller.actor,
            Action.AGENT_DEREGISTERED,
            tenant=scope.tenant,
            target_id=agent.id,
            changes={"status": {"before": "registered", "after": "deregistered"}},
        )
    return deleted


async def list_below(
    work: Work,
    scope: Scope,
    *,
    descendants: bool,
    q: str | None,
    kind: TenantKind | None,
    status: TenantStatus | None,
    sort: str,
    descending: bool,
    after: After | None,
    limit: int,
) -> Page[Tenant]:
    """The accounts below the context (direct children, or every descendant), one page."""
    return await work.tenants.list_below(
        scope.tenant.id,
        descendants=descendants,
        q=q,
        kind=kind,
        status=status,
        sort=sort,
        descending=descending,
        after=after,
        limit=limit,
    )
