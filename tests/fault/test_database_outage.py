"""A database that stalls or goes away: 503 problems within seconds, and recovery on its own."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from access_api.db import IDLE_IN_TRANSACTION_FLOOR_MS
from tests.api.conftest import assert_problem
from tests.fault.proxy import FaultProxy
from tests.live import live_client, live_msp, state_of

# Short timeouts so the test is quick; production defaults are a few seconds.
TIMEOUTS = {
    "db_connect_timeout_seconds": 1.0,
    "db_statement_timeout_seconds": 1.5,
    "db_pool_timeout_seconds": 1.0,
}
WITHIN_SECONDS = 6.0


def _through(proxy: FaultProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    return urlunsplit(parts._replace(netloc=netloc))


async def _timed(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get(path, headers=headers)
    return response, time.monotonic() - started


async def _recovers(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = await client.get(path, headers=headers)
        if response.status_code == 200:
            return
        assert_problem(response, 503, "database_unavailable")
    raise AssertionError(f"{path} did not recover")


class TestDatabaseOutage:
    async def test_stalled_then_down_then_back(self, live_database: str) -> None:
        target = urlsplit(live_database)
        proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 5432)
        await proxy.start()
        try:
            async with live_client(_through(proxy, live_database), **TIMEOUTS) as client:
                root, headers = await live_msp(client, "outage-msp")
                path = f"/v1/tenants/{root}"
                assert (await client.get(path, headers=headers)).status_code == 200

                proxy.stall()
                response, took = await _timed(client, path, headers)
                problem = assert_problem(response, 503, "database_unavailable")
                assert response.headers["retry-after"] == "5"
                assert "Traceback" not in response.text
                assert "SELECT" not in problem["detail"]
                assert took < WITHIN_SECONDS, took
                ready, took = await _timed(client, "/readyz", {})
                assert_problem(ready, 503, "database_unavailable")
                assert took < WITHIN_SECONDS, took
                assert (await client.get("/healthz")).status_code == 200

                await proxy.heal()
                await _recovers(client, path, headers)
                assert (await client.get("/readyz")).status_code == 200

                await proxy.down()
                response, took = await _timed(client, path, headers)
                assert_problem(response, 503, "database_unavailable")
                assert took < WITHIN_SECONDS, took

                await proxy.heal()
                await _recovers(client, path, headers)
        finally:
            await proxy.close()


class TestShortStatementTimeout:
    async def test_a_pause_inside_a_transaction_keeps_its_connection(
        self, live_database: str
    ) -> None:
        """A 50 ms statement timeout still ends a slow statement, but a transaction that
        pauses between statements (a password hash on a loaded machine) keeps its connection:
        PostgreSQL's idle-in-transaction timeout does not fall below
        IDLE_IN_TRANSACTION_FLOOR_MS however short the statement timeout is."""
        async with live_client(live_database, db_statement_timeout_seconds=0.05) as client:
            async with state_of(client).database.session() as session:
                idle = await session.scalar(sa.text("SHOW idle_in_transaction_session_timeout"))
                assert idle == f"{IDLE_IN_TRANSACTION_FLOOR_MS // 1000}s"
                assert await session.scalar(sa.text("SELECT 1")) == 1
                await asyncio.sleep(0.5)  # ten statement timeouts, idle in the transaction
                assert await session.scalar(sa.text("SELECT 2")) == 2
                await session.rollback()
                with pytest.raises(DBAPIError, match="statement timeout"):
                    await session.execute(sa.text("SELECT pg_sleep(0.5)"))
            # And the app still answers on the same pool.
            _, headers = await live_msp(client, "short-timeout")
            assert (await client.get("/v1/me", headers=headers)).status_code == 200
