"""Users seen from a tenant's context (seeds 000, 003): list, view, edit, delete, export."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from access_api.dependencies import State, Work, requires
from access_api.domain import errors as e
from access_api.domain import users
from access_api.domain.access import Scope
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.permissions import Permission
from access_api.domain.users import TwoFactor
from access_api.errors import problem_responses
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    IdList,
    Limit,
    ListPage,
    Phone,
    UserOut,
    api_router,
    check_if_match,
    page_of,
    split_sort,
    tagged,
)
from access_api.use_cases import users as user_cases

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


class UserItem(UserOut):
    roles: list[str] = Field(
        description="Roles that apply on this account, granted here or inherited from above"
    )
    status: UserStatus = Field(
        description="no_access: a member of the organization with no role left (seed 003)"
    )

    @classmethod
    def seen(cls, seen: user_cases.Seen) -> UserItem:
        return cls(
            **UserOut.of(seen.user).model_dump(),
            roles=seen.roles,
            status="active" if seen.active else "no_access",
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

    @classmethod
    def of(cls, removal: user_cases.Removal) -> Removed:
        return cls(deleted=removal.deleted, grants_removed=len(removal.grants_removed))


@router.get("/{tenant_id}/users", summary="Users with access to this account or below it")
async def list_users(
    scope: ReadUsers,
    work: Work,
    state: State,
    q: Annotated[
        str | None,
        Query(max_length=users.SEARCH_MAX_LENGTH, description="Part of the email or a name"),
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
    page = await user_cases.list_visible(
        work,
        scope,
        q=q,
        role=role,
        two_factor=two_factor,
        sort=field,
        descending=descending,
        after=state.cursors.decode(cursor, sort),
        limit=limit,
    )
    return page_of(page, UserItem.seen, state.cursors, sort)


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


class _ClosingStream(StreamingResponse):
    """Closes its body as the response ends, a client that left mid-body included: the
    export's statement ends and its connection goes back then, not whenever the garbage
    collector finalizes the abandoned generator."""

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


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
    work: Work,
    columns: Annotated[
        str | None,
        Query(description=f"Comma-separated, from: {', '.join(users.EXPORT_COLUMNS)}; default all"),
    ] = None,
    ids: Annotated[
        list[str] | None, Query(description="Only these users (repeat, or comma-separate)")
    ] = None,
) -> StreamingResponse:
    export = await user_cases.export(work, scope, columns, _parse_ids(ids))
    filename = f"users-{scope.tenant.domain_prefix}-{work.now:%Y%m%d}.csv"
    return _ClosingStream(
        export.chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{tenant_id}/users/{user_id}",
    summary="One user, as seen from this account",
    response_model=UserItem,
)
async def get_user(user_id: UUID, scope: ReadUsers, work: Work) -> Response:
    return tagged(UserItem.seen(await user_cases.get(work, scope, user_id)))


@router.patch(
    "/{tenant_id}/users/{user_id}",
    summary="Edit a user's profile: names, phone, session timeout",
    responses=problem_responses(e.EmailImmutable, e.UserOutsideScope, e.PreconditionFailed),
    response_model=UserItem,
)
async def patch_user(
    user_id: UUID,
    body: UserPatch,
    scope: WriteUsers,
    request: Request,
    work: Work,
) -> Response:
    updated = await user_cases.update_profile(
        work,
        scope,
        user_id,
        body.model_dump(exclude_unset=True),
        expect=lambda current: check_if_match(request, UserItem.seen(current)),
    )
    return tagged(UserItem.seen(updated))


@router.post(
    "/{tenant_id}/users/delete",
    summary="Delete users from this account and everything below it",
    responses=problem_responses(e.CannotDeleteSelf, e.LastAdmin, e.UserOutsideScope, e.BulkRefused),
)
async def delete_users(body: IdList, scope: DeleteUsers, work: Work) -> Removed:
    return Removed.of(await user_cases.delete(work, scope, body.ids))
