"""Users seen from a tenant's context: list, view, edit, export, delete."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from access_api.domain import access, users
from access_api.domain import errors as e
from access_api.domain.access import GrantChange, Scope
from access_api.domain.audit import Action
from access_api.domain.permissions import Permission
from access_api.domain.users import TwoFactor, User
from access_api.pagination import After, Page
from access_api.use_cases.work import Work


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    """A user as seen from the context: the roles applying there, and whether they have any
    access left in the organization (a member with none is listed, to be given a role)."""

    user: User
    roles: list[str]
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Removal:
    """What deleting users did, for whoever describes it (the REST answer, SCIM, a dry run).

    At the root the users leave the organization (membership, grants and API keys go); below
    it they lose their grants there and below. Sessions are the person's, not the tree's:
    deletion ends none."""

    deleted: list[UUID]
    grants_removed: list[GrantChange]
    left_organization: bool
    # Deleted users left with no live grant anywhere in the organization.
    without_access: list[UUID]
    api_keys_revoked: list[UUID]
    agents_deregistered: list[UUID]


Precondition = Callable[[Seen], None]


async def describe(work: Work, scope: Scope, found: Sequence[User]) -> list[Seen]:
    """Users as seen from the context: their roles there, and whether they have any access."""
    tenant = scope.tenant
    held = await work.grants.held_by(tenant.id, (u.id for u in found))
    if tenant.parent_id is None:
        active = await work.members.with_live_grants(tenant.id, (u.id for u in found), work.now)
    else:
        active = frozenset(u.id for u in found)  # visible below the root means reaching it
    return [
        Seen(
            user=user,
            roles=sorted(access.roles_applying(held.get(user.id, []), work.now)),
            active=user.id in active,
        )
        for user in found
    ]


async def list_visible(
    work: Work,
    scope: Scope,
    *,
    q: str | None,
    role: str | None,
    two_factor: TwoFactor | None,
    sort: str,
    descending: bool,
    after: After | None,
    limit: int,
) -> Page[Seen]:
    """Users with access to the context or below it, one page."""
    page = await work.users.list_visible(
        scope.tenant,
        q=q,
        role=role,
        two_factor=two_factor,
        ids=None,
        sort=sort,
        descending=descending,
        after=after,
        limit=limit,
        now=work.now,
    )
    return Page(await describe(work, scope, page.items), page.next_after)


async def get(work: Work, scope: Scope, user_id: UUID) -> Seen:
    (seen,) = await describe(work, scope, [await work.visible_user(scope, user_id)])
    return seen


async def update_profile(
    work: Work, scope: Scope, user_id: UUID, fields: dict[str, object], expect: Precondition
) -> Seen:
    """Edit a person's names, phone or session timeout, from at or above all their access.
    `expect` judges the user as they are now (a client's If-Match), under the row lock."""
    await work.manageable_user(scope, user_id)
    current = await work.users.lock(user_id)
    if current is None:
        raise e.NotFound()
    (before,) = await describe(work, scope, [current])
    expect(before)
    updated, changes = users.update_profile(current, fields, work.now)
    if changes:
        await work.users.update_profile(updated)
        await work.record(
            scope.caller.actor,
            Action.USER_UPDATED,
            tenant=scope.tenant,
            target_id=user_id,
            changes=changes,
        )
    (seen,) = await describe(work, scope, [updated])
    return seen


async def delete(work: Work, scope: Scope, ids: Sequence[UUID]) -> Removal:
    """Remove users from the context and below; at the root they leave the organization.
    Their credentials there stop at once: agents at or below the context, and at the root
    their API keys for the organization too."""
    scope = await work.lock_tree(scope, Permission.USERS_DELETE)
    tenant, now = scope.tenant, work.now
    ids = list(dict.fromkeys(ids))
    changes = access.plan_removal(
        scope.caller,
        ids,
        context_id=tenant.id,
        root_id=tenant.root_id,
        visible=await work.members.visible_from(tenant.id, tenant.root_id, ids, now),
        grants_here=await work.grants.grants_at_or_below(tenant.id, ids),
        root_admins=await work.grants.root_admins(tenant.root_id, now),
    )
    await work.grants.apply(changes, root_id=tenant.root_id, roles_by_key={}, now=now)
    at_root = tenant.parent_id is None
    ended = await work.agents.deregister_for(ids, tenant.id, now)
    revoked = await work.api_keys.revoke_for_users(ids, tenant.root_id, now) if at_root else []
    if at_root:
        await work.members.remove_members(tenant.root_id, ids)
    actor = scope.caller.actor
    for key in revoked:
        await work.record(
            actor,
            Action.API_KEY_REVOKED,
            tenant=tenant,
            target_id=key.id,
            changes={"revoked_at": {"before": None, "after": now.isoformat()}},
        )
    for agent in ended:
        await work.record(
            actor,
            Action.AGENT_DEREGISTERED,
            tenant=tenant,
            target_id=agent.id,
            changes={"status": {"before": "registered", "after": "deregistered"}},
        )
    for user_id in ids:
        await work.record(
            actor,
            Action.USER_DELETED,
            tenant=tenant,
            target_id=user_id,
            changes=access.removal_changes([c for c in changes if c.user_id == user_id], at_root),
        )
    still = await work.members.with_live_grants(tenant.root_id, ids, now)
    return Removal(
        deleted=ids,
        grants_removed=changes,
        left_organization=at_root,
        without_access=[i for i in ids if i not in still],
        api_keys_revoked=[key.id for key in revoked],
        agents_deregistered=[agent.id for agent in ended],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Export:
    columns: list[str]
    chunks: AsyncIterator[bytes]


async def export(work: Work, scope: Scope, columns: str | None, ids: list[UUID] | None) -> Export:
    """Users visible from the context as CSV, streamed from a snapshot of their own (the
    request's transaction has ended by the time the body is sent). The export is recorded."""
    chosen = users.export_columns(columns)
    await work.record(
        scope.caller.actor,
        Action.USERS_EXPORTED,
        tenant=scope.tenant,
        target_id=scope.tenant.id,
        changes={"columns": {"before": None, "after": chosen}},
    )
    return Export(columns=chosen, chunks=_export_chunks(work, scope, chosen, ids))


async def _export_chunks(
    work: Work, scope: Scope, columns: list[str], ids: list[UUID] | None
) -> AsyncIterator[bytes]:
    state, now = work.state, work.now
    async with (
        state.database.snapshot() as session,
        contextlib.aclosing(
            Work.over(session, state, now).users.export_csv(
                scope.tenant,
                columns=columns,
                ids=ids,
                now=now,
                statement_seconds=state.settings.export_timeout_seconds,
            )
        ) as exported,
    ):
        # Closed before the snapshot is: a client that leaves mid-export ends the statement
        # first, then gives the connection back.
        async for chunk in exported:
            yield chunk
