"""SCIM 2.0 provisioning (SPEC §5.3): the IdP creates, edits, deactivates and deletes users in a
tenant, and puts them in groups, which are the tree's roles held on the tenant."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from access_api.domain import access, scim, users
from access_api.domain import errors as e
from access_api.domain.access import Caller, Grant, GrantChange, Role, Scope
from access_api.domain.audit import Action, ActorKind
from access_api.domain.permissions import Permission
from access_api.domain.scim import NO_ROLES, ScimSettings, ScimUser, UserInput
from access_api.domain.sso import ensure_no_escalation
from access_api.ids import new_id
from access_api.repositories.scim import UnsupportedFilter, predicate
from access_api.use_cases import sso
from access_api.use_cases import users as users_use_case
from access_api.use_cases.work import Work

# --- who may provision --------------------------------------------------------------------


async def authorize(work: Work, caller: Caller, tenant_id: UUID) -> Scope:
    """SCIM speaks with a user API key holding users.write and authorizations.write on t; any
    tenant out of reach (another tree's included) is absent."""
    if caller.credential is not ActorKind.API_KEY:
        raise e.Unauthenticated("SCIM takes a user API key as its bearer token")
    scope = await work.scope(caller, tenant_id, Permission.USERS_WRITE)
    access.require(scope, Permission.AUTHORIZATIONS_WRITE)
    return scope


async def _locked(work: Work, scope: Scope) -> Scope:
    scope = await work.lock_tree(scope, Permission.USERS_WRITE)
    access.require(scope, Permission.AUTHORIZATIONS_WRITE)
    return scope


# --- settings (REST: GET|PUT /v1/tenants/{t}/scim) ----------------------------------------


def endpoint(work: Work, scope: Scope) -> str:
    """The SCIM base URL of the tenant, to paste into the identity provider."""
    return f"{work.settings.base_url}/scim/v2/tenants/{scope.tenant.id}"


async def settings(work: Work, scope: Scope) -> ScimSettings:
    return await work.scim.settings(scope.tenant.id) or NO_ROLES


async def put_settings(
    work: Work, scope: Scope, default_roles: Sequence[str], include_descendants: bool
) -> ScimSettings:
    scope = await work.lock_tree(scope, Permission.SSO_MANAGE)
    known = await work.roles.of_tree(scope.tenant.root_id)
    wanted = ScimSettings(
        default_roles=scim.ensure_roles_known(default_roles, known.keys()),
        include_descendants=include_descendants,
    )
    ensure_no_escalation(wanted.default_roles, known, scope.permissions)
    before = await settings(work, scope)
    await work.scim.save_settings(scope.tenant.id, wanted, work.now)
    await work.record(
        scope.caller.actor,
        Action.SCIM_SETTINGS_UPDATED,
        tenant=scope.tenant,
        target_id=scope.tenant.id,
        changes={
            "default_roles": {
                "before": sorted(before.default_roles),
                "after": sorted(wanted.default_roles),
            },
            "include_descendants": {
                "before": before.include_descendants,
                "after": wanted.include_descendants,
            },
        },
    )
    return wanted


# --- users --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UserPage:
    total: int
    users: list[ScimUser]
    next_cursor: str | None


async def list_users(
    work: Work,
    scope: Scope,
    where: Any,
    start_index: int,
    count: int,
    cursor: str | None = None,
) -> UserPage:
    """A page of the directory, by startIndex (1-based, RFC 7644 §3.4.2.4) or, when a cursor
    is given ("" for the first page), by cursor (RFC 9865), which seeks instead of skipping.
    `where` is a parsed SCIM filter (scim2-models' syntax tree), or None."""
    try:
        condition = predicate(where) if where is not None else None
    except UnsupportedFilter as exc:
        raise e.InvalidFilter(str(exc)) from exc
    limit = max(min(count, scim.MAX_COUNT), 0)
    if cursor is None:
        total, found = await work.scim.page(
            scope.tenant.id, condition, offset=max(start_index, 1) - 1, limit=limit
        )
        return UserPage(total=total, users=found, next_cursor=None)
    after = _after(cursor)
    total, found = await work.scim.page(
        scope.tenant.id, condition, offset=0, limit=limit + 1, after=after
    )
    more = len(found) > limit
    found = found[:limit]
    return UserPage(
        total=total, users=found, next_cursor=found[-1].id.hex if more and found else None
    )


def _after(cursor: str) -> UUID | None:
    if not cursor:
        return None
    try:
        return UUID(hex=cursor)
    except ValueError as exc:
        raise e.InvalidCursor() from exc


async def get_user(work: Work, scope: Scope, user_id: UUID) -> ScimUser:
    found = await work.scim.get(scope.tenant.id, user_id)
    if found is None:
        raise e.NotFound(f"no user {user_id} in this directory")
    return found


async def create_user(work: Work, scope: Scope, wanted: UserInput) -> ScimUser:
    """A new person gets an account; a member of the tree is adopted. Either gets the
    tenant's default roles (when active). Someone of another organization is refused: they
    join through an invitation, which they accept themselves."""
    scope = await _locked(work, scope)
    tenant = scope.tenant
    name = scim.ensure_user_name(wanted.user_name)
    email = scim.email_of(wanted, new_id().hex)
    if await work.scim.holder_of_name(tenant.id, name) is not None:
        raise e.ScimUserExists(f"userName {name!r} is taken in this directory")
    defaults = await settings(work, scope)
    roles = defaults.default_roles if wanted.active else frozenset[str]()
    found = await work.users.by_email(email)
    if found is not None:
        user = found[0]
        member = await work.members.members_among(tenant.root_id, [user.id])
        if not member or await work.scim.linked(tenant.id, user.id):
            raise e.ScimUserExists("a user with this email exists; invite them instead")
        await sso.grant(work, tenant, user, roles, defaults.include_descendants, scope.caller.actor)
    else:
        user = await sso.provision(
            work,
            tenant,
            email=email,
            first_name=wanted.first_name or "",
            last_name=wanted.last_name or "",
            roles=roles,
            include_descendants=defaults.include_descendants,
            actor=scope.caller.actor,
        )
    await work.scim.link(
        tenant.id,
        user.id,
        user_name=name,
        external_id=wanted.external_id,
        active=wanted.active,
        now=work.now,
    )
    await work.record(
        scope.caller.actor,
        Action.SCIM_USER_PROVISIONED,
        tenant=tenant,
        target_id=user.id,
        changes={"user_name": {"before": None, "after": name}},
    )
    return await get_user(work, scope, user.id)


async def replace_user(work: Work, scope: Scope, user_id: UUID, wanted: UserInput) -> ScimUser:
    """PUT (and PATCH, applied to the current value): names, userName, externalId, active.
    Turning active off removes the user's access here, like POST …/users/delete."""
    scope = await _locked(work, scope)
    tenant = scope.tenant
    current = await get_user(work, scope, user_id)
    email = scim.new_email(current.email, wanted.email)
    if email is not None:
        if await work.users.by_email(email) is not None:
            raise e.ScimUserExists("a user with this email exists")
        await work.scim.set_email(user_id, email, work.now)
    name = scim.ensure_user_name(wanted.user_name)
    holder = await work.scim.holder_of_name(tenant.id, name)
    if holder is not None and holder != user_id:
        raise e.ScimUserExists(f"userName {name!r} is taken in this directory")
    person = await work.users.get(user_id)
    assert person is not None  # noqa: S101 - the directory's rows reference users
    fields = {
        key: value
        for key, value in (("first_name", wanted.first_name), ("last_name", wanted.last_name))
        if value
    }
    updated, changes = users.update_profile(person, fields, work.now)
    if changes:
        await work.users.update_profile(updated)
    if current.active and not wanted.active:
        await _deprovision(work, scope, user_id)
    elif wanted.active and not current.active:
        defaults = await settings(work, scope)
        await sso.grant(
            work,
            tenant,
            updated,
            defaults.default_roles,
            defaults.include_descendants,
            scope.caller.actor,
        )
    await work.scim.update(
        tenant.id,
        user_id,
        user_name=name,
        external_id=wanted.external_id,
        active=wanted.active,
        now=work.now,
    )
    if current.active and not wanted.active:
        await work.record(
            scope.caller.actor, Action.SCIM_USER_DEACTIVATED, tenant=tenant, target_id=user_id
        )
    if changes:
        await work.record(
            scope.caller.actor, Action.USER_UPDATED, tenant=tenant, target_id=user_id,
            changes=changes,
        )  # fmt: skip
    return await get_user(work, scope, user_id)


async def patch_user(
    work: Work, scope: Scope, user_id: UUID, apply: Callable[[ScimUser], UserInput]
) -> ScimUser:
    """PATCH: the operations (applied by `apply`, which knows SCIM paths) to the current value,
    then the result as a replacement."""
    current = await get_user(work, scope, user_id)
    return await replace_user(work, scope, user_id, apply(current))


async def delete_user(work: Work, scope: Scope, user_id: UUID) -> None:
    """DELETE: the user leaves this directory, and their access here ends, exactly as
    POST …/users/delete ends it."""
    scope = await _locked(work, scope)
    current = await get_user(work, scope, user_id)
    if current.active:
        await _deprovision(work, scope, user_id)
    await work.scim.unlink(scope.tenant.id, user_id, work.now)


async def _deprovision(work: Work, scope: Scope, user_id: UUID) -> None:
    """Remove the user's access at t and below: the same use case as POST …/users/delete
    (grants, agents there, at the root their API keys and membership, audit events). A user
    with nothing of theirs here (no grant at or below t, below the root) has nothing to lose."""
    tenant = scope.tenant
    visible = await work.members.visible_from(tenant.id, tenant.root_id, [user_id], work.now)
    here = await work.grants.grants_at_or_below(tenant.id, [user_id])
    if user_id not in visible or not (here.get(user_id) or tenant.parent_id is None):
        return
    await users_use_case.delete(work, scope, [user_id])


# --- groups: the tree's roles, held on t --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ScimGroup:
    role: Role
    members: list[tuple[UUID, str]]


async def list_groups(work: Work, scope: Scope) -> list[ScimGroup]:
    found = await work.roles.of_tree(scope.tenant.root_id)
    members = await work.scim.members_of(scope.tenant.id, found.keys())
    return [
        ScimGroup(role=role, members=members.get(key, [])) for key, role in sorted(found.items())
    ]


async def role_keys(work: Work, scope: Scope) -> list[str]:
    """The role keys of the tree: Group.displayName's canonical values."""
    return sorted((await work.roles.of_tree(scope.tenant.root_id)).keys())


async def get_group(work: Work, scope: Scope, group_id: UUID) -> ScimGroup:
    for group in await list_groups(work, scope):
        if group.role.id == group_id:
            return group
    raise e.NotFound(f"no group {group_id} here")


async def create_group(
    work: Work, scope: Scope, display_name: str, member_ids: Sequence[UUID]
) -> ScimGroup:
    """A group is a role the tree already has: "creating" it names the role and its members."""
    known = await work.roles.of_tree(scope.tenant.root_id)
    key = scim.ensure_group(display_name, known.keys())
    return await set_members(work, scope, known[key].id, member_ids)


async def set_members(
    work: Work, scope: Scope, group_id: UUID, member_ids: Sequence[UUID]
) -> ScimGroup:
    """The directory's users listed hold the role on t; the others of the directory no
    longer do. Users the IdP did not provision keep what they hold."""
    scope = await _locked(work, scope)
    tenant = scope.tenant
    group = await get_group(work, scope, group_id)
    key = group.role.key
    wanted = set(dict.fromkeys(member_ids))
    current = {user_id for user_id, _ in group.members}
    for user_id in wanted:
        if await work.scim.get(tenant.id, user_id) is None:
            raise e.NotFound(f"no user {user_id} in this directory")
    touched = [u for u in wanted ^ current if u in wanted or await work.scim.linked(tenant.id, u)]
    existing = await work.grants.grants([(u, tenant.id) for u in touched])
    changes: list[GrantChange] = []
    for user_id in touched:
        before = existing.get((user_id, tenant.id))
        held = before.roles if before else frozenset[str]()
        roles = held | {key} if user_id in wanted else held - {key}
        after = (
            Grant(
                user_id=user_id,
                tenant_id=tenant.id,
                roles=roles,
                include_descendants=before.include_descendants if before else False,
            )
            if roles
            else None
        )
        if before is None and after is None:
            continue
        access.ensure_not_self(scope.caller, user_id)
        changes.append(GrantChange(before=before, after=after))
    access.ensure_admin_remains(
        tenant.root_id, await work.grants.root_admins(tenant.root_id, work.now), changes
    )
    for user_id in wanted - current:
        await work.members.add_member(tenant.root_id, user_id, work.now)
    await work.grants.apply(
        changes,
        root_id=tenant.root_id,
        roles_by_key=await work.roles.of_tree(tenant.root_id),
        now=work.now,
    )
    for change in changes:
        await work.record(
            scope.caller.actor,
            Action.AUTHORIZATION_CHANGED,
            tenant=tenant,
            target_id=change.user_id,
            changes=access.grant_changes(change),
        )
    return await get_group(work, scope, group_id)
