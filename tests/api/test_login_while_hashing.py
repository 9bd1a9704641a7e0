"""A login holds nothing while its password is hashed: the hash (~20 ms, or longer queued for
a hashing thread in a storm) runs between two transactions, so other requests neither wait for
SQLite's write lock nor find PostgreSQL's pool drained by logins waiting for a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import sqlalchemy as sa
from passlib.hash import argon2

from access_api.repositories.orm import sessions, tenants, users
from access_api.services.passwords import _pool, hashing_threads
from tests.live import PASSWORD, live_client, live_msp, state_of, until

WAITING = 3
WEAKER = argon2.using(type="ID", memory_cost=8192, rounds=1, parallelism=1)


@asynccontextmanager
async def hashing_held() -> AsyncIterator[threading.Event]:
    """Every hashing thread of the process busy until the event is set: a login then waits in
    the hashing queue, as in a storm."""
    release = threading.Event()
    pool = _pool()
    held = [pool.submit(release.wait, 60) for _ in range(hashing_threads())]
    try:
        yield release
    finally:
        release.set()
        await asyncio.gather(*(asyncio.wrap_future(future) for future in held))


@pytest.mark.parametrize("live_database", ["sqlite", "postgresql"], indirect=True)
async def test_logins_waiting_for_a_hash_hold_no_connection_and_no_lock(
    live_database: str,
) -> None:
    # A pool smaller than the logins waiting: held connections would leave none for others.
    async with live_client(live_database, db_pool_size=WAITING - 1) as client:
        root, headers = await live_msp(client, "hashing")
        async with hashing_held() as release:
            queue = _pool()._work_queue
            logins = [
                asyncio.create_task(
                    client.post(
                        "/v1/auth/login",
                        json={"email": "admin@hashing.example.com", "password": PASSWORD},
                    )
                )
                for _ in range(WAITING)
            ]

            async def all_waiting_for_a_hash() -> bool:
                return queue.qsize() == WAITING

            await until(all_waiting_for_a_hash, 10, "the logins did not all reach the hash")
            # Meanwhile a write and a read go through: no lock and no connection is held.
            made = await client.post(
                f"/v1/tenants/{root}/clients",
                json={"kind": "client", "name": "Made meanwhile", "domain_prefix": "meanwhile"},
                headers=headers,
            )
            assert made.status_code == 201, made.text
            assert (await client.get("/v1/me", headers=headers)).status_code == 200
            assert not any(login.done() for login in logins)
            release.set()
            answers = await asyncio.gather(*logins)
        assert [answer.status_code for answer in answers] == [200] * WAITING
        async with state_of(client).database.session() as session:
            opened = await session.scalar(sa.select(sa.func.count()).select_from(sessions))
            named = await session.scalar(
                sa.select(sa.func.count())
                .select_from(tenants)
                .where(tenants.c.name == "Made meanwhile")
            )
        assert len({answer.json()["access_token"] for answer in answers}) == WAITING
        assert opened == WAITING + 1  # live_msp's own login, then these
        assert named == 1


async def _stored_hash(client: httpx.AsyncClient, email: str) -> str:
    async with state_of(client).database.session() as session:
        found = await session.scalar(sa.select(users.c.password_hash).where(users.c.email == email))
    assert isinstance(found, str)
    return found


async def _store_hash(client: httpx.AsyncClient, email: str, password_hash: str) -> None:
    async with state_of(client).database.session() as session:
        await session.execute(
            sa.update(users).where(users.c.email == email).values(password_hash=password_hash)
        )
        await session.commit()


@pytest.mark.parametrize("live_database", ["sqlite", "postgresql"], indirect=True)
class TestRehash:
    """A hash made with weaker parameters than today's is replaced at the next login, unless
    the password changed while that login was hashing."""

    EMAIL = "admin@rehash.example.com"

    async def test_a_weaker_hash_is_replaced_at_login(self, live_database: str) -> None:
        async with live_client(live_database) as client:
            await live_msp(client, "rehash")
            await _store_hash(client, self.EMAIL, WEAKER.hash(PASSWORD))
            login = await client.post(
                "/v1/auth/login", json={"email": self.EMAIL, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            stored = await _stored_hash(client, self.EMAIL)
            assert "m=19456,t=2,p=1" in stored
            assert argon2.verify(PASSWORD, stored)

    async def test_a_password_changed_during_the_hash_is_kept(self, live_database: str) -> None:
        async with live_client(live_database) as client:
            await live_msp(client, "rehash")
            await _store_hash(client, self.EMAIL, WEAKER.hash(PASSWORD))
            changed = WEAKER.hash("a password set meanwhile by a reset")
            async with hashing_held() as release:
                login = asyncio.create_task(
                    client.post("/v1/auth/login", json={"email": self.EMAIL, "password": PASSWORD})
                )
                queue = _pool()._work_queue

                async def waiting_for_the_hash() -> bool:
                    return queue.qsize() == 1

                await until(waiting_for_the_hash, 10, "the login did not reach the hash")
                await _store_hash(client, self.EMAIL, changed)
                release.set()
                answer = await login
            # The login began with the password of its time; the change is not undone.
            assert answer.status_code == 200, answer.text
            assert await _stored_hash(client, self.EMAIL) == changed
