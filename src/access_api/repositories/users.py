"""Users: the person, their password hash and their login record."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.users import TwoFactor, User, email_key
from access_api.repositories.orm import users


def to_user(row: Row[Any] | Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        phone=row.phone,
        session_timeout_minutes=row.session_timeout_minutes,
        two_factor=TwoFactor(row.two_factor),
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
    )


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: UUID) -> User | None:
        row = (await self.session.execute(sa.select(users).where(users.c.id == user_id))).first()
        return to_user(row) if row else None

    async def by_email(self, email: str) -> tuple[User, str] | None:
        """The user and their password hash, for login."""
        row = (
            await self.session.execute(
                sa.select(users).where(users.c.email_key == email_key(email))
            )
        ).first()
        return (to_user(row), row.password_hash) if row else None

    async def insert(self, user: User, password_hash: str) -> None:
        await self.session.execute(
            sa.insert(users).values(
                id=user.id,
                email=user.email,
                email_key=email_key(user.email),
                password_hash=password_hash,
                first_name=user.first_name,
                last_name=user.last_name,
                phone=user.phone,
                session_timeout_minutes=user.session_timeout_minutes,
                two_factor=user.two_factor.value,
                created_at=user.created_at,
                updated_at=user.updated_at,
                last_login_at=user.last_login_at,
                password_changed_at=user.created_at,
            )
        )

    async def record_login(self, user_id: UUID, now: datetime) -> None:
        await self.session.execute(
            sa.update(users).where(users.c.id == user_id).values(last_login_at=now)
        )

    async def set_password_hash(self, user_id: UUID, password_hash: str, now: datetime) -> None:
        await self.session.execute(
            sa.update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash, password_changed_at=now, updated_at=now)
        )
