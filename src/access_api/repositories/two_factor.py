"""A user's TOTP state: sealed secrets and the last accepted step, changed atomically."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.users import TwoFactor
from access_api.repositories.orm import users


@dataclass(frozen=True, slots=True)
class TotpState:
    sealed_secret: str | None
    sealed_pending: str | None
    last_step: int | None


def _fresh(step: int) -> sa.ColumnElement[bool]:
    # The rule of domain.two_factor.is_fresh, applied where concurrent logins meet.
    return sa.or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step)


class TwoFactorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def totp(self, user_id: UUID) -> TotpState:
        row = (
            await self.session.execute(
                sa.select(
                    users.c.totp_secret, users.c.totp_pending_secret, users.c.totp_last_step
                ).where(users.c.id == user_id)
            )
        ).one()
        return TotpState(row.totp_secret, row.totp_pending_secret, row.totp_last_step)

    async def start_enrolment(self, user_id: UUID, sealed_pending: str, now: datetime) -> None:
        """Keep a new secret aside until a code proves the user's app holds it; a new
        secret's steps owe nothing to an older one's."""
        await self.session.execute(
            sa.update(users)
            .where(users.c.id == user_id)
            .values(totp_pending_secret=sealed_pending, totp_last_step=None, updated_at=now)
        )

    async def enable(self, user_id: UUID, sealed_pending: str, step: int, now: datetime) -> bool:
        """Turn the pending secret into the user's TOTP, consuming the code's step; only if
        that secret is still the pending one and the step is fresh (the row count decides)."""
        result = await self.session.execute(
            sa.update(users)
            .where(
                users.c.id == user_id,
                users.c.totp_pending_secret == sealed_pending,
                _fresh(step),
            )
            .values(
                totp_secret=sealed_pending,
                totp_pending_secret=None,
                totp_last_step=step,
                two_factor=TwoFactor.TOTP.value,
                updated_at=now,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def claim_step(self, user_id: UUID, step: int) -> bool:
        """Consume a code's time step: true for exactly one of any number of parallel logins
        with the same code, and never for an older step."""
        result = await self.session.execute(
            sa.update(users).where(users.c.id == user_id, _fresh(step)).values(totp_last_step=step)
        )
        return bool(getattr(result, "rowcount", 0))
