"""Passkeys (WebAuthn public keys and their sign counters) and the challenges they answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.recovery import Passkey
from access_api.ids import new_id
from access_api.repositories.orm import passkeys, webauthn_challenges


def to_passkey(row: Any) -> Passkey:
    return Passkey(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        credential_id=row.credential_id,
        public_key=bytes(row.public_key),
        sign_count=int(row.sign_count),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


class PasskeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of_user(self, user_id: UUID) -> list[Passkey]:
        rows = await self.session.execute(
            sa.select(passkeys)
            .where(passkeys.c.user_id == user_id)
            .order_by(passkeys.c.created_at, passkeys.c.id)
        )
        return [to_passkey(row) for row in rows]

    async def by_credential(self, user_id: UUID, credential_id: str) -> Passkey | None:
        row = (
            await self.session.execute(
                sa.select(passkeys).where(
                    passkeys.c.user_id == user_id, passkeys.c.credential_id == credential_id
                )
            )
        ).first()
        return to_passkey(row) if row else None

    async def credential_known(self, credential_id: str) -> bool:
        found = await self.session.scalar(
            sa.select(passkeys.c.id).where(passkeys.c.credential_id == credential_id)
        )
        return found is not None

    async def add(self, passkey: Passkey) -> None:
        await self.session.execute(
            sa.insert(passkeys).values(
                id=passkey.id,
                user_id=passkey.user_id,
                name=passkey.name,
                credential_id=passkey.credential_id,
                public_key=passkey.public_key,
                sign_count=passkey.sign_count,
                created_at=passkey.created_at,
                last_used_at=None,
            )
        )

    async def delete(self, user_id: UUID, passkey_id: UUID) -> Passkey | None:
        row = (
            await self.session.execute(
                sa.delete(passkeys)
                .where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
                .returning(*passkeys.c)
            )
        ).first()
        return to_passkey(row) if row else None

    async def advance_counter(
        self, passkey_id: UUID, seen: int, presented: int, now: datetime
    ) -> bool:
        """Move the counter from what we read to what the authenticator sent: the row count
        decides, so of two parallel uses of one assertion only one passes."""
        result = await self.session.execute(
            sa.update(passkeys)
            .where(passkeys.c.id == passkey_id, passkeys.c.sign_count == seen)
            .values(sign_count=presented, last_used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    # --- challenges ---------------------------------------------------------------------

    async def add_challenge(
        self, user_id: UUID, purpose: str, digest: str, now: datetime, expires_at: datetime
    ) -> None:
        """A new challenge; the user's dead ones go, so they never pile up."""
        await self.session.execute(
            sa.delete(webauthn_challenges).where(
                webauthn_challenges.c.user_id == user_id,
                sa.or_(
                    webauthn_challenges.c.expires_at <= now,
                    webauthn_challenges.c.used_at.is_not(None),
                ),
            )
        )
        await self.session.execute(
            sa.insert(webauthn_challenges).values(
                id=new_id(),
                user_id=user_id,
                purpose=purpose,
                challenge_hash=digest,
                created_at=now,
                expires_at=expires_at,
                used_at=None,
            )
        )

    async def use_challenge(self, user_id: UUID, purpose: str, digest: str, now: datetime) -> bool:
        """Answer a live challenge once; afterwards it is dead."""
        result = await self.session.execute(
            sa.update(webauthn_challenges)
            .where(
                webauthn_challenges.c.user_id == user_id,
                webauthn_challenges.c.purpose == purpose,
                webauthn_challenges.c.challenge_hash == digest,
                webauthn_challenges.c.used_at.is_(None),
                webauthn_challenges.c.expires_at > now,
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))
