"""Roles: the built-in pair every tree has, and the custom roles an MSP defines (seeds 003, 004)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from access_api.domain.access import Role, Scope
from access_api.domain.audit import Changes, diff
from access_api.domain.errors import (
    FieldError,
    Forbidden,
    PrivilegeEscalation,
    RoleImmutable,
    RoleInUse,
    ValidationFailed,
)
from access_api.domain.permissions import ALL_PERMISSIONS

ROLE_KEY_PATTERN = r"^[a-z][a-z0-9_-]{1,63}$"
_ROLE_KEY = re.compile(ROLE_KEY_PATTERN)
ROLE_NAME_MAX_LENGTH = 100
ROLE_FIELDS = ("name", "permissions")


def ensure_can_define(scope: Scope, permissions: Iterable[str]) -> None:
    """Roles belong to the whole tree, so they are defined from the MSP account; and nobody
    defines a role with a permission they lack, or they could hand it out through the role."""
    if scope.tenant.parent_id is not None:
        raise Forbidden("roles are defined in the MSP account, for its whole tree")
    missing = frozenset(permissions) - scope.permissions
    if missing:
        raise PrivilegeEscalation(
            f"you would define a role with permissions you lack: {', '.join(sorted(missing))}"
        )


def _check_permissions(permissions: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(permissions)
    unknown = wanted - ALL_PERMISSIONS
    if unknown:
        raise ValidationFailed(
            [
                FieldError(
                    "permissions",
                    "unknown_permission",
                    f"not in the catalog (GET /v1/permissions): {', '.join(sorted(unknown))}",
                )
            ]
        )
    return wanted


def _check_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > ROLE_NAME_MAX_LENGTH:
        raise ValidationFailed(
            [FieldError("name", "invalid_name", f"must be 1-{ROLE_NAME_MAX_LENGTH} characters")]
        )
    return clean


def new_role(
    *,
    id: UUID,
    root_id: UUID,
    key: str,
    name: str,
    permissions: Iterable[str],
    now: datetime,
) -> Role:
    """A custom role: requests name roles by key, a slug unique in the tree."""
    if not _ROLE_KEY.fullmatch(key):
        raise ValidationFailed(
            [
                FieldError(
                    "key",
                    "invalid_role_key",
                    "2-64 characters: lowercase letters, digits, _ and -, starting with a letter",
                )
            ]
        )
    return Role(
        id=id,
        root_id=root_id,
        key=key,
        name=_check_name(name),
        permissions=_check_permissions(permissions),
        builtin=False,
        created_at=now,
        updated_at=now,
    )


def update_role(role: Role, fields: Mapping[str, object], now: datetime) -> tuple[Role, Changes]:
    """Rename a custom role or change its permissions; the built-in ones never change, and a
    key is what requests and grants refer to, so it stays."""
    if role.builtin:
        raise RoleImmutable(f"{role.key} is built in and cannot be changed")
    if "key" in fields and fields["key"] != role.key:
        raise ValidationFailed([FieldError("key", "immutable", "a role's key cannot change")])
    changed = role
    if "name" in fields:
        changed = replace(changed, name=_check_name(str(fields["name"])))
    if "permissions" in fields:
        value = fields["permissions"]
        permissions = value if isinstance(value, list | tuple | set | frozenset) else []
        changed = replace(changed, permissions=_check_permissions(str(p) for p in permissions))
    changes = diff(role, changed, ROLE_FIELDS)
    if changes:
        changed = replace(changed, updated_at=now)
    return changed, changes


def ensure_deletable(role: Role, *, in_use: bool) -> None:
    """Built-in roles stay; a role still granted, or offered by a pending invitation, stays
    until it is removed from every grant, so nobody's access changes by surprise."""
    if role.builtin:
        raise RoleImmutable(f"{role.key} is built in and cannot be deleted")
    if in_use:
        raise RoleInUse(f"{role.key} is still granted or offered; remove it from every grant first")
