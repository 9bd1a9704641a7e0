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
