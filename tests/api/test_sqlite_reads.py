"""SQLite, the embedded default: read-only requests read in deferred transactions, side by side
in WAL, not behind the write lock; the one write they may make, a credential's last-use stamp,
is made apart in a short write transaction of its own."""

from __future__ import annotations

import asyncio
import secrets
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from access_api.repositories.orm import api_keys
from tests.live import live_client, live_msp, state_of, write_lock_held


async def new_key(client: httpx.AsyncClient, msp_id: UUID, headers: dict[str, str]) -> str:
    me = (await client.get("/v1/me", headers=headers)).json()
    made = await client.post(
        f"/v1/tenants/{msp_id}/users/{me['id']}/api-keys", json={}, headers=headers
    )
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


@pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
class TestReadsBesideTheWriter:
    async def test_reads_are_answered_while_another_connection_holds_the_write_lock(
        self, live_database: str
    ) -> None:
        async with live_client(live_database) as client:
            msp_id, headers = await live_msp(client, f"wal-{secrets.token_hex(3)}")
            # A session that has just logged in is not stamped again for a minute: these
            # requests write nothing.
            async with write_lock_held(live_database):
                me = await asyncio.wait_for(client.get("/v1/me", headers=headers), 5)
                listed = await asyncio.wait_for(
                    client.get(f"/v1/tenants/{msp_id}/users", headers=headers), 5
                )
            assert me.status_code == 200, me.text
            assert listed.status_code == 200, listed.text
            assert [u["email"] for u in listed.json()["items"]] == [me.json()["email"]]

    async def test_a_keys_first_use_is_stamped_while_others_write(self, live_database: str) -> None:
        """Keys used for the first time (each read, then stamped) while profile edits commit
        between those reads and stamps: a stamp inside the read's own transaction would have
        to upgrade a read lock that another connection's commit made stale, which SQLite
        refuses at once ("database is locked")."""
        async with live_client(live_database) as client:
            msp_id, headers = await live_msp(client, f"wal-{secrets.token_hex(3)}")
            keys = [await new_key(client, msp_id, headers) for _ in range(8)]
            reads = [
                client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}) for key in keys
            ]
            writes = [
                client.patch("/v1/me", json={"first_name": f"Ann{n}"}, headers=headers)
                for n in range(16)
            ]
            answers = await asyncio.gather(*reads, *writes)
            assert [a.status_code for a in answers] == [200] * len(answers), [
                a.text for a in answers if a.status_code != 200
            ]
            async with state_of(client).database.engine.connect() as connection:
                stamped = await connection.scalar(
                    sa.select(sa.func.count())
                    .select_from(api_keys)
                    .where(api_keys.c.last_used_at.is_not(None))
                )
            assert stamped == len(keys)
