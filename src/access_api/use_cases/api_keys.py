"""User API keys: list, generate, regenerate, revoke one, revoke every key of some users."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from access_api.domain import api_keys
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.api_keys import ApiKey
from access_api.domain.audit import Action, created
from access_api.domain.users import User
from access_api.ids import new_id
from access_api.pagination import After, Page
from access_api.services.keyring import new_token
from access_api.use_cases.work import Work

CREATED_FIELDS = ("user_id", "name", "prefix", "expires_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyScope:
    """What a key is narrowed to: permissions and tenants (None: not narrowed)."""

    permissions: list[str] | None = None
    tenant_ids: list[UUID] | None = None


async def _scoped(work: Work, scope: Scope, key: ApiKey, wanted: KeyScope) -> ApiKey:
    return api_keys.scoped(
        key,
        caller=scope.caller,
        caller_permissions=scope.permissions,
        permissions=wanted.permissions,
        tenant_ids=wanted.tenant_ids,
        reachable=await work.tenants.at_or_below(scope.tenant.id, wanted.tenant_ids or []),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyWithSecret:
    """A key and its secret, which is shown this once."""

    key: ApiKey
    secret: str


async def _owner(work: Work, scope: Scope, user_id: UUID) -> User:
    """The keys' owner, as someone the caller may manage keys for from here."""
    api_keys.ensure_can_manage_keys(scope, user_id)
    return await work.manageable_user(scope, user_id)


async def _key(work: Work, scope: Scope, user: User, key_id: UUID) -> tuple[ApiKey, str]:
    """One of the user's keys in this tree, with its current digest, or 404."""
    found = await work.api_keys.get(key_id, user.id, scope.tenant.root_id)
    if found is None:
        raise e.NotFound("no such API key")
    return found


async def list_live(
    work: Work,
    scope: Scope,
    user_id: UUID,
    *,
    sort: str,
    descending: bool,
    after: After | None,
    limit: int,
) -> Page[ApiKey]:
    user = await _owner(work, scope, user_id)
    return await work.api_keys.list_live(
        user.id, scope.tenant.root_id, sort=sort, descending=descending, after=after, limit=limit
    )


async def generate(
    work: Work,
    scope: Scope,
    user_id: UUID,
    *,
    name: str | None,
    expires_at: datetime | None,
    scope_of_key: KeyScope | None = None,
) -> KeyWithSecret:
    """A new key for a user; narrowed to some permissions and tenants when asked (or when
    made by a scoped key, which passes its own scope on)."""
    user = await _owner(work, scope, user_id)
    secret = new_token(api_keys.PREFIX)
    key = api_keys.generate(
        id=new_id(),
        root_id=scope.tenant.root_id,
        user_id=user.id,
        name=name,
        expires_at=expires_at,
        secret=secret,
        created_by=scope.caller.user_id,
        now=work.now,
    )
    key = await _scoped(work, scope, key, scope_of_key or KeyScope())
    await work.api_keys.insert(key, work.keyring.digest(secret))
    await work.record(
        scope.caller.actor,
        Action.API_KEY_CREATED,
        tenant=scope.tenant,
        target_id=key.id,
        changes=created(key, CREATED_FIELDS) | api_keys.scope_changes(None, key),
    )
    return KeyWithSecret(key=key, secret=secret)


async def regenerate(
    work: Work,
    scope: Scope,
    user_id: UUID,
    key_id: UUID,
    *,
    scope_of_key: KeyScope | None = None,
) -> KeyWithSecret:
    """A new secret for a key, re-scoped when asked; of parallel regenerations, one wins and
    the others learn it. A scoped key cannot re-key a wider one."""
    user = await _owner(work, scope, user_id)
    before, old_digest = await _key(work, scope, user, key_id)
    # Read after the key: a sibling that committed before our read is seen here too.
    last = await work.api_keys.last_regenerated_at(before.id)
    secret = new_token(api_keys.PREFIX)
    key = api_keys.regenerate(before, secret, work.now, last)
    if scope_of_key is not None:
        key = await _scoped(work, scope, key, scope_of_key)
    api_keys.ensure_no_wider(scope.caller, key)
    if not await work.api_keys.replace_secret(
        key, old_digest=old_digest, new_digest=work.keyring.digest(secret)
    ):
        raise e.Conflict("this key was regenerated or revoked at the same moment; list it again")
    await work.record(
        scope.caller.actor,
        Action.API_KEY_REGENERATED,
        tenant=scope.tenant,
        target_id=key.id,
        changes={"prefix": {"before": before.prefix, "after": key.prefix}}
        | api_keys.scope_changes(before, key),
    )
    return KeyWithSecret(key=key, secret=secret)


async def revoke(work: Work, scope: Scope, user_id: UUID, key_id: UUID) -> ApiKey:
    user = await _owner(work, scope, user_id)
    before, _ = await _key(work, scope, user, key_id)
    key = api_keys.revoke(before, work.now)
    if not await work.api_keys.revoke(key.id, work.now):
        raise e.NotFound("no such API key")  # revoked by a parallel request a moment ago
    await work.record(
        scope.caller.actor,
        Action.API_KEY_REVOKED,
        tenant=scope.tenant,
        target_id=key.id,
        changes=api_keys.revoked_changes(key),
    )
    return key


async def revoke_for_users(work: Work, scope: Scope, user_ids: list[UUID]) -> list[ApiKey]:
    """Every live key of these users in this tree; atomic: one user the caller may not manage
    from here refuses them all, naming every such user."""
    ids = list(dict.fromkeys(user_ids))
    refused: list[e.ItemError] = []
    for user_id in ids:
        try:
            await work.manageable_user(scope, user_id)
        except e.DomainError as refusal:
            refused.append(e.ItemError(user_id, refusal))
    e.raise_if_any(refused)
    revoked = await work.api_keys.revoke_for_users(ids, scope.tenant.root_id, work.now)
    for key in revoked:
        await work.record(
            scope.caller.actor,
            Action.API_KEY_REVOKED,
            tenant=scope.tenant,
            target_id=key.id,
            changes=api_keys.revoked_changes(key),
        )
    return revoked
