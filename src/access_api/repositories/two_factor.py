"""Two-factor state: sealed TOTP secrets and steps, emailed codes, and reset requests; every
single-use thing is consumed by a conditional UPDATE whose row count decides."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.two_factor import Reset, ResetStatus
from access_api.domain.users import TwoFactor
from access_api.ids import new_id
from access_api.repositories.orm import email_codes, two_factor_resets, users
from access_api.repositories.pagination import After, Page, SortKey, fetch_page


def to_reset(row: Any) -> Reset:
    return Reset(
        id=row.id,
        root_id=row.root_id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        requested_by=row.requested_by,
        status=ResetStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
    )


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

    async def clear_totp(self, user_id: UUID, now: datetime) -> None:
        """A confirmed reset: the authenticator is forgotten and sign-in falls back to codes
        sent by email (seed 003)."""
        await self.session.execute(
            sa.update(users)
            .where(users.c.id == user_id)
            .values(
                totp_secret=None,
                totp_pending_secret=None,
                totp_last_step=None,
                two_factor=TwoFactor.EMAIL.value,
                updated_at=now,
            )
        )

    # --- codes sent by email ----------------------------------------------------------

    async def last_code_sent_at(self, user_id: UUID, now: datetime) -> datetime | None:
        value = await self.session.scalar(
            sa.select(sa.func.max(email_codes.c.created_at)).where(
                email_codes.c.user_id == user_id,
                email_codes.c.used_at.is_(None),
                email_codes.c.expires_at > now,
            )
        )
        return value if isinstance(value, datetime) or value is None else None

    async def issue_code(
        self, user_id: UUID, code_digest: str, now: datetime, expires_at: datetime
    ) -> None:
        """A new code; the user's older ones die with it, so only the latest email counts."""
        await self.session.execute(
            sa.update(email_codes)
            .where(email_codes.c.user_id == user_id, email_codes.c.used_at.is_(None))
            .values(used_at=now)
        )
        await self.session.execute(
            sa.insert(email_codes).values(
                id=new_id(),
                user_id=user_id,
                code_hash=code_digest,
                created_at=now,
                expires_at=expires_at,
                used_at=None,
            )
        )

    async def use_code(self, user_id: UUID, code_digest: str, now: datetime) -> bool:
        """Consume a live code: true once, for one of any number of parallel attempts."""
        result = await self.session.execute(
            sa.update(email_codes)
            .where(
                email_codes.c.user_id == user_id,
                email_codes.c.code_hash == code_digest,
                email_codes.c.used_at.is_(None),
                email_codes.c.expires_at > now,
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    # --- reset requests ---------------------------------------------------------------

    async def withdraw_pending(self, user_ids: Iterable[UUID], now: datetime) -> None:
        """A new request replaces an unanswered one: its links die."""
        ids = set(user_ids)
        if ids:
            await self.session.execute(
                sa.update(two_factor_resets)
                .where(
                    two_factor_resets.c.user_id.in_(ids),
                    two_factor_resets.c.status == ResetStatus.PENDING.value,
                )
                .values(
                    status=ResetStatus.EXPIRED.value,
                    confirm_token_hash=None,
                    deny_token_hash=None,
                    decided_at=now,
                )
            )

    async def insert_resets(self, resets: Sequence[tuple[Reset, str, str]]) -> None:
        """(reset, confirm link digest, deny link digest)."""
        if resets:
            await self.session.execute(
                sa.insert(two_factor_resets),
                [
                    {
                        "id": reset.id,
                        "root_id": reset.root_id,
                        "tenant_id": reset.tenant_id,
                        "user_id": reset.user_id,
                        "requested_by": reset.requested_by,
                        "status": reset.status.value,
                        "confirm_token_hash": confirm,
                        "deny_token_hash": deny,
                        "created_at": reset.created_at,
                        "expires_at": reset.expires_at,
                        "decided_at": None,
                    }
                    for reset, confirm, deny in resets
                ],
            )

    async def answer(
        self, token_digest: str, answer: Literal["confirm", "deny"], now: datetime
    ) -> Reset | None:
        """Answer a pending, unexpired request through one of its links; both links die. The
        conditional update decides, so a link works once even when clicked twice at once."""
        link = (
            two_factor_resets.c.confirm_token_hash
            if answer == "confirm"
            else two_factor_resets.c.deny_token_hash
        )
        status = ResetStatus.CONFIRMED if answer == "confirm" else ResetStatus.DENIED
        row = (
            await self.session.execute(
                sa.update(two_factor_resets)
                .where(
                    link == token_digest,
                    two_factor_resets.c.status == ResetStatus.PENDING.value,
                    two_factor_resets.c.expires_at > now,
                )
                .values(
                    status=status.value,
                    decided_at=now,
                    confirm_token_hash=None,
                    deny_token_hash=None,
                )
                .returning(*two_factor_resets.c)
            )
        ).first()
        return to_reset(row) if row else None

    async def list_made_in(
        self,
        tenant_id: UUID,
        *,
        status: ResetStatus | None,
        now: datetime,
        descending: bool,
        after: After | None,
        limit: int,
    ) -> Page[Reset]:
        statement = sa.select(two_factor_resets).where(two_factor_resets.c.tenant_id == tenant_id)
        pending = two_factor_resets.c.status == ResetStatus.PENDING.value
        if status is ResetStatus.PENDING:
            statement = statement.where(pending, two_factor_resets.c.expires_at > now)
        elif status is ResetStatus.EXPIRED:
            statement = statement.where(
                sa.or_(
                    two_factor_resets.c.status == ResetStatus.EXPIRED.value,
                    sa.and_(pending, two_factor_resets.c.expires_at <= now),
                )
            )
        elif status is not None:
            statement = statement.where(two_factor_resets.c.status == status.value)
        return await fetch_page(
            self.session,
            statement,
            key=SortKey(two_factor_resets.c.created_at),
            id_column=two_factor_resets.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=to_reset,
        )
