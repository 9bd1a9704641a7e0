"""Races with real concurrent transactions on PostgreSQL: the rules hold, nothing 500s."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import UUID

import httpx
import sqlalchemy as sa

from access_api.domain.invitations import Offer
from access_api.repositories.grants import GrantRepository
from access_api.repositories.orm import tenants
from access_api.services.clock import SystemClock
from tests.live import PASSWORD, join_member, live_client, live_msp, state_of


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


class TestLastAdminRace:
    async def test_two_admins_deleting_each_other_at_once_never_leave_none(
        self, live_database: str
    ) -> None:
        """Round after round, the only two admins of an MSP each delete the other at the same
        moment: one wins and the other is refused, never a 500, and the MSP always keeps
        exactly one admin. The loser sees last_admin when it reached the lock while both were
        admins, or not_found when the winner had already removed it from the MSP (its tenants
        are then absent to it)."""
        async with live_client(live_database) as client:
            outcomes: Counter[str] = Counter()
            for round_ in range(12):
                root, a_headers = await live_msp(client, f"admins-race-{round_}")
                a_id = UUID((await client.get("/v1/me", headers=a_headers)).json()["id"])
                b_id, b_headers = await _second_admin(client, root, f"b{round_}@race.example.com")
                responses = await asyncio.gather(
                    client.post(
                        f"/v1/tenants/{root}/users/delete",
                        json={"ids": [str(b_id)]},
                        headers=a_headers,
                    ),
                    client.post(
                        f"/v1/tenants/{root}/users/delete",
                        json={"ids": [str(a_id)]},
                        headers=b_headers,
                    ),
                )
                statuses = sorted(r.status_code for r in responses)
                assert 500 not in statuses, [r.text for r in responses]
                assert statuses.count(200) == 1, [r.text for r in responses]
                refused = next(r for r in responses if r.status_code != 200)
                assert refused.json()["code"] in {"last_admin", "not_found"}, refused.text
                outcomes[refused.json()["code"]] += 1
                async with state_of(client).database.session() as session:
                    admins = await GrantRepository(session).root_admins(root, SystemClock().now())
                assert len(admins) == 1, admins
            assert sum(outcomes.values()) == 12


async def _second_admin(
    client: httpx.AsyncClient, root: UUID, email: str
) -> tuple[UUID, dict[str, str]]:
    """Another admin of the MSP on its root and below (committed), logged in."""
    admin = [Offer(tenant_id=root, roles=frozenset({"admin"}), include_descendants=True)]
    user_id = await join_member(state_of(client), root, admin, email)
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    return user_id, {"Authorization": f"Bearer {login.json()['access_token']}"}
