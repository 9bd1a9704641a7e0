"""Tenants: the MSP tree, its fixed shape, and the rules for adding, editing, removing accounts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from access_api.domain.audit import Changes, diff
from access_api.domain.errors import (
    CannotDisableRoot,
    ConfirmationRequired,
    FieldError,
    HasChildren,
    InvalidParent,
    ItemError,
    NotFound,
    TenantImmutableField,
    ValidationFailed,
    raise_if_any,
)


class TenantKind(StrEnum):
    MSP = "msp"
    MULTI_CLIENT = "multi_client"
    CLIENT = "client"


class TenantStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


# An msp owns multi-clients and clients, a multi-client owns clients, a client owns none.
ALLOWED_CHILDREN: Mapping[TenantKind, frozenset[TenantKind]] = {
    TenantKind.MSP: frozenset({TenantKind.MULTI_CLIENT, TenantKind.CLIENT}),
    TenantKind.MULTI_CLIENT: frozenset({TenantKind.CLIENT}),
    TenantKind.CLIENT: frozenset(),
}

DOMAIN_PREFIX_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]$"
_DOMAIN_PREFIX = re.compile(DOMAIN_PREFIX_PATTERN)
NAME_MAX_LENGTH = 200
DOMAIN_PREFIX_MIN_LENGTH = 3
DOMAIN_PREFIX_MAX_LENGTH = 63  # a DNS label
# Search text over names and domain prefixes: no longer than a name.
SEARCH_MAX_LENGTH = NAME_MAX_LENGTH
ADDRESS_MAX_LENGTH = 500
DELETE_CONFIRMATION = "delete"
MUTABLE_FIELDS = ("name", "street_address")
IMMUTABLE_FIELDS = ("kind", "domain_prefix")


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    id: UUID
    root_id: UUID
    parent_id: UUID | None
    kind: TenantKind
    name: str
    domain_prefix: str
    street_address: str | None
    status: TenantStatus
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Subtree:
    """A tenant below the caller's context, with every live tenant below it."""

    tenant: Tenant
    descendant_ids: frozenset[UUID]


def check_domain_prefix(value: str) -> str:
    """A domain prefix is a lowercase DNS label: 3-63 of [a-z0-9-], no hyphen at either end."""
    if not _DOMAIN_PREFIX.fullmatch(value):
        raise ValidationFailed(
            [
                FieldError(
                    "domain_prefix",
                    "invalid_domain_prefix",
                    "must be 3-63 lowercase letters, digits or hyphens, "
                    "not starting or ending with a hyphen",
                )
            ]
        )
    return value


def check_name(value: str, field: str = "name") -> str:
    name = value.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise ValidationFailed(
            [FieldError(field, "invalid_name", f"must be 1-{NAME_MAX_LENGTH} characters")]
        )
    return name


def new_root(*, id: UUID, name: str, domain_prefix: str, now: datetime) -> Tenant:
    """An MSP is the root of its own tree."""
    return Tenant(
        id=id,
        root_id=id,
        parent_id=None,
        kind=TenantKind.MSP,
        name=check_name(name),
        domain_prefix=check_domain_prefix(domain_prefix),
        street_address=None,
        status=TenantStatus.ENABLED,
        created_at=now,
        updated_at=now,
    )


def new_child(
    parent: Tenant,
    *,
    id: UUID,
    kind: TenantKind,
    name: str,
    domain_prefix: str,
    street_address: str | None,
    now: datetime,
) -> Tenant:
    """A client has no children and a multi-client lives only directly under an MSP."""
    if kind not in ALLOWED_CHILDREN[parent.kind]:
        raise InvalidParent(f"a {parent.kind} account cannot own a {kind} account")
    return Tenant(
        id=id,
        root_id=parent.root_id,
        parent_id=parent.id,
        kind=kind,
        name=check_name(name),
        domain_prefix=check_domain_prefix(domain_prefix),
        street_address=_clean_address(street_address),
        status=TenantStatus.ENABLED,
        created_at=now,
        updated_at=now,
    )


def update(tenant: Tenant, fields: Mapping[str, object], now: datetime) -> tuple[Tenant, Changes]:
    """Apply a partial update. Kind and domain prefix are fixed at creation (seed 002): sending
    them back unchanged is harmless, sending another value is refused."""
    for field in IMMUTABLE_FIELDS:
        if field in fields and fields[field] != getattr(tenant, field):
            raise TenantImmutableField(
                f"{field} cannot be changed; delete the account and create it again"
            )
    changed = tenant
    if "name" in fields:
        changed = replace(changed, name=check_name(str(fields["name"])))
    if "street_address" in fields:
        address = fields["street_address"]
        changed = replace(changed, street_address=_clean_address(_optional_str(address)))
    changes = diff(tenant, changed, MUTABLE_FIELDS)
    if changes:
        changed = replace(changed, updated_at=now)
    return changed, changes


def plan_status_change(
    ids: Sequence[UUID],
    reachable: Mapping[UUID, Tenant],
    status: TenantStatus,
    now: datetime,
    *,
    root_id: UUID | None = None,
) -> list[tuple[Tenant, Tenant]]:
    """Disable or enable accounts below the context. Every id must be reachable; those already
    in the wanted state are left as they are. The MSP root is never disabled: it would shut
    out everyone, including whoever could enable it again. Returns (before, after) of those
    that change."""
    root_refusal = CannotDisableRoot() if status is TenantStatus.DISABLED else NotFound()
    raise_if_any(
        [
            ItemError(i, root_refusal if i == root_id else NotFound())
            for i in unique(ids)
            if i not in reachable
        ]
    )
    return [
        (reachable[i], replace(reachable[i], status=status, updated_at=now))
        for i in unique(ids)
        if reachable[i].status != status
    ]


def plan_deletion(
    ids: Sequence[UUID],
    reachable: Mapping[UUID, Subtree],
    *,
    confirm: str | None,
    cascade: bool,
) -> list[Tenant]:
    """Deleting is deliberate: it needs confirm "delete" (seed 002), and an account with live
    accounts below it goes only with cascade, taking them along. Returns the targets."""
    if confirm != DELETE_CONFIRMATION:
        raise ConfirmationRequired()
    errors: list[ItemError] = []
    for tenant_id in unique(ids):
        subtree = reachable.get(tenant_id)
        if subtree is None:
            errors.append(ItemError(tenant_id, NotFound()))
        elif subtree.descendant_ids and not cascade:
            errors.append(
                ItemError(
                    tenant_id,
                    HasChildren(
                        f"{subtree.tenant.name} has {len(subtree.descendant_ids)} account(s) "
                        "below it; pass cascade: true to delete them too"
                    ),
                )
            )
    raise_if_any(errors)
    return [reachable[i].tenant for i in unique(ids)]


def unique(ids: Iterable[UUID]) -> list[UUID]:
    """Bulk lists are sets in intent: a repeated id is one item."""
    return list(dict.fromkeys(ids))


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _clean_address(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    address = value.strip()
    if len(address) > ADDRESS_MAX_LENGTH:
        raise ValidationFailed(
            [
                FieldError(
                    "street_address",
                    "too_long",
                    f"must be at most {ADDRESS_MAX_LENGTH} characters",
                )
            ]
        )
    return address
