"""Login sessions as their owner and admins see them: live ones, listed and ended."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.recovery import SessionInfo
from access_api.repositories.orm import sessions
from access_api.repositories.pagination import After, Page, SortKey, fetch_page


class SessionListing:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _live(self, user_id: UUID, *, seen_after: datetime, created_after: datetime) -> Any:
        # domain.auth.is_active, as a filter: not ended, not idle past the timeout, not past
        # the absolute lifetime.
        return sa.and_(
            sessions.c.user_id == user_id,
            sessions.c.ended_at.is_(None),
            sessions.c.last_seen_at > seen_after,
            sessions.c.created_at > created_after,
        )

    async def live(
        self,
        user_id: UUID,
        *,
        seen_after: datetime,
        created_after: datetime,
        current: UUID | None,
        after: After | None,
        limit: int,
    ) -> Page[SessionInfo]:
        statement = sa.select(sessions).where(
            self._live(user_id, seen_after=seen_after, created_after=created_after)
        )

        def build(row: Any) -> SessionInfo:
            return SessionInfo(
                id=row.id,
                user_id=row.user_id,
                created_at=row.created_at,
                last_seen_at=row.last_seen_at,
                ip=row.ip,
                user_agent=row.user_agent,
                current=row.id == current,
            )

        return await fetch_page(
            self.session,
            statement,
            key=SortKey(sessions.c.created_at),
            id_column=sessions.c.id,
            descending=True,
            after=after,
            limit=limit,
            build=build,
        )

    async def end_one(self, user_id: UUID, session_id: UUID, now: datetime) -> bool:
        result = await self.session.execute(
            sa.update(sessions)
            .where(
                sessions.c.id == session_id,
                sessions.c.user_id == user_id,
                sessions.c.ended_at.is_(None),
            )
            .values(ended_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def end_all(
        self, user_ids: Iterable[UUID], now: datetime, *, keep: UUID | None = None
    ) -> list[tuple[UUID, UUID]]:
        """End every live session of these users (but keep); (session id, user id) of each."""
        ids = set(user_ids)
        if not ids:
            return []
        statement = (
            sa.update(sessions)
            .where(sessions.c.user_id.in_(ids), sessions.c.ended_at.is_(None))
            .values(ended_at=now)
            .returning(sessions.c.id, sessions.c.user_id)
        )
        if keep is not None:
            statement = statement.where(sessions.c.id != keep)
        return [(row.id, row.user_id) for row in await self.session.execute(statement)]
