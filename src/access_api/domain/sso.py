"""Single sign-on with OpenID Connect (SPEC §5.3): connections, logins in flight, identities."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from access_api.domain import errors as e
from access_api.domain.audit import Changes

LOGIN_LIFETIME = timedelta(minutes=10)
CODE_LIFETIME = timedelta(seconds=60)
MAX_DOMAINS = 50

_DOMAIN = re.compile(r"^(?=.{3,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Jit:
    """What a person the IdP vouches for, and we do not know yet, gets on the tenant."""

    enabled: bool
    roles: frozenset[str]
    include_descendants: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """A tenant's OpenID connection. The client secret is not part of the value: it is sealed
    in storage and read only to talk to the IdP."""

    id: UUID
    tenant_id: UUID
    root_id: UUID
    issuer: str
    client_id: str
    domains: frozenset[str]
    jit: Jit
    enforce: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingLogin:
    """A login sent to the IdP and not back yet: what the callback checks the answer against."""

    connection_id: UUID
    nonce: str
    code_verifier: str
    expires_at: datetime


class Refusal(StrEnum):
    """Why a callback was refused: the `error` the frontend gets at /sso/complete."""

    INVALID_STATE = "invalid_state"
    IDP_ERROR = "idp_error"
    INVALID_ID_TOKEN = "invalid_id_token"  # noqa: S105 - a refusal code, not a secret
    EMAIL_NOT_VERIFIED = "email_not_verified"
    DOMAIN_NOT_CONNECTED = "sso_domain_mismatch"
    USER_UNKNOWN = "sso_user_unknown"


class CallbackRefused(Exception):
    """A callback the rules refuse: no code is issued, the frontend is told why."""

    def __init__(self, refusal: Refusal, detail: str) -> None:
        self.refusal = refusal
        self.detail = detail
        super().__init__(f"{refusal}: {detail}")


def domains(values: Iterable[str]) -> frozenset[str]:
    """Email domains, lowercase DNS names: a connection claims them for the whole deployment."""
    found = [v.strip().lower().rstrip(".") for v in values]
    wrong = [v for v in found if not _DOMAIN.fullmatch(v)]
    if wrong:
        raise e.ValidationFailed(
            [e.FieldError("domains", "invalid_domain", f"not an email domain: {v}") for v in wrong]
        )
    if not found or len(found) > MAX_DOMAINS:
        raise e.ValidationFailed(
            [e.FieldError("domains", "invalid_domains", f"give 1 to {MAX_DOMAINS} domains")]
        )
    return frozenset(found)


def issuer(value: str) -> str:
    """An issuer is an https URL (http only on loopback, for development and tests)."""
    text = value.strip().rstrip("/")
    loopback = re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)", text)
    if not (text.startswith("https://") or loopback) or any(c in text for c in "?#"):
        raise e.ValidationFailed(
            [e.FieldError("issuer", "invalid_issuer", "an https URL without query or fragment")]
        )
    return text


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].strip().lower() if "@" in email else ""


def ensure_jit_roles(jit: Jit, known: Iterable[str]) -> None:
    """Just-in-time users get roles of the tree only: a typo would otherwise lock them out."""
    unknown = sorted(jit.roles - set(known))
    if unknown:
        raise e.ValidationFailed(
            [e.FieldError("jit.roles", "unknown_role", f"no role {key!r} here") for key in unknown]
        )


def ensure_no_escalation(
    granted: Iterable[str], roles: Mapping[str, Any], held: frozenset[str]
) -> None:
    """Whoever sets what others get automatically (just-in-time, SCIM) grants those roles: they
    may not hand out a permission they do not hold on that account themselves."""
    missing = sorted({p for key in granted if key in roles for p in roles[key].permissions} - held)
    if missing:
        raise e.PrivilegeEscalation(f"you do not hold {', '.join(missing)} here")


def ensure_domains_free(wanted: frozenset[str], owners: Mapping[str, UUID], mine: UUID) -> None:
    """A domain routes logins to one IdP: two connections claiming it would be a takeover."""
    taken = sorted(d for d in wanted if owners.get(d, mine) != mine)
    if taken:
        raise e.SsoDomainTaken(f"already claimed by another connection: {', '.join(taken)}")


def ensure_password_login_allowed(connection: Connection | None) -> None:
    """With enforce, the IdP is the only way in for the connection's domains."""
    ensure_not_enforced(connection is not None and connection.enforce)


def ensure_not_enforced(enforced: bool) -> None:
    """ensure_password_login_allowed, knowing only whether the domain's connection enforces."""
    if enforced:
        raise e.SsoRequired("sign in through single sign-on: /v1/auth/sso/start?email=…")


def ensure_pending(login: PendingLogin | None, now: datetime) -> PendingLogin:
    if login is None or login.expires_at <= now:
        raise CallbackRefused(Refusal.INVALID_STATE, "unknown, used or expired state")
    return login


def identity(claims: Mapping[str, Any], connection: Connection) -> str:
    """The email the IdP vouches for, if it vouches for it (email_verified) and the email's
    domain is one this connection claims: an IdP speaks only for its own domains."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise CallbackRefused(Refusal.INVALID_ID_TOKEN, "the ID token has no email")
    # Microsoft Entra ID sends no email_verified; its optional claim xms_edov says the same
    # ("the email's domain is verified by the directory").
    verified = claims.get("email_verified") is True or claims.get("xms_edov") in (True, "1", "true")
    if not verified:
        raise CallbackRefused(Refusal.EMAIL_NOT_VERIFIED, "the IdP has not verified the email")
    if email_domain(email) not in connection.domains:
        raise CallbackRefused(Refusal.DOMAIN_NOT_CONNECTED, "the email's domain is elsewhere")
    return email.strip()


def ensure_known(member: bool, exists: bool, connection: Connection) -> bool:
    """Whether to create the person just in time. Someone known elsewhere but not in the
    connection's tree is refused: this IdP must not open another organization's account."""
    if member:
        return False
    if exists or not connection.jit.enabled:
        raise CallbackRefused(Refusal.USER_UNKNOWN, "no such user in this organization")
    return True


def names(claims: Mapping[str, Any], email: str) -> tuple[str, str]:
    first = claims.get("given_name") or claims.get("name") or email.split("@", 1)[0]
    last = claims.get("family_name") or ""
    return str(first)[:100], str(last)[:100]


def described(connection: Connection) -> Changes:
    """The audit view of a connection: never its secret."""
    return {
        "issuer": {"before": None, "after": connection.issuer},
        "client_id": {"before": None, "after": connection.client_id},
        "domains": {"before": None, "after": sorted(connection.domains)},
        "jit": {
            "before": None,
            "after": {
                "enabled": connection.jit.enabled,
                "roles": sorted(connection.jit.roles),
                "include_descendants": connection.jit.include_descendants,
            },
        },
        "enforce": {"before": None, "after": connection.enforce},
    }
