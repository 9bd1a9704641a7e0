"""User API keys (seed 000): secrets that act as their user, in the one tree they were made in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from access_api.domain.access import Caller, Scope, require
from access_api.domain.audit import Changes
from access_api.domain.errors import (
    ApiKeyExpired,
    Conflict,
    FieldError,
    NotFound,
    PrivilegeEscalation,
    Unauthenticated,
    ValidationFailed,
)
from access_api.domain.permissions import Permission

PREFIX = "aak"
DISPLAY_PREFIX_LENGTH = 12  # "aak_" and 8 random characters: enough to tell keys apart
NAME_MAX_LENGTH = 100
DEFAULT_NAME = "API key"
# A key that outlives its purpose is a leak waiting to happen: expiry is at most two years out.
MAX_LIFETIME = timedelta(days=730)
# Two regenerations of one key this close together are one click sent twice (or a race).
REGENERATION_GAP = timedelta(seconds=10)

# Writing last_used_at on every call would turn every read made with a key into a write.
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    id: UUID
    root_id: UUID
    user_id: UUID
    name: str
    prefix: str
    created_by: UUID | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    permissions: frozenset[str] | None = None
    tenant_ids: frozenset[UUID] | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def ensure_can_manage_keys(scope: Scope, user_id: UUID) -> None:
    """Everyone manages their own keys; anyone else's need api_keys.manage where they act
    (and, checked apart, the downward-only rule)."""
    if scope.caller.user_id != user_id:
        require(scope, Permission.API_KEYS_MANAGE)


def display_prefix(secret: str) -> str:
    """The first characters of a secret, kept in clear so people can recognize their keys."""
    return secret[:DISPLAY_PREFIX_LENGTH]


def generate(
    *,
    id: UUID,
    root_id: UUID,
    user_id: UUID,
    name: str | None,
    expires_at: datetime | None,
    secret: str,
    created_by: UUID,
    now: datetime,
) -> ApiKey:
    """A new key: named for people (a default when none is given), and if it expires, only
    in the future (a key born dead is a mistake, not a wish)."""
    problems: list[FieldError] = []
    clean = (name if name is not None else DEFAULT_NAME).strip()
    if not clean or len(clean) > NAME_MAX_LENGTH:
        problems.append(
            FieldError("name", "invalid_name", f"must be 1-{NAME_MAX_LENGTH} characters")
        )
    if expires_at is not None and expires_at <= now:
        problems.append(FieldError("expires_at", "in_the_past", "must be in the future"))
    elif expires_at is not None and expires_at > now + MAX_LIFETIME:
        problems.append(
            FieldError("expires_at", "too_late", "at most two years from now (730 days)")
        )
    if problems:
        raise ValidationFailed(problems)
    return ApiKey(
        id=id,
        root_id=root_id,
        user_id=user_id,
        name=clean,
        prefix=display_prefix(secret),
        created_by=created_by,
        created_at=now,
        last_used_at=None,
        expires_at=expires_at,
        revoked_at=None,
    )


def regenerate(
    key: ApiKey, secret: str, now: datetime, last_regenerated_at: datetime | None = None
) -> ApiKey:
    """A new secret for a live key; the old one dies with the change. A revoked key is gone
    (absent); an expired one stays expired, so a new secret for it would be born dead. A key
    regenerated a moment ago (REGENERATION_GAP) is not regenerated again: of parallel
    regenerations exactly one wins, and the others are told (409) instead of each handing out
    a secret that a sibling kills a moment later."""
    if key.revoked_at is not None:
        raise NotFound("no such API key")
    if key.expired(now):
        raise ApiKeyExpired()
    if last_regenerated_at is not None and now - last_regenerated_at < REGENERATION_GAP:
        raise Conflict("this key was regenerated a moment ago; list it again")
    return replace(key, prefix=display_prefix(secret))


def revoke(key: ApiKey, now: datetime) -> ApiKey:
    """Revoked keys are gone: revoking one again finds nothing."""
    if key.revoked_at is not None:
        raise NotFound("no such API key")
    return replace(key, revoked_at=now)


def check_usable(key: ApiKey | None, *, member: bool, now: datetime) -> ApiKey:
    """A key works while it is neither revoked nor expired, and while its user still belongs
    to the tree it was made in (deletion at the root ends every key there at once)."""
    if key is None:
        raise Unauthenticated("unknown API key")
    if key.revoked_at is not None:
        raise Unauthenticated("this API key was revoked")
    if key.expired(now):
        raise Unauthenticated("this API key has expired")
    if not member:
        raise Unauthenticated("this API key's user no longer belongs to its organization")
    return key


def should_touch(key: ApiKey, now: datetime) -> bool:
    return key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL


def revoked_changes(key: ApiKey) -> Changes:
    return {
        "revoked_at": {
            "before": None,
            "after": key.revoked_at.isoformat() if key.revoked_at else None,
        }
    }


def scoped(
    key: ApiKey,
    *,
    caller: Caller,
    caller_permissions: frozenset[str],
    permissions: list[str] | None,
    tenant_ids: list[UUID] | None,
    reachable: frozenset[UUID],
) -> ApiKey:
    """A key may be narrowed: to some permissions (only ones the caller holds here: a key
    cannot carry what its maker lacks) and to some tenants (at or below the context). At use
    it can do no more than both its scope and its user's current roles allow. A scoped key
    making a key passes on its own scope when none is asked for: no key ever makes a wider
    one."""
    if permissions is None and caller.permission_limit is not None:
        permissions = sorted(caller.permission_limit)
    if tenant_ids is None and caller.tenant_limit is not None:
        tenant_ids = sorted(caller.tenant_limit)
        reachable = reachable | caller.tenant_limit
    problems: list[FieldError] = []
    wanted = None if permissions is None else frozenset(permissions)
    if wanted is not None:
        unknown = sorted(wanted - frozenset(Permission))
        if unknown:
            problems.append(
                FieldError("permissions", "unknown_permission", f"not in the catalog: {unknown}")
            )
        elif not wanted:
            problems.append(FieldError("permissions", "empty", "name at least one permission"))
    places = None if tenant_ids is None else frozenset(tenant_ids)
    if places is not None and not places:
        problems.append(FieldError("tenant_ids", "empty", "name at least one tenant"))
    if problems:
        raise ValidationFailed(problems)
    if wanted is not None and not wanted <= caller_permissions:
        missing = ", ".join(sorted(wanted - caller_permissions))
        raise PrivilegeEscalation(f"you would give the key permissions you do not hold: {missing}")
    if places is not None and not places <= reachable:
        raise NotFound(f"no account {', '.join(sorted(map(str, places - reachable)))} here")
    scoped_key = replace(key, permissions=wanted, tenant_ids=places)
    ensure_no_wider(caller, scoped_key)
    return scoped_key


def ensure_no_wider(caller: Caller, key: ApiKey) -> None:
    """A scoped key cannot make or re-key a key that could do more than itself."""
    limit = caller.permission_limit
    if limit is not None and (key.permissions is None or not key.permissions <= limit):
        raise PrivilegeEscalation("a scoped key cannot make or regenerate a wider key")
    places = caller.tenant_limit
    if places is not None and (key.tenant_ids is None or not key.tenant_ids <= places):
        raise PrivilegeEscalation("a key scoped to some accounts cannot reach beyond them")


def scope_changes(before: ApiKey | None, after: ApiKey) -> Changes:
    """A key's scope in the audit trail (only when it has one or it changed)."""
    changes: Changes = {}
    old_permissions = before.permissions if before else None
    old_tenants = before.tenant_ids if before else None
    if after.permissions != old_permissions:
        changes["permissions"] = {
            "before": sorted(old_permissions) if old_permissions is not None else None,
            "after": sorted(after.permissions) if after.permissions is not None else None,
        }
    if after.tenant_ids != old_tenants:
        changes["tenant_ids"] = {
            "before": sorted(map(str, old_tenants)) if old_tenants is not None else None,
            "after": sorted(map(str, after.tenant_ids)) if after.tenant_ids is not None else None,
        }
    return changes
