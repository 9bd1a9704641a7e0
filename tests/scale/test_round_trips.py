"""Round trips per request: a regression guard on counts, not on time.

Statements are counted with SQLAlchemy's `before_cursor_execute` event on the app's own engine
(a live database with real commits). Transaction control is not a statement there: GET
requests run in autocommit on PostgreSQL (no BEGIN, no COMMIT) and no connection is pinged
when taken from the pool, so what is counted is what crosses the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.live import live_client, live_msp, state_of

# GET /v1/me is one statement on PostgreSQL whatever the credential: the credential, its user,
# their grants and counts together (SQLite adds its BEGIN IMMEDIATE).
ME_WITH_API_KEY = {"postgresql": 1, "sqlite": 2}
ME_WITH_SESSION = {"postgresql": 1, "sqlite": 2}


def _backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def _statements(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[str]:
    # Once unmeasured: the first use of a credential stamps its last use (once a minute).
    assert (await client.get(path, headers=headers)).status_code == 200
    with counting(state_of(client).database.engine) as statements:
        response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return statements


def _listed(statements: list[str]) -> str:
    return f"{len(statements)} statements:\n\n" + "\n\n".join(statements)


@pytest.mark.parametrize("live_database", ["sqlite", "postgresql"], indirect=True)
class TestMeRoundTrips:
    async def test_me_with_an_api_key(self, live_database: str) -> None:
        async with live_client(live_database, mail_dispatcher=False) as client:
            root, headers = await live_msp(client, "trips-msp")
            me = (await client.get("/v1/me", headers=headers)).json()
            created = await client.post(
                f"/v1/tenants/{root}/users/{me['id']}/api-keys",
                json={"name": "counted"},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            key = {"Authorization": f"Bearer {created.json()['key']}"}
            statements = await _statements(client, "/v1/me", key)
        assert len(statements) <= ME_WITH_API_KEY[_backend(live_database)], _listed(statements)

    async def test_me_with_a_session(self, live_database: str) -> None:
        async with live_client(live_database, mail_dispatcher=False) as client:
            _, headers = await live_msp(client, "trips-msp")
            statements = await _statements(client, "/v1/me", headers)
        assert len(statements) <= ME_WITH_SESSION[_backend(live_database)], _listed(statements)


# A read in a tenant's context: the credential and the scope's facts (the tenant, its chain,
# the caller's grants there) are one statement, and GET /v1/tenants/{id} answers from them.
READ_IN_TENANT = {"postgresql": 1, "sqlite": 2}


@pytest.mark.parametrize("live_database", ["sqlite", "postgresql"], indirect=True)
class TestTenantReadRoundTrips:
    async def test_a_read_on_a_client_through_a_root_grant(self, live_database: str) -> None:
        async with live_client(live_database, mail_dispatcher=False) as client:
            root, headers = await live_msp(client, "trips-msp")
            made = await client.post(
                f"/v1/tenants/{root}/clients",
                json={"kind": "client", "name": "Counted", "domain_prefix": "counted"},
                headers=headers,
            )
            assert made.status_code == 201, made.text
            me = (await client.get("/v1/me", headers=headers)).json()
            key = await client.post(
                f"/v1/tenants/{root}/users/{me['id']}/api-keys",
                json={"name": "counted"},
                headers=headers,
            )
            assert key.status_code == 201, key.text
            bearer = {"Authorization": f"Bearer {key.json()['key']}"}
            path = f"/v1/tenants/{made.json()['id']}"
            for credential in (headers, bearer):
                statements = await _statements(client, path, credential)
                limit = READ_IN_TENANT[_backend(live_database)]
                assert len(statements) <= limit, _listed(statements)
