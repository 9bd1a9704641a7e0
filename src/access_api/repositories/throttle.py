"""Throttle buckets in the database: every server process sees the same failure counts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain import throttle
from access_api.domain.throttle import Bucket, Policy
from access_api.repositories.dialect import insert
from access_api.repositories.orm import throttle_buckets


def to_bucket(row: Row[Any] | Any) -> Bucket:
    return Bucket(
        failures=row.failures,
        window_started_at=row.window_started_at,
        locked_until=row.locked_until,
        lockouts=row.lockouts,
        last_failure_at=row.last_failure_at,
    )


class ThrottleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def buckets(self, keys: Iterable[str]) -> dict[str, Bucket]:
        wanted = set(keys)
        if not wanted:
            return {}
        rows = await self.session.execute(
            sa.select(throttle_buckets).where(throttle_buckets.c.key.in_(wanted))
        )
        return {row.key: to_bucket(row) for row in rows}

    async def record_failure(self, key: str, rule: str, policy: Policy, now: datetime) -> Bucket:
        """Count a failure under the row's lock, so parallel failures all count (on SQLite the
        write transaction is already exclusive)."""
        await self.session.execute(
            insert(self.session, throttle_buckets)
            .values(
                key=key,
                rule=rule,
                failures=0,
                window_started_at=now,
                locked_until=None,
                lockouts=0,
                last_failure_at=now,
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        row = (
            await self.session.execute(
                sa.select(throttle_buckets).where(throttle_buckets.c.key == key).with_for_update()
            )
        ).one()
        bucket = throttle.after_failure(to_bucket(row), policy, now)
        await self.session.execute(
            sa.update(throttle_buckets)
            .where(throttle_buckets.c.key == key)
            .values(
                failures=bucket.failures,
                window_started_at=bucket.window_started_at,
                locked_until=bucket.locked_until,
                lockouts=bucket.lockouts,
                last_failure_at=bucket.last_failure_at,
            )
        )
        return bucket

    async def clear(self, keys: Iterable[str]) -> None:
        wanted = set(keys)
        if wanted:
            await self.session.execute(
                sa.delete(throttle_buckets).where(throttle_buckets.c.key.in_(wanted))
            )
