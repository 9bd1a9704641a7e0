"""SQLite keeps no planner statistics by itself: the server refreshes them, so that a list page
at any size walks the index of its sort instead of sorting every user."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from access_api import main
from access_api.db import Database, _statistics_generation
from access_api.services.clock import SystemClock
from tests.live import live_client, live_msp, state_of, write_lock_held
from tests.users_bulk import add_users

# What list_visible asks at the root for ?sort=last_name&two_factor=disabled, reduced to the
# part the planner decides on.
_PAGE = sa.text(
    "EXPLAIN QUERY PLAN SELECT users.id FROM users WHERE EXISTS (SELECT 1 FROM members"
    " WHERE members.root_id = :root AND members.user_id = users.id)"
    " AND users.two_factor = 'disabled' ORDER BY users.last_name, users.id LIMIT 51"
)

_ANALYZED = sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")


async def analyzed_at_startup(database: Database) -> None:
    """At startup the server analyzes the (then empty) database. (Each look in a transaction
    of its own: one held open would keep the server from writing.)"""
    for _ in range(50):
        async with database.snapshot() as session:
            if (await session.execute(_ANALYZED)).scalar_one():
                return
        await asyncio.sleep(0.1)
    pytest.fail("the server did not analyze the SQLite database at startup")


@pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
async def test_statistics_are_kept_so_a_page_walks_its_sort_index(live_database: str) -> None:
    async with live_client(live_database) as client:
        database = state_of(client).database
        root, headers = await live_msp(client, "stats")
        await analyzed_at_startup(database)
        async with database.engine.execution_options(
            sqlite_begin="IMMEDIATE"
        ).begin() as connection:
            await add_users(connection, root, root, 3000, SystemClock().now())
        await database.refresh_statistics()  # what the hourly refresh does
        async with database.session() as session:
            rows = (await session.execute(sa.text("SELECT tbl, idx, stat FROM sqlite_stat1"))).all()
            plan = " | ".join(row[-1] for row in await session.execute(_PAGE, {"root": root.hex}))
        assert ("users", "ix_users_last_name_id") in {(row.tbl, row.idx) for row in rows}
        assert "ix_users_last_name_id" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        page = await client.get(
            f"/v1/tenants/{root}/users",
            params={"sort": "last_name", "two_factor": "disabled", "limit": 50},
            headers=headers,
        )
        assert page.status_code == 200
        names = [user["last_name"] for user in page.json()["items"]]
        assert len(names) == 50
        assert names == sorted(names)


@pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
async def test_a_connection_reloads_them_without_waiting_for_a_writer(live_database: str) -> None:
    """The reload takes the write lock for a moment: a read-only request's connection does
    not wait for another writer to get it, but reloads at a later checkout."""
    async with live_client(live_database) as client:
        database = state_of(client).database
        engine = database.engine
        await analyzed_at_startup(database)
        async with engine.connect() as connection:  # an idle connection in the pool
            await connection.execute(sa.text("SELECT 1"))
        await database.refresh_statistics()
        wanted = _statistics_generation[engine.sync_engine]
        async with write_lock_held(live_database):

            async def read() -> tuple[int, object]:
                async with engine.connect() as connection:
                    raw = await connection.get_raw_connection()
                    count = await connection.scalar(sa.text("SELECT count(*) FROM tenants"))
                    return int(count or 0), raw.info["statistics"]

            tenants, seen = await asyncio.wait_for(read(), 5)
        assert tenants == 0
        assert seen != wanted
        # Once the lock is free, a later checkout reloads: the next one, unless the app's own
        # background work (its dispatchers claiming from the outbox) holds the write lock then.
        for _ in range(100):
            _, seen = await asyncio.wait_for(read(), 5)
            if seen == wanted:
                break
            await asyncio.sleep(0.05)
        assert seen == wanted


_USERS_ANALYZED = sa.text("SELECT max(CAST(stat AS INTEGER)) FROM sqlite_stat1 WHERE tbl = 'users'")


async def _users_analyzed(database: Database) -> int:
    async with database.snapshot() as session:
        return int((await session.execute(_USERS_ANALYZED)).scalar_one() or 0)


@pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
async def test_an_import_makes_them_stale_and_a_refresh_fresh(live_database: str) -> None:
    """Taken on a near-empty database, statistics make the planner scan: an import of
    thousands of users makes them stale; a refresh, fresh; a few more users do not."""
    async with live_client(live_database) as client:
        database = state_of(client).database
        root, _ = await live_msp(client, "stale")
        await analyzed_at_startup(database)
        await database.refresh_statistics()  # with the MSP's admin in it
        assert not await database.statistics_stale()
        writer = database.engine.execution_options(sqlite_begin="IMMEDIATE")
        async with writer.begin() as connection:
            await add_users(connection, root, root, 3000, SystemClock().now())
        assert await database.statistics_stale()
        await database.refresh_statistics()
        assert not await database.statistics_stale()
        assert await _users_analyzed(database) == 3001  # the admin and the import
        async with writer.begin() as connection:
            await add_users(connection, root, root, 500, SystemClock().now(), prefix="few")
        assert not await database.statistics_stale()  # within the drift allowed


@pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
async def test_a_first_directory_of_a_thousand_makes_them_stale(live_database: str) -> None:
    """An identity provider's first sync into a new database: about a thousand users where
    the statistics saw one. Planned on the near-empty database's statistics, a SCIM page of
    100 of 999 users cost 31.6 ms of server CPU, 15.9 with fresh ones (bench helpers, once)."""
    async with live_client(live_database) as client:
        database = state_of(client).database
        root, _ = await live_msp(client, "first-sync")
        await analyzed_at_startup(database)
        await database.refresh_statistics()  # the MSP's admin alone
        writer = database.engine.execution_options(sqlite_begin="IMMEDIATE")
        async with writer.begin() as connection:
            await add_users(connection, root, root, 998, SystemClock().now())
        assert await database.statistics_stale()
        await database.refresh_statistics()
        assert await _users_analyzed(database) == 999
        async with writer.begin() as connection:
            await add_users(connection, root, root, 99, SystemClock().now(), prefix="few")
        assert not await database.statistics_stale()  # within the drift allowed


@pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
async def test_the_server_refreshes_stale_ones_before_the_hour_is_up(
    live_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "SQLITE_STATISTICS_CHECK_SECONDS", 0.2)
    async with live_client(live_database) as client:
        database = state_of(client).database
        root, _ = await live_msp(client, "drift")
        await analyzed_at_startup(database)
        writer = database.engine.execution_options(sqlite_begin="IMMEDIATE")
        async with writer.begin() as connection:
            await add_users(connection, root, root, 3000, SystemClock().now())
        for _ in range(100):
            if await _users_analyzed(database) == 3001:
                break
            await asyncio.sleep(0.1)
        assert await _users_analyzed(database) == 3001
        assert not await database.statistics_stale()
