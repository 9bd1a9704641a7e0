"""After a burst has opened many pooled connections, a lighter load keeps to the one given back
last (the pool is LIFO) instead of visiting each in turn.

Each PostgreSQL connection keeps its own prepared statements (asyncpg's cache) and plans, and
each backend its own catalog caches: a request on a connection that has not run its statements
yet prepares every one again. Measured with `python -m bench`'s invitation measure after a
load of 16 connections: 1,000 invitations took 0.88-1.05 s (server CPU 0.56-0.66 s) with the
pool handing out its connections in turn, and 0.44-0.50 s (0.28-0.32 s) with the last one
back handed out first.
"""

from __future__ import annotations

import asyncio

import asyncpg
import sqlalchemy as sa

from tests.live import live_client, live_msp, state_of

BURST = 6


async def _last_statement_at(dsn: str) -> dict[int, object]:
    """When each of the service's connections to this database last started a statement."""
    watcher = await asyncpg.connect(dsn)
    try:
        rows = await watcher.fetch(
            "SELECT pid, query_start FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'access-api'"
        )
    finally:
        await watcher.close()
    return {row["pid"]: row["query_start"] for row in rows}


class TestPoolReuse:
    async def test_requests_one_at_a_time_after_a_burst_use_one_connection(
        self, live_database: str
    ) -> None:
        dsn = live_database.replace("postgresql+asyncpg://", "postgresql://")
        async with live_client(live_database, mail_dispatcher=False) as client:
            root, headers = await live_msp(client, "pool-msp")
            engine = state_of(client).database.engine
            # A burst: BURST connections in use at once, then all given back to the pool.
            gate = asyncio.Barrier(BURST)

            async def busy() -> None:
                async with engine.connect() as connection:
                    await connection.execute(sa.text("SELECT 1"))
                    await gate.wait()

            await asyncio.gather(*(busy() for _ in range(BURST)))
            before = await _last_statement_at(dsn)
            assert len(before) >= BURST

            for n in range(10):
                renamed = await client.patch(
                    f"/v1/tenants/{root}", json={"name": f"Pool Msp {n}"}, headers=headers
                )
                assert renamed.status_code == 200, renamed.text
                read = await client.get(f"/v1/tenants/{root}", headers=headers)
                assert read.json()["name"] == f"Pool Msp {n}"

            after = await _last_statement_at(dsn)
        used = {pid for pid, started in after.items() if before.get(pid) != started}
        # Handed out in turn, the ten writes and ten reads would have visited all BURST.
        assert len(used) == 1, f"{len(used)} connections served requests one at a time"
