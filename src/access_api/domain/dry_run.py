"""A dry run's answer: what a change would do, read from the audit events it would record."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from access_api.domain.audit import Action, AuditEvent

_GRANT_ACTIONS: dict[str, str] = {
    Action.AUTHORIZATION_GRANTED: "added",
    Action.AUTHORIZATION_REMOVED: "removed",
    Action.AUTHORIZATION_CHANGED: "changed",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantWouldChange:
    user_id: UUID
    tenant_id: UUID
    change: str  # added | removed | changed
    roles_before: list[str]
    roles_after: list[str]
    include_descendants_before: bool | None
    include_descendants_after: bool | None
    expires_at_after: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WouldChange:
    """Everything a change would do, nothing of it done."""

    events: Sequence[AuditEvent]
    grants: list[GrantWouldChange] = field(default_factory=list)
    users_losing_all_access: list[UUID] = field(default_factory=list)
    api_key_ids: list[UUID] = field(default_factory=list)
    agent_ids: list[UUID] = field(default_factory=list)
    sessions: int = 0


def _value(changes: dict[str, Any], name: str, side: str) -> Any:
    return (changes.get(name) or {}).get(side)


def grants_in(events: Iterable[AuditEvent]) -> list[GrantWouldChange]:
    """Grant changes, from the authorization events (their target is the user)."""
    found = []
    for event in events:
        kind = _GRANT_ACTIONS.get(event.action)
        if kind is None or event.target_id is None:
            continue
        changes = event.changes
        tenant = _value(changes, "tenant_id", "after") or _value(changes, "tenant_id", "before")
        found.append(
            GrantWouldChange(
                user_id=event.target_id,
                tenant_id=UUID(str(tenant)) if tenant else event.tenant_id or event.target_id,
                change=kind,
                roles_before=list(_value(changes, "roles", "before") or []),
                roles_after=list(_value(changes, "roles", "after") or []),
                include_descendants_before=_value(changes, "include_descendants", "before"),
                include_descendants_after=_value(changes, "include_descendants", "after"),
                expires_at_after=_value(changes, "expires_at", "after"),
            )
        )
    return found


def targets(events: Iterable[AuditEvent], action: Action) -> set[UUID]:
    return {e.target_id for e in events if e.action == action and e.target_id is not None}
