"""SCIM 2.0 provisioning (SPEC §5.3): the directory an identity provider keeps in a tenant."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from access_api.domain import errors as e

MAX_COUNT = 200
USER_NAME_MAX_LENGTH = 320


@dataclass(frozen=True, slots=True, kw_only=True)
class ScimSettings:
    """What a provisioned user gets on the tenant: these roles, and below it if asked."""

    default_roles: frozenset[str]
    include_descendants: bool


NO_ROLES = ScimSettings(default_roles=frozenset(), include_descendants=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScimUser:
    """A person as the IdP provisioned them here: its userName and externalId are the IdP's
    names for them in this tenant; the email and names are the person's own."""

    id: UUID
    user_name: str
    external_id: str | None
    active: bool
    email: str
    first_name: str
    last_name: str
    roles: frozenset[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UserInput:
    """A SCIM User as written by the IdP (create or replace)."""

    user_name: str
    external_id: str | None
    active: bool
    email: str | None
    first_name: str | None
    last_name: str | None


def user_name_key(user_name: str) -> str:
    """userName is unique in a tenant, case-insensitively (RFC 7643 §4.1.1: caseExact false)."""
    return user_name.strip().casefold()


def ensure_user_name(user_name: str) -> str:
    name = user_name.strip()
    if not name or len(name) > USER_NAME_MAX_LENGTH:
        raise e.ValidationFailed(
            [e.FieldError("userName", "invalid_user_name", "1 to 320 characters")]
        )
    return name


# RFC 7643 requires only userName. A user provisioned without an address gets one under the
# reserved .invalid domain (RFC 2606): never deliverable, never anybody's, and replaced once by
# the first real address the IdP sends.
PLACEHOLDER_DOMAIN = "scim.invalid"


def email_of(wanted: UserInput, placeholder: str) -> str:
    """The person's email: the primary email, or userName when that is an address, or else a
    placeholder until the IdP sends one."""
    email = wanted.email or (wanted.user_name if "@" in wanted.user_name else None)
    if email is None:
        return f"{placeholder}@{PLACEHOLDER_DOMAIN}"
    if "@" not in email or len(email) > 320:
        raise e.ValidationFailed([e.FieldError("emails", "invalid_email", "not an address")])
    return email.strip()


def is_placeholder(email: str) -> bool:
    return email.endswith(f"@{PLACEHOLDER_DOMAIN}")


def new_email(current: str, wanted: str | None) -> str | None:
    """A person's email never changes (SPEC §2): the IdP cannot rename someone into another.
    The one exception is the first real address of a user provisioned without one."""
    if wanted is None or wanted.strip().casefold() == current.casefold():
        return None
    if not is_placeholder(current):
        raise e.EmailImmutable("the email of a provisioned user cannot be changed")
    if "@" not in wanted or len(wanted) > 320:
        raise e.ValidationFailed([e.FieldError("emails", "invalid_email", "not an address")])
    return wanted.strip()


def ensure_roles_known(roles: Iterable[str], known: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(roles)
    unknown = sorted(wanted - set(known))
    if unknown:
        raise e.ValidationFailed(
            [e.FieldError("default_roles", "unknown_role", f"no role {k!r} here") for k in unknown]
        )
    return wanted


def ensure_group(display_name: str, known: Iterable[str]) -> str:
    """A group is a role of the tree, by key: naming anything else is refused."""
    if display_name not in set(known):
        raise e.ScimGroupUnknown(f"no role with key {display_name!r} in this organization")
    return display_name
