"""Login throttling over HTTP: per account and per client address, counted in the database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from access_api.repositories.orm import throttle_buckets
from tests.api.conftest import PASSWORD, Msp, World, assert_problem

WRONG = "wrong password"


async def attempt(world: World, email: str, password: str = WRONG) -> Any:
    return await world.client.post("/v1/auth/login", json={"email": email, "password": password})


async def fail(world: World, email: str, times: int) -> None:
    for _ in range(times):
        assert_problem(await attempt(world, email), 401, "invalid_credentials")


def rate_limited(response: Any, retry_after: int) -> None:
    body = assert_problem(response, 429, "rate_limited")
    assert response.headers["retry-after"] == str(retry_after)
    assert str(retry_after) in body["detail"]


class TestPerAccount:
    async def test_five_failures_lock_the_account_for_a_minute_even_for_the_password(
        self, world: World, msp: Msp
    ) -> None:
        await fail(world, msp.admin.email, 5)
        before = await world.snapshot()
        rate_limited(await attempt(world, msp.admin.email, PASSWORD), 60)
        world.clock.advance(timedelta(seconds=59))
        rate_limited(await attempt(world, msp.admin.email, PASSWORD), 1)
        assert await world.snapshot() == before  # refusals while locked count nothing
        world.clock.advance(timedelta(seconds=1))
        assert (await attempt(world, msp.admin.email, PASSWORD)).status_code == 200

    async def test_counts_live_in_the_database_as_keyed_digests(
        self, world: World, msp: Msp
    ) -> None:
        await fail(world, msp.admin.email, 2)
        rows = await world.rows(sa.select(throttle_buckets))
        assert {(row.rule, row.failures) for row in rows} == {
            ("login:account", 2),
            ("login:address", 2),
        }
        assert all(msp.admin.email not in row.key and "127.0.0.1" not in row.key for row in rows)

    async def test_repeated_lockouts_double_up_to_fifteen_minutes(
        self, world: World, msp: Msp
    ) -> None:
        for expected in (60, 120, 240, 480, 900, 900):
            await fail(world, msp.admin.email, 5)
            rate_limited(await attempt(world, msp.admin.email), expected)
            world.clock.advance(timedelta(seconds=expected))
        # A quiet hour later, lockouts start short again.
        world.clock.advance(timedelta(hours=1))
        await fail(world, msp.admin.email, 5)
        rate_limited(await attempt(world, msp.admin.email), 60)

    async def test_the_real_user_logs_in_once_a_lock_ends(self, world: World, msp: Msp) -> None:
        # An attacker keeps failing; each lock is short, and the password works between them.
        for _ in range(3):
            await fail(world, msp.admin.email, 5)
            locked = await attempt(world, msp.admin.email, PASSWORD)
            assert_problem(locked, 429, "rate_limited")
            world.clock.advance(timedelta(seconds=int(locked.headers["retry-after"])))
            assert (await attempt(world, msp.admin.email, PASSWORD)).status_code == 200

    async def test_windows_are_short_and_a_success_clears_the_count(
        self, world: World, msp: Msp
    ) -> None:
        await fail(world, msp.admin.email, 4)
        world.clock.advance(timedelta(minutes=5))
        await fail(world, msp.admin.email, 4)  # a new window: 4, not 8
        assert (await attempt(world, msp.admin.email, PASSWORD)).status_code == 200
        await fail(world, msp.admin.email, 4)  # cleared by the success: 4, not 8
        assert (await attempt(world, msp.admin.email, PASSWORD)).status_code == 200

    async def test_unknown_emails_are_throttled_the_same(self, world: World, msp: Msp) -> None:
        await fail(world, "Nobody@Example.com", 5)
        rate_limited(await attempt(world, "nobody@example.com"), 60)
        # Another account is not locked by it.
        assert (await attempt(world, msp.admin.email, PASSWORD)).status_code == 200


class TestPerAddress:
    async def test_failures_across_accounts_lock_the_client_address(
        self, world: World, msp: Msp
    ) -> None:
        for index in range(20):
            assert_problem(
                await attempt(world, f"guess-{index}@example.com"), 401, "invalid_credentials"
            )
        rate_limited(await attempt(world, msp.admin.email, PASSWORD), 60)
        world.clock.advance(timedelta(minutes=1))
        assert (await attempt(world, msp.admin.email, PASSWORD)).status_code == 200

    async def test_a_success_does_not_clear_the_address_count(self, world: World, msp: Msp) -> None:
        for index in range(19):
            assert_problem(
                await attempt(world, f"guess-{index}@example.com"), 401, "invalid_credentials"
            )
        assert (await attempt(world, msp.admin.email, PASSWORD)).status_code == 200
        assert_problem(await attempt(world, "guess-19@example.com"), 401, "invalid_credentials")
        rate_limited(await attempt(world, "guess-20@example.com"), 60)
