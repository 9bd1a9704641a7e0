"""User API keys (seed 000): list, generate, regenerate, revoke, bulk revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Path, status
from pydantic import AwareDatetime, BaseModel, Field

from access_api.dependencies import Work, requires
from access_api.domain import api_keys as key_rules
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.api_keys import ApiKey
from access_api.domain.permissions import Permission
from access_api.errors import problem_responses
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
from access_api.use_cases import api_keys
from access_api.use_cases.api_keys import KeyScope, KeyWithSecret

router = api_router(prefix="/v1/tenants", tags=["api keys"], responses=SCOPED_PROBLEMS)

UserId = Annotated[UUID, Path(description="The user whose keys these are")]
KeyId = Annotated[UUID, Path(description="One of the user's API keys")]
ManageKeys = Annotated[Scope, requires(Permission.API_KEYS_MANAGE)]
# A caller may manage their own keys without api_keys.manage: the use case decides.
Acting = Annotated[Scope, requires(None)]
PERSON_PROBLEMS = (e.UserOutsideScope, e.NotFound, e.Forbidden)

ApiKeySort = Literal["created_at", "-created_at", "name", "-name"]


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

    @classmethod
    def of_new(cls, made: KeyWithSecret) -> ApiKeySecret:
        return cls(**ApiKeyOut.of(made.key).model_dump(), key=made.secret)


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

    def wanted(self) -> KeyScope | None:
        """The scope asked for; None when the request names none (regenerate keeps it)."""
        if not self.model_fields_set:
            return None
        return KeyScope(permissions=self.permissions, tenant_ids=self.tenant_ids)


class ApiKeyCreate(ApiKeyScope):
    name: str | None = Field(default=None, max_length=key_rules.NAME_MAX_LENGTH)
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working; none: until revoked"
    )


class UserIdList(Body):
    user_ids: list[UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


class RevokedKeys(BaseModel):
    items: list[ApiKeyOut] = Field(description="Every key this request revoked")


# --- routes ----------------------------------------------------------------------------------


@router.get(
    "/{tenant_id}/users/{user_id}/api-keys",
    summary="List a user's API keys (not the revoked ones)",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def list_api_keys(
    user_id: UserId,
    scope: Acting,
    work: Work,
    sort: ApiKeySort = "-created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[ApiKeyOut]:
    field, descending = split_sort(sort)
    after = work.state.cursors.decode(cursor, sort)
    page = await api_keys.list_live(
        work, scope, user_id, sort=field, descending=descending, after=after, limit=limit
    )
    return page_of(page, ApiKeyOut.of, work.state.cursors, sort)


@router.post(
    "/{tenant_id}/users/{user_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Generate an API key (the secret is in this answer, and only here)",
    responses=problem_responses(*PERSON_PROBLEMS, e.PrivilegeEscalation),
)
async def generate_api_key(
    body: ApiKeyCreate, user_id: UserId, scope: Acting, work: Work
) -> ApiKeySecret:
    made = await api_keys.generate(
        work,
        scope,
        user_id,
        name=body.name,
        expires_at=body.expires_at,
        scope_of_key=KeyScope(permissions=body.permissions, tenant_ids=body.tenant_ids),
    )
    return ApiKeySecret.of_new(made)


@router.post(
    "/{tenant_id}/users/{user_id}/api-keys/{key_id}/regenerate",
    summary="Give a key a new secret; the old one stops working at once",
    responses=problem_responses(
        *PERSON_PROBLEMS, e.ApiKeyExpired, e.Conflict, e.PrivilegeEscalation
    ),
)
async def regenerate_api_key(
    user_id: UserId, key_id: KeyId, scope: Acting, work: Work, body: ApiKeyScope | None = None
) -> ApiKeySecret:
    rescoped = body.wanted() if body is not None else None
    made = await api_keys.regenerate(work, scope, user_id, key_id, scope_of_key=rescoped)
    return ApiKeySecret.of_new(made)


@router.delete(
    "/{tenant_id}/users/{user_id}/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    responses=problem_responses(*PERSON_PROBLEMS),
)
async def revoke_api_key(user_id: UserId, key_id: KeyId, scope: Acting, work: Work) -> None:
    await api_keys.revoke(work, scope, user_id, key_id)


@router.post(
    "/{tenant_id}/api-keys/revoke",
    summary="Revoke every API key of these users (atomic: all of them, or none)",
    responses=problem_responses(e.BulkRefused, e.UserOutsideScope),
)
async def revoke_users_api_keys(body: UserIdList, scope: ManageKeys, work: Work) -> RevokedKeys:
    revoked = await api_keys.revoke_for_users(work, scope, body.user_ids)
    return RevokedKeys(items=[ApiKeyOut.of(key) for key in revoked])
