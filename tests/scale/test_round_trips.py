"""Round trips per request: a regression guard on counts, not on time.

On PostgreSQL the round trips are counted on the wire, by the bench's proxy in front of the
server (bench/wire.py: a round trip is the client speaking again after the server answered, so
BEGIN, COMMIT, pings and prepares count; the hottest reads bypass SQLAlchemy's events, the wire
does not). On SQLite, which has no wire, statements are counted with SQLAlchemy's
`before_cursor_execute` event. Each guarded request's answer is checked too: the fast path must
give what the ordinary one gives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
from bench.wire import CountingProxy, counting_proxy
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from access_api.domain.throttle import LOGIN_ACCOUNT
from access_api.domain.users import email_key
from access_api.repositories.orm import audit_events, throttle_buckets, users
from tests.live import PASSWORD, live_client, live_msp, state_of

# GET /v1/me is one round trip on PostgreSQL whatever the credential: the credential, its user,
# their grants and counts together (SQLite adds its BEGIN).
ME = {"postgresql": 1, "sqlite": 2}
# A read in a tenant's context: the credential and the scope's facts (the tenant, its chain,
# the caller's grants there) are one statement, and GET /v1/tenants/{id} answers from them.
READ_IN_TENANT = {"postgresql": 1, "sqlite": 2}


def _backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@contextmanager
def _statements_counted(engine: AsyncEngine) -> Iterator[Callable[[], int]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield lambda: len(statements)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


@asynccontextmanager
async def _counted(url: str) -> AsyncIterator[tuple[httpx.AsyncClient, CountingProxy | None]]:
    """A live app on the database; on PostgreSQL, through the counting proxy."""
    if _backend(url) == "sqlite":
        async with live_client(url, mail_dispatcher=False) as client:
            yield client, None
        return
    parts = urlsplit(url)
    with counting_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        user = f"{parts.username}@" if parts.username else ""
        through = urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
        async with live_client(through, mail_dispatcher=False) as client:
            yield client, proxy


async def _round_trips(
    client: httpx.AsyncClient, proxy: CountingProxy | None, path: str, headers: dict[str, str]
) -> tuple[int, httpx.Response]:
    # Once unmeasured: the first use of a credential stamps its last use (once a minute).
    assert (await client.get(path, headers=headers)).status_code == 200
    if proxy is not None:
        proxy.reset()
        response = await client.get(path, headers=headers)
        return proxy.round_trips, response
    with _statements_counted(state_of(client).database.engine) as counted:
        response = await client.get(path, headers=headers)
    return counted(), response


async def _api_key(client: httpx.AsyncClient, root: Any, headers: dict[str, str]) -> dict[str, str]:
    me = (await client.get("/v1/me", headers=headers)).json()
    created = await client.post(
        f"/v1/tenants/{root}/users/{me['id']}/api-keys", json={"name": "counted"}, headers=headers
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


@pytest.mark.parametrize("live_database", ["sqlite", "postgresql"], indirect=True)
class TestMeRoundTrips:
    async def test_me_with_an_api_key_or_a_session(self, live_database: str) -> None:
        async with _counted(live_database) as (client, proxy):
            root, session = await live_msp(client, "trips-msp")
            key = await _api_key(client, root, session)
            for headers, kind in ((key, "api_key"), (session, "session")):
                trips, response = await _round_trips(client, proxy, "/v1/me", headers)
                assert trips <= ME[_backend(live_database)], (kind, trips)
                me = response.json()
                assert (me["email"], me["credential"]["kind"]) == (
                    "admin@trips-msp.example.com",
                    kind,
                )
                assert [(g["tenant"]["id"], g["roles"]) for g in me["grants"]] == [
                    (str(root), ["admin"])
                ]
                assert me["counts"] == {"tenants": 1, "grants": 1}
            # Refusals take the same path.
            bad = {"Authorization": "Bearer aak_not-a-key"}
            assert (await client.get("/v1/me", headers=bad)).status_code == 401


@pytest.mark.parametrize("live_database", ["sqlite", "postgresql"], indirect=True)
class TestTenantReadRoundTrips:
    async def test_a_read_on_a_client_through_a_root_grant(self, live_database: str) -> None:
        async with _counted(live_database) as (client, proxy):
            root, session = await live_msp(client, "trips-msp")
            made = await client.post(
                f"/v1/tenants/{root}/clients",
                json={"kind": "client", "name": "Counted", "domain_prefix": "counted"},
                headers=session,
            )
            assert made.status_code == 201, made.text
            key = await _api_key(client, root, session)
            path = f"/v1/tenants/{made.json()['id']}"
            for headers in (key, session):
                trips, response = await _round_trips(client, proxy, path, headers)
                assert trips <= READ_IN_TENANT[_backend(live_database)], trips
                assert (response.json()["name"], response.json()["parent_id"]) == (
                    "Counted",
                    str(root),
                )
            unknown = f"/v1/tenants/{made.json()['id'][:-4]}0000"
            assert (await client.get(unknown, headers=key)).status_code == 404


# A login: its read (the account, its throttle buckets, its policy) before the hash, and its one
# write after it (the session, the last-login stamp, the buckets it forgets, its audit event),
# each in autocommit on PostgreSQL: no BEGIN or COMMIT (it was 4). SQLite has no data-modifying
# WITH: there the write is four statements in a transaction of its own, BEGINs counted.
LOGIN = {"postgresql": 2, "sqlite": 7}


@pytest.mark.parametrize("live_database", ["sqlite", "postgresql"], indirect=True)
class TestLoginRoundTrips:
    async def test_a_login_reads_once_and_writes_once(self, live_database: str) -> None:
        async with _counted(live_database) as (client, proxy):
            await live_msp(client, "trips-msp")
            email = "admin@trips-msp.example.com"
            state = state_of(client)
            before = await _last_login(state, email)
            wrong = await client.post(
                "/v1/auth/login", json={"email": email, "password": "not the password at all"}
            )
            assert wrong.status_code == 401
            account = state.keyring.digest(f"throttle/{LOGIN_ACCOUNT.name}/{email_key(email)}")
            assert await _bucket(state, account) == 1
            body = {"email": email, "password": PASSWORD}
            if proxy is not None:
                proxy.reset()
                login = await client.post("/v1/auth/login", json=body)
                trips = proxy.round_trips
            else:
                with _statements_counted(state.database.engine) as counted:
                    login = await client.post("/v1/auth/login", json=body)
                trips = counted()
            assert login.status_code == 200, login.text
            assert trips <= LOGIN[_backend(live_database)], trips
            # What the one write wrote: the session (its token works), the last login, the
            # audit event; and the failure it forgot.
            token = login.json()["access_token"]
            me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
            assert await _bucket(state, account) is None
            user_id, last_login = await _last_login(state, email)
            assert last_login > before[1]
            async with state.database.session() as session:
                created = (
                    (
                        await session.execute(
                            sa.select(audit_events.c.target_id).where(
                                audit_events.c.action == "session.created",
                                audit_events.c.actor_user_id == user_id,
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
            assert me.json()["credential"]["id"] in {str(target) for target in created}


async def _bucket(state: Any, key: str) -> int | None:
    async with state.database.session() as session:
        found: int | None = (
            await session.execute(
                sa.select(throttle_buckets.c.failures).where(throttle_buckets.c.key == key)
            )
        ).scalar()
    return found


async def _last_login(state: Any, email: str) -> tuple[Any, Any]:
    async with state.database.session() as session:
        row = (
            await session.execute(
                sa.select(users.c.id, users.c.last_login_at).where(users.c.email == email)
            )
        ).one()
    return row.id, row.last_login_at
