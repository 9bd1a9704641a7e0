"""User API keys (seed 000): list, generate, regenerate, revoke, bulk revoke; keys as callers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Path, status
from pydantic import AwareDatetime, BaseModel, Field

from access_api.dependencies import (
    Access,
    ApiKeys,
    Audit,
    CurrentCaller,
    Now,
    People,
    State,
    TenantId,
    Tenants,
    requires,
)
from access_api.domain import access, api_keys
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.api_keys import ApiKey
from access_api.domain.audit import created
from access_api.domain.permissions import Permission
from access_api.errors import problem_responses
from access_api.ids import new_id
from access_api.repositories.api_keys import ApiKeyRepository
from access_api.routers.common import (
    MAX_BULK_IDS,
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
    split_sort,
)
from access_api.services.keyring import new_token

router = api_router(prefix="/v1/tenants", tags=["api keys"], responses=SCOPED_PROBLEMS)

UserId = Annotated[UUID, Path(description="The user whose keys these are")]
KeyId = Annotated[UUID, Path(description="One of the user's API keys")]
ManageKeys = Annotated[Scope, requires(Permission.API_KEYS_MANAGE)]
CREATED_FIELDS = ("user_id", "name", "prefix", "expires_at")
PERSON_PROBLEMS = (e.UserOutsideScope, e.NotFound, e.Forbidden)

ApiKeySort = Literal["created_at", "-created_at", "name", "-name"]


# --- keys as credentials --------------------------------------------------------------------


# --- the scope: a caller may manage their own keys without api_keys.manage ------------------


async def _acting(tenant_id: TenantId, caller: CurrentCaller, repo: Access, now: Now) -> Scope:
    """The caller's scope in {tenant_id}, demanding no permission: the route decides."""
    facts = await repo.scope_facts(caller, tenant_id, now)
    return access.resolve_scope(caller, facts, now)


Acting = Annotated[Scope, Depends(_acting)]


# --- bodies and answers ----------------------------------------------------------------------


class ApiKeyOut(BaseModel):
    id: UUID
    user_id: UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognize it by")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    expires_at: datetime | None
    revoked_at: datetime | None
    permissions: list[str] | None = Field(
        default=None, description="The most this key may do (null: all its user may)"
    )
    tenant_ids: list[UUID] | None = Field(
        default=None, description="Where it works: these accounts and below (null: everywhere)"
    )

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            user_id=key.user_id,
            name=key.name,
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            permissions=sorted(key.permissions) if key.permissions is not None else None,
            tenant_ids=sorted(key.tenant_ids) if key.tenant_ids is not None else None,
        )


class ApiKeySecret(ApiKeyOut):
    key: str = Field(
        description="The secret, shown this once: send it as Authorization: Bearer <key>"
    )


class ApiKeyScope(Body):
    permissions: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Narrow the key to these permissions (ones you hold here); null: all "
        "its user's",
    )
    tenant_ids: list[UUID] | None = Field(
        default=None,
        max_length=100,
        description="Narrow the key to these accounts and below (at or below this one)",
    )


class ApiKeyCreate(ApiKeyScope):
    name: str | None = Field(default=None, max_length=api_keys.NAME_MAX_LENGTH)
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working; none: until revoked"
    )


