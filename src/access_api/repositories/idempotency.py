"""Idempotency keys: the first answer to a mutation, kept (sealed) to replay to a retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.ids import new_id
from access_api.repositories.dialect import insert
from access_api.repositories.orm import idempotency_keys

IN_PROGRESS = 0


@dataclass(frozen=True, slots=True)
class Remembered:
    request_hash: str
    status_code: int
    response: bytes


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, principal: str, key: str, request_hash: str, now: datetime, expires_at: datetime
    ) -> Remembered | None:
        """Claim the key for this request, or return what an earlier request left. A concurrent
        request with the same key waits on the unique index until the first one commits (and
        then replays its answer) or rolls back (and then runs itself)."""
        await self.session.execute(
            sa.delete(idempotency_keys).where(
                idempotency_keys.c.principal == principal,
                idempotency_keys.c.key == key,
                idempotency_keys.c.expires_at <= now,
            )
        )
        claimed = await self.session.execute(
            insert(self.session, idempotency_keys)
            .values(
                id=new_id(),
                principal=principal,
                key=key,
                request_hash=request_hash,
                status_code=IN_PROGRESS,
                response=b"",
                created_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing(index_elements=["principal", "key"])
            .returning(idempotency_keys.c.id)
        )
        if claimed.first() is not None:
            return None
        row = (
            await self.session.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
                )
            )
        ).one()
        return Remembered(row.request_hash, row.status_code, row.response)

    async def complete(self, principal: str, key: str, status_code: int, response: bytes) -> None:
        await self.session.execute(
            sa.update(idempotency_keys)
            .where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key)
            .values(status_code=status_code, response=response)
        )

    async def remember(
        self,
        principal: str,
        key: str,
        request_hash: str,
        status_code: int,
        response: bytes,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        """Keep a refusal (its transaction was rolled back) unless another answer got there."""
        await self.session.execute(
            insert(self.session, idempotency_keys)
            .values(
                id=new_id(),
                principal=principal,
                key=key,
                request_hash=request_hash,
                status_code=status_code,
                response=response,
                created_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing(index_elements=["principal", "key"])
        )

    async def purge_expired(self, now: datetime) -> int:
        result = await self.session.execute(
            sa.delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
