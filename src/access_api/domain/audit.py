"""Audit events: who changed what, where, with the before and after of each changed field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

Changes = dict[str, dict[str, Any]]


class ActorKind(StrEnum):
    SESSION = "session"
    API_KEY = "api_key"
    AGENT = "agent"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    user_id: UUID | None
    kind: ActorKind


SYSTEM = Actor(user_id=None, kind=ActorKind.SYSTEM)


class Action(StrEnum):
    """Every change the service records: the audit trail's `action`, and the event types that
    webhooks publish. A new kind of change adds its action here, with its target type."""

    AGENT_DEREGISTERED = "agent.deregistered"
    AGENT_PROVISIONED = "agent.provisioned"
    AGENT_REPROVISIONED = "agent.reprovisioned"
    AGENT_REREGISTERED = "agent.reregistered"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REGENERATED = "api_key.regenerated"
    API_KEY_REVOKED = "api_key.revoked"
    AUTHORIZATION_CHANGED = "authorization.changed"
    AUTHORIZATION_GRANTED = "authorization.granted"
    AUTHORIZATION_REMOVED = "authorization.removed"
    INVITATION_ACCEPTED = "invitation.accepted"
    INVITATION_CREATED = "invitation.created"
    INVITATION_RESENT = "invitation.resent"
    INVITATION_REVOKED = "invitation.revoked"
    INVITATION_UPDATED = "invitation.updated"
    POLICY_UPDATED = "policy.updated"
    PASSKEY_DELETED = "passkey.deleted"
    PASSKEY_REGISTERED = "passkey.registered"
    PASSWORD_RESET_COMPLETED = "password_reset.completed"  # noqa: S105 - an action name
    PASSWORD_RESET_REQUESTED = "password_reset.requested"  # noqa: S105 - an action name
    RECOVERY_CODES_REPLACED = "recovery_codes.replaced"
    RECOVERY_CODE_USED = "recovery_code.used"
    ROLE_CREATED = "role.created"
    ROLE_DELETED = "role.deleted"
    ROLE_UPDATED = "role.updated"
    SCIM_SETTINGS_UPDATED = "scim_settings.updated"
    SCIM_USER_DEACTIVATED = "scim_user.deactivated"
    SCIM_USER_PROVISIONED = "scim_user.provisioned"
    SESSION_CREATED = "session.created"
    SESSION_ENDED = "session.ended"
    SSO_CONNECTION_DELETED = "sso_connection.deleted"
    SSO_CONNECTION_SAVED = "sso_connection.saved"
    SSO_LOGIN_REFUSED = "sso.login_refused"
    SSO_LOGIN_SUCCEEDED = "sso.login_succeeded"
    SESSION_REVOKED = "session.revoked"
    TENANT_CREATED = "tenant.created"
    TENANT_DELETED = "tenant.deleted"
    TENANT_DISABLED = "tenant.disabled"
    TENANT_ENABLED = "tenant.enabled"
    TENANT_UPDATED = "tenant.updated"
    TWO_FACTOR_ENABLED = "two_factor.enabled"
    TWO_FACTOR_ENROLMENT_STARTED = "two_factor.enrolment_started"
    TWO_FACTOR_RESET_CONFIRMED = "two_factor.reset_confirmed"
    TWO_FACTOR_RESET_DENIED = "two_factor.reset_denied"
    TWO_FACTOR_RESET_REQUESTED = "two_factor.reset_requested"
    USER_CREATED = "user.created"
    USER_DELETED = "user.deleted"
    USER_EMAIL_CHANGE_REQUESTED = "user.email_change_requested"
    USER_EMAIL_CHANGED = "user.email_changed"
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an action name
    USER_UPDATED = "user.updated"
    USERS_EXPORTED = "users.exported"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"  # noqa: S105 - an action name
    WEBHOOK_UPDATED = "webhook.updated"

    @property
    def target_type(self) -> str:
        """What an event of this action is about: the part before the dot, in the singular."""
        return _TARGET_TYPES.get(self, self.value.split(".", 1)[0])


# Actions whose target is not named by their prefix.
_TARGET_TYPES: dict[str, str] = {
    "authorization.changed": "user",
    "authorization.granted": "user",
    "authorization.removed": "user",
    "two_factor.enabled": "user",
    "two_factor.enrolment_started": "user",
    "two_factor.reset_confirmed": "user",
    "two_factor.reset_denied": "user",
    "two_factor.reset_requested": "user",
    "users.exported": "tenant",
    "scim_settings.updated": "tenant",
    "scim_user.deactivated": "user",
    "scim_user.provisioned": "user",
    "sso.login_refused": "sso_connection",
    "sso.login_succeeded": "user",
    "policy.updated": "tenant",
    "password_reset.completed": "user",
    "password_reset.requested": "user",
    "recovery_codes.replaced": "user",
    "recovery_code.used": "user",
}


def catalog() -> list[dict[str, str]]:
    """The action catalog as data: each action with its target type (docs, webhooks)."""
    return [{"action": a.value, "target_type": a.target_type} for a in Action]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    id: UUID
    at: datetime
    actor: Actor
    root_id: UUID | None
    tenant_id: UUID | None
    action: str
    target_type: str
    target_id: UUID | None
    changes: Changes = field(default_factory=dict)
    request_id: str | None = None
    ip: str | None = None


def diff(before: object, after: object, fields: Iterable[str]) -> Changes:
    """The fields whose value differs, each as {"before": ..., "after": ...}."""
    changes: Changes = {}
    for name in fields:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes[name] = {"before": _plain(old), "after": _plain(new)}
    return changes


def created(after: object, fields: Iterable[str]) -> Changes:
    return {name: {"before": None, "after": _plain(getattr(after, name))} for name in fields}


def _plain(value: object) -> Any:
    """JSON-friendly: ids and times as strings, sets as sorted lists."""
    if isinstance(value, UUID | datetime):
        return value.isoformat() if isinstance(value, datetime) else str(value)
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, StrEnum):
        return str(value)
    return value
