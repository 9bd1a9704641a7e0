"""A dry run's description, read from the audit events a change would record."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from access_api.domain import dry_run
from access_api.domain.audit import SYSTEM, Action, AuditEvent

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def event(action: Action, changes: dict[str, dict[str, object]] | None = None) -> AuditEvent:
    return AuditEvent(
        id=uuid4(), at=NOW, actor=SYSTEM, root_id=uuid4(), tenant_id=uuid4(),
        action=action, target_type=action.target_type, target_id=uuid4(), changes=changes or {},
    )  # fmt: skip


def test_grant_events_become_grants_added_removed_and_changed() -> None:
    tenant = str(uuid4())
    events = [
        event(
            Action.AUTHORIZATION_GRANTED,
            {
                "tenant_id": {"before": tenant, "after": tenant},
                "roles": {"before": [], "after": ["admin"]},
            },
        ),
        event(
            Action.AUTHORIZATION_REMOVED,
            {
                "tenant_id": {"before": tenant, "after": tenant},
                "roles": {"before": ["admin"], "after": []},
            },
        ),
        event(Action.USER_UPDATED),
    ]
    grants = dry_run.grants_in(events)
    assert [(g.change, g.roles_before, g.roles_after) for g in grants] == [
        ("added", [], ["admin"]),
        ("removed", ["admin"], []),
    ]
    assert {str(g.tenant_id) for g in grants} == {tenant}


def test_targets_of_an_action() -> None:
    revoked = event(Action.API_KEY_REVOKED)
    assert dry_run.targets([revoked, event(Action.USER_DELETED)], Action.API_KEY_REVOKED) == {
        revoked.target_id
    }
