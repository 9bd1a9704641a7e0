"""Roles (seeds 003, 004): the permission catalog, built-in and custom roles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Request, Response, status
from pydantic import BaseModel, Field

from access_api.dependencies import Audit, CurrentCaller, Locked, Now, Roles, State, requires
from access_api.domain import errors as e
from access_api.domain import roles as role_rules
from access_api.domain.access import Role, Scope
from access_api.domain.audit import created
from access_api.domain.permissions import DESCRIPTIONS, Permission
from access_api.errors import problem_responses
from access_api.ids import new_id
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
    with_etag,
)

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
    key: str = Field(pattern=role_rules.ROLE_KEY_PATTERN, examples=["quality_manager"])
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
    scope: ReadRoles, repo: Roles, state: State, limit: Limit = 50, cursor: Cursor = None
) -> ListPage[RoleOut]:
    page = await repo.list(
        scope.tenant.root_id, after=state.cursors.decode(cursor, "key"), limit=limit
    )
    return page_of(page, RoleOut.of, state.cursors, "key")


@router.post(
    "/{tenant_id}/roles",
    status_code=status.HTTP_201_CREATED,
    summary="Define a custom role, from the MSP account",
    responses=problem_responses(e.RoleKeyTaken, e.PrivilegeEscalation),
)
async def create_role(
    body: RoleCreate,
    scope: WriteRoles,
    locked: Locked,
    repo: Roles,
    audit: Audit,
    response: Response,
    now: Now,
) -> RoleOut:
    scope = await locked(scope, Permission.ROLES_WRITE)
    role = role_rules.new_role(
        id=new_id(),
        root_id=scope.tenant.root_id,
        key=body.key,
        name=body.name,
        permissions=body.permissions,
        now=now,
    )
    role_rules.ensure_can_define(scope, role.permissions)
    await repo.insert(role)
    await audit.record(
        scope.caller.actor,
        "role.created",
        tenant=scope.tenant,
        target_type="role",
        target_id=role.id,
        changes=created(role, ("key", "name", "permissions")),
    )
    response.headers["Location"] = f"/v1/tenants/{scope.tenant.id}/roles/{role.key}"
    return RoleOut.of(role)


async def _role(repo: Roles, scope: Scope, key: str, *, for_update: bool = False) -> Role:
    role = await repo.get(scope.tenant.root_id, key, for_update=for_update)
    if role is None:
        raise e.NotFound(f"no role {key!r} in this organization")
    return role


@router.get("/{tenant_id}/roles/{role_key}", summary="One role")
async def get_role(role_key: str, scope: ReadRoles, repo: Roles, response: Response) -> RoleOut:
    out = RoleOut.of(await _role(repo, scope, role_key))
    with_etag(response, out)
    return out


@router.patch(
    "/{tenant_id}/roles/{role_key}",
    summary="Rename a custom role or change its permissions",
    responses=problem_responses(e.RoleImmutable, e.PrivilegeEscalation, e.PreconditionFailed),
)
async def patch_role(
    role_key: str,
    body: RolePatch,
    scope: WriteRoles,
    locked: Locked,
    repo: Roles,
    audit: Audit,
    request: Request,
    response: Response,
    now: Now,
) -> RoleOut:
    scope = await locked(scope, Permission.ROLES_WRITE)
    current = await _role(repo, scope, role_key, for_update=True)
    check_if_match(request, RoleOut.of(current))
    updated, changes = role_rules.update_role(current, body.model_dump(exclude_unset=True), now)
    # Everyone holding the role gets its new permissions: the editor must hold them all.
    role_rules.ensure_can_define(scope, updated.permissions)
    if changes:
        await repo.update(updated)
        await audit.record(
            scope.caller.actor,
            "role.updated",
            tenant=scope.tenant,
            target_type="role",
            target_id=updated.id,
            changes=changes,
        )
    out = RoleOut.of(updated)
    with_etag(response, out)
    return out


@router.delete(
    "/{tenant_id}/roles/{role_key}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a custom role that nobody holds",
    responses=problem_responses(e.RoleImmutable, e.RoleInUse),
)
async def delete_role(
    role_key: str, scope: WriteRoles, locked: Locked, repo: Roles, audit: Audit
) -> None:
    scope = await locked(scope, Permission.ROLES_WRITE)
    role = await _role(repo, scope, role_key, for_update=True)
    role_rules.ensure_can_define(scope, role.permissions)
    role_rules.ensure_deletable(role, in_use=await repo.in_use(role.id))
    await repo.delete(role.id)
    await audit.record(
        scope.caller.actor,
        "role.deleted",
        tenant=scope.tenant,
        target_type="role",
        target_id=role.id,
        changes={"key": {"before": role.key, "after": None}},
    )
