"""Races with real concurrent transactions on PostgreSQL: the rules hold, nothing 500s."""

from __future__ import annotations

import asyncio
from collections import Counter

import sqlalchemy as sa

from access_api.repositories.orm import tenants
from tests.live import live_client, live_msp, state_of


class TestConcurrentCreation:
    async def test_one_prefix_claimed_by_many_at_once_goes_to_exactly_one(
        self, live_database: str
    ) -> None:
        async with live_client(live_database) as client:
            root, headers = await live_msp(client, "race-msp")
            for round_ in range(5):
                prefix = f"contested-{round_}"
                responses = await asyncio.gather(
                    *(
                        client.post(
                            f"/v1/tenants/{root}/clients",
                            json={"kind": "client", "name": f"Try {i}", "domain_prefix": prefix},
                            headers=headers,
                        )
                        for i in range(8)
                    )
                )
                statuses = Counter(r.status_code for r in responses)
                assert statuses == {201: 1, 409: 7}, statuses
                assert {r.json()["code"] for r in responses if r.status_code == 409} == {
                    "domain_prefix_taken"
                }
                async with state_of(client).database.session() as session:
                    count = await session.scalar(
                        sa.select(sa.func.count())
                        .select_from(tenants)
                        .where(tenants.c.domain_prefix == prefix)
                    )
                assert count == 1


class TestConcurrentIdempotentRetries:
    async def test_parallel_retries_of_one_key_perform_it_once(self, live_database: str) -> None:
        async with live_client(live_database) as client:
            root, headers = await live_msp(client, "idem-msp")
            responses = await asyncio.gather(
                *(
                    client.post(
                        f"/v1/tenants/{root}/clients",
                        json={"kind": "client", "name": "Once", "domain_prefix": "once-only"},
                        headers={**headers, "Idempotency-Key": "retry-storm"},
                    )
                    for _ in range(8)
                )
            )
            assert {r.status_code for r in responses} == {201}
            assert len({r.json()["id"] for r in responses}) == 1
            assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 7
            async with state_of(client).database.session() as session:
                count = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(tenants)
                    .where(tenants.c.domain_prefix == "once-only")
                )
            assert count == 1
