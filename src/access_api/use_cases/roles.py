"""Roles: the built-in pair every tree has and the custom roles its MSP account defines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from uuid import UUID

from access_api.domain import errors as e
from access_api.domain import roles
from access_api.domain.access import Role, Scope
from access_api.domain.audit import Action, created
from access_api.domain.permissions import Permission
from access_api.ids import new_id
from access_api.pagination import After, Page
from access_api.use_cases.work import Work

Precondition = Callable[[Role], None]
"""Refuses a change to a role the client did not last read (If-Match): raise to refuse."""


async def list_roles(work: Work, scope: Scope, *, after: After | None, limit: int) -> Page[Role]:
    return await work.roles.list(scope.tenant.root_id, after=after, limit=limit)


async def _role(work: Work, scope: Scope, key: str, *, for_update: bool = False) -> Role:
    role = await work.roles.get(scope.tenant.root_id, key, for_update=for_update)
    if role is None:
        raise e.NotFound(f"no role {key!r} in this organization")
    return role


async def get(work: Work, scope: Scope, key: str) -> Role:
    return await _role(work, scope, key)


async def create(work: Work, scope: Scope, *, key: str, name: str, permissions: list[str]) -> Role:
    """A custom role for the whole tree, defined from its MSP account."""
    scope = await work.lock_tree(scope, Permission.ROLES_WRITE)
    role = roles.new_role(
        id=new_id(),
        root_id=scope.tenant.root_id,
        key=key,
        name=name,
        permissions=permissions,
        now=work.now,
    )
    roles.ensure_can_define(scope, role.permissions)
    await work.roles.insert(role)
    await work.record(
        scope.caller.actor,
        Action.ROLE_CREATED,
        tenant=scope.tenant,
        target_id=role.id,
        changes=created(role, ("key", "name", "permissions")),
    )
    return role


async def update(
    work: Work,
    scope: Scope,
    key: str,
    fields: Mapping[str, object],
    precondition: Precondition | None = None,
) -> Role:
    """Rename a custom role or change its permissions: everyone holding it gets the new
    permissions, so the editor must hold them all."""
    scope = await work.lock_tree(scope, Permission.ROLES_WRITE)
    current = await _role(work, scope, key, for_update=True)
    if precondition is not None:
        precondition(current)
    updated, changes = roles.update_role(current, fields, work.now)
    roles.ensure_can_define(scope, updated.permissions)
    if changes:
        await work.roles.update(updated)
        await work.record(
            scope.caller.actor,
            Action.ROLE_UPDATED,
            tenant=scope.tenant,
            target_id=updated.id,
            changes=changes,
        )
    return updated


async def delete(work: Work, scope: Scope, key: str) -> UUID:
    """Delete a custom role that nobody holds nor is offered; returns its id."""
    scope = await work.lock_tree(scope, Permission.ROLES_WRITE)
    role = await _role(work, scope, key, for_update=True)
    roles.ensure_can_define(scope, role.permissions)
    roles.ensure_deletable(role, in_use=await work.roles.in_use(role.id))
    await work.roles.delete(role.id)
    await work.record(
        scope.caller.actor,
        Action.ROLE_DELETED,
        tenant=scope.tenant,
        target_id=role.id,
        changes={"key": {"before": role.key, "after": None}},
    )
    return role.id
