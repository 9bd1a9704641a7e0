"""Login sessions: one's own (list, end one, end the others), and a user's, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import status
from pydantic import BaseModel, Field

from access_api.dependencies import CurrentCaller, Work, requires
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.permissions import Permission
from access_api.domain.recovery import SessionInfo
from access_api.errors import problem_responses
from access_api.routers.common import (
    AUTHENTICATED_PROBLEMS,
    MAX_BULK_IDS,
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
)
from access_api.use_cases import sessions

router = api_router(prefix="/v1/me/sessions", tags=["me"], responses=AUTHENTICATED_PROBLEMS)
admin_router = api_router(prefix="/v1/tenants", tags=["users"], responses=SCOPED_PROBLEMS)

SORT = "-created_at"
ManageSessions = Annotated[Scope, requires(Permission.SESSIONS_MANAGE)]


class SessionOut(BaseModel):
    id: UUID
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool = Field(description="The session making this call")

    @classmethod
    def of(cls, info: SessionInfo) -> SessionOut:
        return cls(
            id=info.id,
            created_at=info.created_at,
            last_seen_at=info.last_seen_at,
            ip=info.ip,
            user_agent=info.user_agent,
            current=info.current,
        )


class Revoked(BaseModel):
    revoked: int = Field(description="How many live sessions ended")


class UserIds(Body):
    user_ids: list[UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


@router.get("", summary="My live sessions, newest first")
async def list_my_sessions(
    caller: CurrentCaller, work: Work, limit: Limit = 50, cursor: Cursor = None
) -> ListPage[SessionOut]:
    after = work.state.cursors.decode(cursor, SORT)
    page = await sessions.list_mine(work, caller, after, limit)
    return page_of(page, SessionOut.of, work.state.cursors, SORT)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End one of my sessions",
    responses=problem_responses(e.NotFound),
)
async def revoke_my_session(session_id: UUID, caller: CurrentCaller, work: Work) -> None:
    await sessions.revoke_mine(work, caller, session_id)


@router.post("/revoke-others", summary="End every session of mine but this one")
async def revoke_my_other_sessions(caller: CurrentCaller, work: Work) -> Revoked:
    return Revoked(revoked=await sessions.revoke_others(work, caller))


@admin_router.get(
    "/{tenant_id}/users/{user_id}/sessions",
    summary="A user's live sessions, newest first",
    responses=problem_responses(e.UserOutsideScope),
)
async def list_user_sessions(
    user_id: UUID, scope: ManageSessions, work: Work, limit: Limit = 50, cursor: Cursor = None
) -> ListPage[SessionOut]:
    after = work.state.cursors.decode(cursor, SORT)
    page = await sessions.list_of_user(work, scope, user_id, after, limit)
    return page_of(page, SessionOut.of, work.state.cursors, SORT)


@admin_router.post(
    "/{tenant_id}/users/sessions/revoke",
    summary="End every session of these users",
    responses=problem_responses(e.UserOutsideScope, e.BulkRefused),
)
async def revoke_user_sessions(body: UserIds, scope: ManageSessions, work: Work) -> Revoked:
    return Revoked(revoked=await sessions.revoke_of_users(work, scope, body.user_ids))
