"""Users seen from a tenant's context (seeds 000, 003): list, view, edit, delete, export."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from access_api.dependencies import (
    Access,
    Agents,
    ApiKeys,
    Audit,
    Locked,
    Now,
    People,
    State,
    Users,
    requires,
)
from access_api.domain import access, users
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.permissions import Permission
from access_api.domain.users import TwoFactor, User
from access_api.errors import problem_responses
from access_api.repositories.access import AccessRepository
from access_api.repositories.users import UserRepository
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    IdList,
    Limit,
    ListPage,
    Phone,
    api_router,
    check_if_match,
    split_sort,
    with_etag,
)
from access_api.state import AppState

router = api_router(prefix="/v1/tenants", tags=["users"], responses=SCOPED_PROBLEMS)

ReadUsers = Annotated[Scope, requires(Permission.USERS_READ)]
WriteUsers = Annotated[Scope, requires(Permission.USERS_WRITE)]
DeleteUsers = Annotated[Scope, requires(Permission.USERS_DELETE)]
ExportUsers = Annotated[Scope, requires(Permission.USERS_EXPORT)]

UserStatus = Literal["active", "no_access"]
UserSort = Literal[
    "email", "-email", "first_name", "-first_name", "last_name", "-last_name",
    "two_factor", "-two_factor", "created_at", "-created_at", "last_login_at",
    "-last_login_at", "id", "-id",
]  # fmt: skip


class UserOut(BaseModel):
    id: UUID
    email: str
    first_name: str
    last_name: str
    phone: str | None
    session_timeout_minutes: int
    two_factor: TwoFactor
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            first_name=user.first_name,
            last_name=user.last_name,
            phone=user.phone,
            session_timeout_minutes=user.session_timeout_minutes,
            two_factor=user.two_factor,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )


class UserItem(UserOut):
    roles: list[str] = Field(
        description="Roles that apply on this account, granted here or inherited from above"
    )
    status: UserStatus = Field(
        description="no_access: a member of the organization with no role left (seed 003)"
    )


class UserPatch(Body):
    first_name: str | None = Field(default=None, min_length=1, max_length=users.NAME_MAX_LENGTH)
    last_name: str | None = Field(default=None, min_length=1, max_length=users.NAME_MAX_LENGTH)
    phone: Phone | None = Field(default=None, max_length=users.PHONE_MAX_LENGTH)
    session_timeout_minutes: int | None = Field(
        default=None, ge=users.SESSION_TIMEOUT_MIN, le=users.SESSION_TIMEOUT_MAX
    )
    email: str | None = Field(
        default=None, description="Fixed for life: only the current value is accepted"
    )


class Removed(BaseModel):
    deleted: list[UUID]
    grants_removed: int


async def describe(
    scope: Scope, found: Sequence[User], repo: AccessRepository, now: datetime
) -> list[UserItem]:
    """Users as seen from the context: their roles there, and whether they have any access."""
    tenant = scope.tenant
    held = await repo.held_by(tenant.id, (u.id for u in found))
    if tenant.parent_id is None:
        active = await repo.with_live_grants(tenant.id, (u.id for u in found), now)
    else:
        active = frozenset(u.id for u in found)  # visible below the root means reaching it
    return [
        UserItem(
            **UserOut.of(user).model_dump(),
            roles=sorted(access.roles_applying(held.get(user.id, []), now)),
            status="active" if user.id in active else "no_access",
        )
        for user in found
    ]


@router.get("/{tenant_id}/users", summary="Users with access to this account or below it")
async def list_users(
    scope: ReadUsers,
    repo: Users,
    grants: Access,
    state: State,
    now: Now,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of the email or a name")
    ] = None,
    role: Annotated[
        str | None, Query(max_length=64, description="Holding this role here or below")
    ] = None,
    two_factor: TwoFactor | None = None,
    sort: UserSort = "email",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[UserItem]:
    field, descending = split_sort(sort)
    page = await repo.list_visible(
        scope.tenant,
        q=q,
        role=role,
        two_factor=two_factor,
        ids=None,
        sort=field,
        descending=descending,
        after=state.cursors.decode(cursor, sort),
        limit=limit,
        now=now,
    )
    return ListPage(
        items=await describe(scope, page.items, grants, now),
        next_cursor=state.cursors.encode(sort, page.next_after),
    )


def _parse_ids(ids: list[str] | None) -> list[UUID] | None:
    if not ids:
        return None
    parsed: list[UUID] = []
    for part in (p.strip() for value in ids for p in value.split(",")):
        if not part:
            continue
        try:
            parsed.append(UUID(part))
        except ValueError as exc:
            raise ValidationFailed(
                [FieldError("ids", "invalid_id", f"{part!r} is not a user id")]
            ) from exc
    return parsed


async def _export(
    state: AppState, scope: Scope, columns: list[str], ids: list[UUID] | None, now: datetime
) -> AsyncIterator[bytes]:
    async with state.database.snapshot() as session:
        async for chunk in UserRepository(session).export_csv(
            scope.tenant,
            columns=columns,
            ids=ids,
            now=now,
            statement_seconds=state.settings.export_timeout_seconds,
        ):
            yield chunk


@router.get(
    "/{tenant_id}/users/export",
    summary="Export users as CSV (streamed)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "CSV with a header row, columns in the order asked for",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def export_users(
    scope: ExportUsers,
    state: State,
    audit: Audit,
    now: Now,
    columns: Annotated[
        str | None,
        Query(description=f"Comma-separated, from: {', '.join(users.EXPORT_COLUMNS)}; default all"),
    ] = None,
    ids: Annotated[
        list[str] | None, Query(description="Only these users (repeat, or comma-separate)")
    ] = None,
) -> StreamingResponse:
    chosen = users.export_columns(columns)
    selected = _parse_ids(ids)
    await audit.record(
        scope.caller.actor,
        "users.exported",
        tenant=scope.tenant,
        target_type="tenant",
        target_id=scope.tenant.id,
        changes={"columns": {"before": None, "after": chosen}},
    )
    filename = f"users-{scope.tenant.domain_prefix}-{now:%Y%m%d}.csv"
    return StreamingResponse(
        _export(state, scope, chosen, selected, now),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/{tenant_id}/users/{user_id}", summary="One user, as seen from this account")
async def get_user(
    user_id: UUID, scope: ReadUsers, people: People, grants: Access, response: Response, now: Now
) -> UserItem:
    user = await people.visible(scope, user_id)
    (item,) = await describe(scope, [user], grants, now)
    with_etag(response, item)
    return item


@router.patch(
    "/{tenant_id}/users/{user_id}",
    summary="Edit a user's profile: names, phone, session timeout",
    responses=problem_responses(e.EmailImmutable, e.UserOutsideScope, e.PreconditionFailed),
)
async def patch_user(
    user_id: UUID,
    body: UserPatch,
    scope: WriteUsers,
    request: Request,
    response: Response,
    people: People,
    repo: Users,
    grants: Access,
    audit: Audit,
    now: Now,
) -> UserItem:
    await people.manageable(scope, user_id)
    current = await repo.lock(user_id)
    if current is None:
        raise e.NotFound()
    (before,) = await describe(scope, [current], grants, now)
    check_if_match(request, before)
    updated, changes = users.update_profile(current, body.model_dump(exclude_unset=True), now)
    if changes:
        await repo.update_profile(updated)
        await audit.record(
            scope.caller.actor,
            "user.updated",
            tenant=scope.tenant,
            target_type="user",
            target_id=user_id,
            changes=changes,
        )
    (item,) = await describe(scope, [updated], grants, now)
    with_etag(response, item)
    return item


@router.post(
    "/{tenant_id}/users/delete",
    summary="Delete users from this account and everything below it",
    responses=problem_responses(e.CannotDeleteSelf, e.LastAdmin, e.UserOutsideScope, e.BulkRefused),
)
async def delete_users(
    body: IdList,
    scope: DeleteUsers,
    locked: Locked,
    grants: Access,
    keys: ApiKeys,
    agents: Agents,
    audit: Audit,
    now: Now,
) -> Removed:
    scope = await locked(scope, Permission.USERS_DELETE)
    tenant = scope.tenant
    ids = list(dict.fromkeys(body.ids))
    changes = access.plan_removal(
        scope.caller,
        ids,
        context_id=tenant.id,
        root_id=tenant.root_id,
        visible=await grants.visible_from(tenant.id, tenant.root_id, ids, now),
        grants_here=await grants.grants_at_or_below(tenant.id, ids),
        root_admins=await grants.root_admins(tenant.root_id, now),
    )
    await grants.apply(changes, root_id=tenant.root_id, roles_by_key={}, now=now)
    at_root = tenant.parent_id is None
    # Their credentials stop at once: agents at or below the tenant; at the root, where they
    # leave the organization, their API keys for it too.
    ended = await agents.deregister_for(ids, tenant.id, now)
    revoked = await keys.revoke_for_users(ids, tenant.root_id, now) if at_root else []
    if at_root:
        await grants.remove_members(tenant.root_id, ids)
    for key in revoked:
        await audit.record(
            scope.caller.actor,
            "api_key.revoked",
            tenant=tenant,
            target_type="api_key",
            target_id=key.id,
            changes={"revoked_at": {"before": None, "after": now.isoformat()}},
        )
    for agent in ended:
        await audit.record(
            scope.caller.actor,
            "agent.deregistered",
            tenant=tenant,
            target_type="agent",
            target_id=agent.id,
            changes={"status": {"before": "registered", "after": "deregistered"}},
        )
    for user_id in ids:
        removed = [c for c in changes if c.user_id == user_id]
        await audit.record(
            scope.caller.actor,
            "user.deleted",
            tenant=tenant,
            target_type="user",
            target_id=user_id,
            changes={
                "grants": {
                    "before": [access.grant_changes(c)["roles"]["before"] for c in removed],
                    "after": [],
                },
                "tenants": {"before": [str(c.tenant_id) for c in removed], "after": []},
                "member": {"before": True, "after": not at_root},
            },
        )
    return Removed(deleted=ids, grants_removed=len(changes))
