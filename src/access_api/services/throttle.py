"""Throttling failed attempts for any endpoint: check before trying, count what failed.

A refused request rolls its transaction back, and the failure it counted must survive that:
so failures are written in a transaction of their own, once the request's has ended.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from access_api.db import Database
from access_api.domain import throttle
from access_api.domain.errors import RateLimited
from access_api.domain.throttle import Bucket, Rule
from access_api.repositories.throttle import ThrottleRepository
from access_api.services.keyring import Keyring

Attempt = tuple[Rule, str]
"""A rule and its subject: (LOGIN_ACCOUNT, "alice@example.com"), (LOGIN_ADDRESS, "192.0.2.7")."""

Defer = Callable[[Callable[[], Awaitable[None]]], None]


@dataclass(slots=True)
class Throttle:
    session: AsyncSession
    database: Database
    keyring: Keyring
    now: datetime
    after_refusal: Defer

    def key(self, rule: Rule, subject: str) -> str:
        """Buckets are named by a keyed digest: no email or address is stored in clear."""
        return self.keyring.digest(f"throttle/{rule.name}/{subject}")

    async def check(self, *attempts: Attempt) -> None:
        """Refuse (429 rate_limited, with Retry-After) while any of these buckets is locked;
        call it before the costly or revealing part of the attempt."""
        keys = [self.key(rule, subject) for rule, subject in attempts]
        self.ensure_open(await ThrottleRepository(self.session).buckets(keys), keys)

    def ensure_open(self, buckets: Mapping[str, Bucket], keys: Iterable[str]) -> None:
        """check() over buckets already read (by key): refuse while any of keys is locked."""
        wait = throttle.retry_after((buckets.get(key) for key in keys), self.now)
        if wait is not None:
            raise RateLimited(wait)

    def failed(self, *attempts: Attempt) -> None:
        """Count a failure in each bucket, in its own transaction once this request's has
        rolled back: call it just before raising the refusal."""
        pending: Sequence[tuple[Rule, str]] = [
            (rule, self.key(rule, subject)) for rule, subject in attempts
        ]
        database, now = self.database, self.now

        async def record() -> None:
            async with database.session() as session:
                repo = ThrottleRepository(session)
                # Always in one order, so two transactions never wait on each other's rows.
                for rule, key in sorted(pending, key=lambda item: item[1]):
                    await repo.record_failure(key, rule.name, rule.policy, now)
                await session.commit()

        self.after_refusal(record)

    async def succeeded(self, *attempts: Attempt) -> None:
        """Forget these buckets' failures (within the request's transaction)."""
        await ThrottleRepository(self.session).clear(
            self.key(rule, subject) for rule, subject in attempts
        )
