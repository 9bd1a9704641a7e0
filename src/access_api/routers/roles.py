"""Roles (seeds 003, 004): the permission catalog, built-in and custom roles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Request, Response, status
from pydantic import BaseModel, Field

from access_api.dependencies import CurrentCaller, Work, requires
from access_api.domain import errors as e
from access_api.domain import roles as role_rules
from access_api.domain.access import Role, Scope
from access_api.domain.permissions import DESCRIPTIONS, Permission
from access_api.errors import problem_responses
from access_api.routers.common import (
    AUTHENTICATED_PROBLEMS,
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    check_if_match,
    page_of,
    tagged,
)
from access_api.use_cases import roles

router = api_router(prefix="/v1/tenants", tags=["roles"], responses=SCOPED_PROBLEMS)
catalog = api_router(prefix="/v1/permissions", tags=["roles"], responses=AUTHENTICATED_PROBLEMS)

ReadRoles = Annotated[Scope, requires(Permission.TENANTS_READ)]
WriteRoles = Annotated[Scope, requires(Permission.ROLES_WRITE)]


class PermissionOut(BaseModel):
    key: str
    description: str


class RoleOut(BaseModel):
    key: str
    name: str
    permissions: list[str]
    builtin: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, role: Role) -> RoleOut:
        return cls(
            key=role.key,
            name=role.name,
            permissions=sorted(role.permissions),
            builtin=role.builtin,
            created_at=role.created_at,
            updated_at=role.updated_at,
        )


class RoleCreate(Body):
    key: str = Field(pattern=role_rules.ROLE_KEY_PATTERN, examples=["quality-manager"])
    name: str = Field(min_length=1, max_length=role_rules.ROLE_NAME_MAX_LENGTH)
    permissions: list[str] = Field(max_length=64)


class RolePatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=role_rules.ROLE_NAME_MAX_LENGTH)
    permissions: list[str] | None = Field(default=None, max_length=64)
    key: str | None = Field(default=None, description="Fixed: only the current value is accepted")


@catalog.get("", summary="The permission catalog")
async def list_permissions(caller: CurrentCaller) -> list[PermissionOut]:
    return [PermissionOut(key=p.value, description=DESCRIPTIONS[p]) for p in Permission]


@router.get("/{tenant_id}/roles", summary="Roles of this organization: built-in and custom")
async def list_roles(
    scope: ReadRoles, work: Work, limit: Limit = 50, cursor: Cursor = None
) -> ListPage[RoleOut]:
    after = work.state.cursors.decode(cursor, "key")
    page = await roles.list_roles(work, scope, after=after, limit=limit)
    return page_of(page, RoleOut.of, work.state.cursors, "key")


@router.post(
    "/{tenant_id}/roles",
    status_code=status.HTTP_201_CREATED,
    summary="Define a custom role, from the MSP account",
    responses=problem_responses(e.RoleKeyTaken, e.PrivilegeEscalation),
)
async def create_role(
    body: RoleCreate, scope: WriteRoles, work: Work, response: Response
) -> RoleOut:
    role = await roles.create(
        work, scope, key=body.key, name=body.name, permissions=body.permissions
    )
    response.headers["Location"] = f"/v1/tenants/{scope.tenant.id}/roles/{role.key}"
    return RoleOut.of(role)


@router.get("/{tenant_id}/roles/{role_key}", summary="One role", response_model=RoleOut)
async def get_role(role_key: str, scope: ReadRoles, work: Work) -> Response:
    return tagged(RoleOut.of(await roles.get(work, scope, role_key)))


@router.patch(
    "/{tenant_id}/roles/{role_key}",
    summary="Rename a custom role or change its permissions",
    responses=problem_responses(e.RoleImmutable, e.PrivilegeEscalation, e.PreconditionFailed),
    response_model=RoleOut,
)
async def patch_role(
    role_key: str,
    body: RolePatch,
    scope: WriteRoles,
    work: Work,
    request: Request,
) -> Response:
    updated = await roles.update(
        work,
        scope,
        role_key,
        body.model_dump(exclude_unset=True),
        precondition=lambda current: check_if_match(request, RoleOut.of(current)),
    )
    return tagged(RoleOut.of(updated))


@router.delete(
    "/{tenant_id}/roles/{role_key}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a custom role that nobody holds",
    responses=problem_responses(e.RoleImmutable, e.RoleInUse),
)
async def delete_role(role_key: str, scope: WriteRoles, work: Work) -> None:
    await roles.delete(work, scope, role_key)
