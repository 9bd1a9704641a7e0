"""Login sessions, found by the keyed digest of their bearer token."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.auth import Session
from access_api.domain.users import User
from access_api.repositories.orm import sessions, users
from access_api.repositories.policies import timeout_cap
from access_api.repositories.users import to_user


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self, login: Session, token_digest: str, *, ip: str | None, user_agent: str | None
    ) -> None:
        await self.session.execute(
            sa.insert(sessions).values(
                id=login.id,
                user_id=login.user_id,
                token_hash=token_digest,
                created_at=login.created_at,
                last_seen_at=login.last_seen_at,
                ended_at=None,
                ip=ip,
                user_agent=(user_agent or "")[:300] or None,
            )
        )

    async def resolve(self, token_digest: str) -> tuple[Session, User] | None:
        row = (
            await self.session.execute(
                sa.select(
                    users,
                    sessions.c.id.label("session_id"),
                    sessions.c.created_at.label("session_created_at"),
                    sessions.c.last_seen_at,
                    sessions.c.ended_at,
                    timeout_cap(users.c.id).label("timeout_cap_minutes"),
                )
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.token_hash == token_digest)
            )
        ).first()
        if row is None:
            return None
        login = Session(
            id=row.session_id,
            user_id=row.id,
            created_at=row.session_created_at,
            last_seen_at=row.last_seen_at,
            ended_at=row.ended_at,
            timeout_cap_minutes=row.timeout_cap_minutes,
        )
        return login, to_user(row)

    async def touch(self, session_id: UUID, now: datetime) -> None:
        await self.session.execute(
            sa.update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now)
        )

    async def end(self, session_id: UUID, now: datetime) -> None:
        await self.session.execute(
            sa.update(sessions)
            .where(sessions.c.id == session_id, sessions.c.ended_at.is_(None))
            .values(ended_at=now)
        )

    async def end_all(self, user_id: UUID, now: datetime, *, keep: UUID | None = None) -> None:
        statement = (
            sa.update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
            .values(ended_at=now)
        )
        if keep is not None:
            statement = statement.where(sessions.c.id != keep)
        await self.session.execute(statement)
