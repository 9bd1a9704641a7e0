"""Login sessions: a person lists and ends their own; an admin lists and ends a user's,
downward only (sessions.manage)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from access_api.domain import errors as e
from access_api.domain import recovery
from access_api.domain.access import Caller, Scope
from access_api.domain.audit import Action, ActorKind
from access_api.domain.permissions import Permission
from access_api.domain.recovery import SessionInfo
from access_api.domain.users import User
from access_api.pagination import After, Page
from access_api.use_cases.work import Work


def _current(caller: Caller) -> UUID | None:
    return caller.credential_id if caller.credential is ActorKind.SESSION else None


async def _live(
    work: Work, user: User, current: UUID | None, after: After | None, limit: int
) -> Page[SessionInfo]:
    return await work.session_list.live(
        user.id,
        seen_after=work.now - timedelta(minutes=user.session_timeout_minutes),
        created_after=work.now - timedelta(hours=work.settings.session_absolute_lifetime_hours),
        current=current,
        after=after,
        limit=limit,
    )


async def _me(work: Work, caller: Caller) -> User:
    user = await work.users.get(caller.user_id)
    if user is None:
        raise e.Unauthenticated()
    return user


async def list_mine(
    work: Work, caller: Caller, after: After | None, limit: int
) -> Page[SessionInfo]:
    return await _live(work, await _me(work, caller), _current(caller), after, limit)


async def revoke_mine(work: Work, caller: Caller, session_id: UUID) -> None:
    """End one of one's own sessions (the current one too: that is logging out)."""
    if not await work.session_list.end_one(caller.user_id, session_id, work.now):
        raise e.NotFound(f"no live session {session_id}")
    await work.record(caller.actor, Action.SESSION_REVOKED, tenant=None, target_id=session_id)


async def revoke_others(work: Work, caller: Caller) -> int:
    """Sign out everywhere else: every session but the one making the call."""
    ended = await work.session_list.end_all([caller.user_id], work.now, keep=_current(caller))
    for session_id, _ in ended:
        await work.record(caller.actor, Action.SESSION_REVOKED, tenant=None, target_id=session_id)
    return len(ended)


async def list_of_user(
    work: Work, scope: Scope, user_id: UUID, after: After | None, limit: int
) -> Page[SessionInfo]:
    user = await work.manageable_user(scope, user_id)
    current = _current(scope.caller) if user.id == scope.caller.user_id else None
    return await _live(work, user, current, after, limit)


async def revoke_of_users(work: Work, scope: Scope, user_ids: Sequence[UUID]) -> int:
    """End every session of these users (atomic: one refused id refuses all)."""
    scope = await work.lock_tree(scope, Permission.SESSIONS_MANAGE)
    tenant = scope.tenant
    ids = list(dict.fromkeys(user_ids))
    visible = await work.users.get_many(
        await work.members.visible_from(tenant.id, tenant.root_id, ids, work.now)
    )
    targets = recovery.plan_session_revocations(
        scope.caller,
        tenant.id,
        ids,
        visible=visible,
        grant_chains={
            user_id: await work.grants.grant_chains(user_id, work.now) for user_id in visible
        },
    )
    ended = await work.session_list.end_all((user.id for user in targets), work.now)
    for session_id, user_id in ended:
        await work.record(
            scope.caller.actor,
            Action.SESSION_REVOKED,
            tenant=tenant,
            target_id=session_id,
            changes={"user_id": {"before": str(user_id), "after": None}},
        )
    return len(ended)