class UserIdList(Body):
    user_ids: list[UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


class RevokedKeys(BaseModel):
    items: list[ApiKeyOut] = Field(description="Every key this request revoked")


async def _key(
    keys: ApiKeyRepository, key_id: UUID, user_id: UUID, scope: Scope
) -> tuple[ApiKey, str]:
    """One of the user's keys in this tree, with its current digest, or 404."""
    found = await keys.get(key_id, user_id, scope.tenant.root_id)
    if found is None:
        raise e.NotFound("no such API key")
    return found


async def _scoped(key: ApiKey, body: ApiKeyScope, scope: Scope, tenants: Tenants) -> ApiKey:
    return api_keys.scoped(
        key,
        caller=scope.caller,
        caller_permissions=scope.permissions,
        permissions=body.permissions,
        tenant_ids=body.tenant_ids,
        reachable=await tenants.at_or_below(scope.tenant.id, body.tenant_ids or []),
    )


# --- routes ----------------------------------------------------------------------------------


@router.get(
    "/{tenant_id}/users/{user_id}/api-keys",
    summary="List a user's API keys (not the revoked ones)",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def list_api_keys(
    user_id: UserId,
    scope: Acting,
    people: People,
    keys: ApiKeys,
    state: State,
    sort: ApiKeySort = "-created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[ApiKeyOut]:
    api_keys.ensure_can_manage_keys(scope, user_id)
    user = await people.manageable(scope, user_id)
    field, descending = split_sort(sort)
    page = await keys.list_live(
        user.id,
        scope.tenant.root_id,
        sort=field,
        descending=descending,
        after=state.cursors.decode(cursor, sort),
        limit=limit,
    )
    return page_of(page, ApiKeyOut.of, state.cursors, sort)


@router.post(
    "/{tenant_id}/users/{user_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Generate an API key (the secret is in this answer, and only here)",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def generate_api_key(
    body: ApiKeyCreate,
    user_id: UserId,
    scope: Acting,
    tenants: Tenants,
    people: People,
    keys: ApiKeys,
    state: State,
    audit: Audit,
    now: Now,
) -> ApiKeySecret:
    api_keys.ensure_can_manage_keys(scope, user_id)
    user = await people.manageable(scope, user_id)
    secret = new_token(api_keys.PREFIX)
    key = api_keys.generate(
        id=new_id(),
        root_id=scope.tenant.root_id,
        user_id=user.id,
        name=body.name,
        expires_at=body.expires_at,
        secret=secret,
        created_by=scope.caller.user_id,
        now=now,
    )
    key = await _scoped(key, body, scope, tenants)
    await keys.insert(key, state.keyring.digest(secret))
    await audit.record(
        scope.caller.actor,
        "api_key.created",
        tenant=scope.tenant,
        target_type="api_key",
        target_id=key.id,
        changes=created(key, CREATED_FIELDS) | api_keys.scope_changes(None, key),
    )
    return ApiKeySecret(**ApiKeyOut.of(key).model_dump(), key=secret)


@router.post(
    "/{tenant_id}/users/{user_id}/api-keys/{key_id}/regenerate",
    summary="Give a key a new secret; the old one stops working at once",
    responses=problem_responses(*PERSON_PROBLEMS, e.ApiKeyExpired, e.Conflict),
)
async def regenerate_api_key(
    user_id: UserId,
    key_id: KeyId,
    scope: Acting,
    tenants: Tenants,
    people: People,
    keys: ApiKeys,
    state: State,
    audit: Audit,
    now: Now,
    body: ApiKeyScope | None = None,
) -> ApiKeySecret:
    api_keys.ensure_can_manage_keys(scope, user_id)
    user = await people.manageable(scope, user_id)
    before, old_digest = await _key(keys, key_id, user.id, scope)
    secret = new_token(api_keys.PREFIX)
    key = api_keys.regenerate(before, secret, now)
    if body is not None and body.model_fields_set:
        key = await _scoped(key, body, scope, tenants)
    api_keys.ensure_no_wider(scope.caller, key)
    if not await keys.replace_secret(
        key, old_digest=old_digest, new_digest=state.keyring.digest(secret)
    ):
        raise e.Conflict("this key was regenerated or revoked at the same moment; list it again")
    await audit.record(
        scope.caller.actor,
        "api_key.regenerated",
        tenant=scope.tenant,
        target_type="api_key",
        target_id=key.id,
        changes={"prefix": {"before": before.prefix, "after": key.prefix}}
        | api_keys.scope_changes(before, key),
    )
    return ApiKeySecret(**ApiKeyOut.of(key).model_dump(), key=secret)


@router.delete(
    "/{tenant_id}/users/{user_id}/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def revoke_api_key(
    user_id: UserId,
    key_id: KeyId,
    scope: Acting,
    people: People,
    keys: ApiKeys,
    audit: Audit,
    now: Now,
) -> None:
    api_keys.ensure_can_manage_keys(scope, user_id)
    user = await people.manageable(scope, user_id)
    before, _ = await _key(keys, key_id, user.id, scope)
    key = api_keys.revoke(before, now)
    if not await keys.revoke(key.id, now):
        raise e.NotFound("no such API key")  # revoked by a parallel request a moment ago
    await audit.record(
        scope.caller.actor,
        "api_key.revoked",
        tenant=scope.tenant,
        target_type="api_key",
        target_id=key.id,
        changes=api_keys.revoked_changes(key),
    )


@router.post(
    "/{tenant_id}/api-keys/revoke",
    summary="Revoke every API key of these users (atomic: all of them, or none)",
    responses=problem_responses(e.BulkRefused, e.UserOutsideScope),
)
async def revoke_users_api_keys(
    body: UserIdList,
    scope: ManageKeys,
    people: People,
    keys: ApiKeys,
    audit: Audit,
    now: Now,
) -> RevokedKeys:
    user_ids = list(dict.fromkeys(body.user_ids))
    refused: list[e.ItemError] = []
    for user_id in user_ids:
        try:
            await people.manageable(scope, user_id)
        except e.DomainError as refusal:
            refused.append(e.ItemError(user_id, refusal))
    e.raise_if_any(refused)
    revoked = await keys.revoke_for_users(user_ids, scope.tenant.root_id, now)
    for key in revoked:
        await audit.record(
            scope.caller.actor,
            "api_key.revoked",
            tenant=scope.tenant,
            target_type="api_key",
            target_id=key.id,
            changes=api_keys.revoked_changes(key),
        )
    return RevokedKeys(items=[ApiKeyOut.of(key) for key in revoked])
