"""Password reset links, pending changes of email and TOTP recovery codes: each single-use
thing is kept as a keyed digest and consumed by a conditional UPDATE whose row count decides."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.errors import EmailTaken
from access_api.domain.recovery import EmailChange
from access_api.domain.users import email_key
from access_api.ids import new_id
from access_api.repositories.orm import email_changes, password_resets, recovery_codes, users


class RecoveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- password reset links -----------------------------------------------------------

    async def kill_resets(self, user_id: UUID | None, now: datetime) -> None:
        """A new link kills the previous ones (run for unknown emails too: same work)."""
        await self.session.execute(
            sa.update(password_resets)
            .where(password_resets.c.user_id == user_id, password_resets.c.used_at.is_(None))
            .values(used_at=now, token_hash=None)
        )

    async def add_reset(
        self,
        user_id: UUID,
        token_digest: str,
        *,
        now: datetime,
        expires_at: datetime,
        requested_by: UUID | None,
        tenant_id: UUID | None,
    ) -> UUID:
        reset_id = new_id()
        await self.session.execute(
            sa.insert(password_resets).values(
                id=reset_id,
                user_id=user_id,
                token_hash=token_digest,
                requested_by=requested_by,
                tenant_id=tenant_id,
                created_at=now,
                expires_at=expires_at,
                used_at=None,
            )
        )
        return reset_id

    async def use_reset(self, token_digest: str, now: datetime) -> tuple[UUID, UUID] | None:
        """(reset id, user id) of a live link, which dies now: once, even clicked twice."""
        row = (
            await self.session.execute(
                sa.update(password_resets)
                .where(
                    password_resets.c.token_hash == token_digest,
                    password_resets.c.used_at.is_(None),
                    password_resets.c.expires_at > now,
                )
                .values(used_at=now, token_hash=None)
                .returning(password_resets.c.id, password_resets.c.user_id)
            )
        ).first()
        return (row.id, row.user_id) if row else None

    async def live_reset(self, token_digest: str, now: datetime) -> bool:
        found = await self.session.scalar(
            sa.select(password_resets.c.id).where(
                password_resets.c.token_hash == token_digest,
                password_resets.c.used_at.is_(None),
                password_resets.c.expires_at > now,
            )
        )
        return found is not None

    # --- changes of email ---------------------------------------------------------------

    async def email_taken(self, email: str, *, other_than: UUID) -> bool:
        found = await self.session.scalar(
            sa.select(users.c.id).where(
                users.c.email_key == email_key(email), users.c.id != other_than
            )
        )
        return found is not None

    async def add_email_change(self, change: EmailChange, token_digest: str, now: datetime) -> None:
        """One pending change per user: a new request kills the older link."""
        await self.session.execute(
            sa.update(email_changes)
            .where(email_changes.c.user_id == change.user_id, email_changes.c.used_at.is_(None))
            .values(used_at=now, token_hash=None)
        )
        await self.session.execute(
            sa.insert(email_changes).values(
                id=change.id,
                user_id=change.user_id,
                new_email=change.new_email,
                token_hash=token_digest,
                created_at=change.created_at,
                expires_at=change.expires_at,
                used_at=None,
            )
        )

    async def use_email_change(self, token_digest: str, now: datetime) -> EmailChange | None:
        row = (
            await self.session.execute(
                sa.update(email_changes)
                .where(
                    email_changes.c.token_hash == token_digest,
                    email_changes.c.used_at.is_(None),
                    email_changes.c.expires_at > now,
                )
                .values(used_at=now, token_hash=None)
                .returning(*email_changes.c)
            )
        ).first()
        if row is None:
            return None
        return EmailChange(
            id=row.id,
            user_id=row.user_id,
            new_email=row.new_email,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    async def set_email(self, user_id: UUID, email: str, now: datetime) -> None:
        """The unique email key decides between two accounts taking one address at once."""
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    sa.update(users)
                    .where(users.c.id == user_id)
                    .values(email=email, email_key=email_key(email), updated_at=now)
                )
        except IntegrityError as error:
            raise EmailTaken() from error

    # --- recovery codes -----------------------------------------------------------------

    async def replace_codes(self, user_id: UUID, digests: Iterable[str], now: datetime) -> None:
        """A new set replaces the old one whole: the old codes stop working at once."""
        await self.session.execute(
            sa.delete(recovery_codes).where(recovery_codes.c.user_id == user_id)
        )
        await self.session.execute(
            sa.insert(recovery_codes),
            [
                {"id": new_id(), "user_id": user_id, "code_hash": digest, "created_at": now}
                for digest in digests
            ],
        )

    async def use_code(self, user_id: UUID, digest: str, now: datetime) -> bool:
        """Consume a code: true for one of any number of parallel logins with it."""
        result = await self.session.execute(
            sa.update(recovery_codes)
            .where(
                recovery_codes.c.user_id == user_id,
                recovery_codes.c.code_hash == digest,
                recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def codes_left(self, user_id: UUID) -> int:
        count = await self.session.scalar(
            sa.select(sa.func.count())
            .select_from(recovery_codes)
            .where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
        )
        return int(count or 0)
