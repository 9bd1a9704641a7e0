"""The hot path's reads take an idle pooled connection without SQLAlchemy's greenlet, and leave
the greenlet to the checkouts that need the event loop: none idle, or the idle one must be
reconnected (invalidated after a failure, recycled). PostgreSQL: only its autocommit reads
take this path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from access_api.repositories import fast
from access_api.repositories.fast import FastRead, _checkout_idle

_BACKEND = FastRead(sa.select(sa.func.pg_backend_pid().label("pid"), sa.literal(1).label("one")))


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., Any]]:
    """The functions FastRead ran in a greenlet."""
    calls: list[Callable[..., Any]] = []
    real = greenlet_spawn

    async def counting(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(function)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(fast, "greenlet_spawn", counting)
    return calls


def _pool(engine: AsyncEngine) -> QueuePool:
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    return pool


async def _backend_pid(engine: AsyncEngine) -> int:
    async with AsyncSession(engine) as session:
        (row,) = await _BACKEND.rows(session, {})
        assert row.one == 1
        return int(row.pid)


class TestFastCheckout:
    async def test_an_idle_connection_is_taken_without_the_greenlet(
        self, autocommit: AsyncEngine, spawned: list[Callable[..., Any]]
    ) -> None:
        first = await _backend_pid(autocommit)  # opens the pool's first connection
        assert len(spawned) == 1
        pool = _pool(autocommit)
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)

        for _ in range(3):
            assert await _backend_pid(autocommit) == first
        assert len(spawned) == 1, "an idle connection was taken through a greenlet"
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)

    async def test_with_none_idle_nothing_is_taken(self, autocommit: AsyncEngine) -> None:
        pool = _pool(autocommit)
        assert _checkout_idle(autocommit.sync_engine) is None
        assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (0, 0, -pool.size())

    @pytest.mark.parametrize("soft", [False, True], ids=["invalidated", "to-recycle"])
    async def test_a_connection_to_reconnect_is_left_to_the_greenlet(
        self, autocommit: AsyncEngine, spawned: list[Callable[..., Any]], soft: bool
    ) -> None:
        first = await _backend_pid(autocommit)
        async with autocommit.connect() as connection:
            raw = await connection.get_raw_connection()
            # A failure found it dead (hard), or it is due for recycling (soft): either way the
            # next checkout must open a new connection, which needs the event loop.
            raw.invalidate(soft=soft)
        pool = _pool(autocommit)
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)
        spawned.clear()

        assert _checkout_idle(autocommit.sync_engine) is None
        assert (pool.checkedin(), pool.checkedout()) == (1, 0), "the record was not given back"

        second = await _backend_pid(autocommit)  # through the greenlet, which reconnects
        assert second != first
        assert spawned == [fast._checkout]
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)
        assert await _backend_pid(autocommit) == second
        assert spawned == [fast._checkout]
