"""Credential races with real concurrent transactions on PostgreSQL: one code, one secret."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pyotp
import sqlalchemy as sa

from access_api.repositories.orm import sessions
from tests.live import PASSWORD, live_client, live_msp, state_of

PARALLEL = 8
REGENERATIONS = 10


async def _session_count(client: httpx.AsyncClient) -> int:
    async with state_of(client).database.session() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(sessions)) or 0)


class TestOneTotpCodeAtOnce:
    async def test_parallel_logins_with_one_code_open_one_session(self, live_database: str) -> None:
        async with live_client(live_database) as client:
            _, headers = await live_msp(client, "totp-race")
            enrolment = await client.post("/v1/me/two-factor/totp", headers=headers)
            totp = pyotp.TOTP(enrolment.json()["secret"])
            step = int(totp.timecode(time.time()))
            verified = await client.post(
                "/v1/me/two-factor/totp/verify",
                json={"code": totp.generate_otp(step)},
                headers=headers,
            )
            assert verified.status_code == 200, verified.text
            # The next step's code: within the drift allowance now, and newer than the last.
            code = totp.generate_otp(step + 1)
            before = await _session_count(client)
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/v1/auth/login",
                        json={
                            "email": "admin@totp-race.example.com",
                            "password": PASSWORD,
                            "otp": code,
                        },
                    )
                    for _ in range(PARALLEL)
                )
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses[200] == 1, statuses
            assert set(statuses) <= {200, 401, 429}, statuses
            refused = {r.json()["code"] for r in responses if r.status_code != 200}
            assert refused <= {"invalid_otp", "rate_limited"}
            assert await _session_count(client) == before + 1


class TestParallelRegenerations:
    async def test_leave_exactly_one_working_secret(self, live_database: str) -> None:
        async with live_client(live_database) as client:
            root, headers = await live_msp(client, "regen-race")
            me = (await client.get("/v1/me", headers=headers)).json()
            url = f"/v1/tenants/{root}/users/{me['id']}/api-keys"
            created = (await client.post(url, json={"name": "sync"}, headers=headers)).json()
            responses = await asyncio.gather(
                *(
                    client.post(f"{url}/{created['id']}/regenerate", headers=headers)
                    for _ in range(REGENERATIONS)
                )
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses == {200: 1, 409: REGENERATIONS - 1}, statuses
            assert {r.json()["code"] for r in responses if r.status_code == 409} <= {"conflict"}
            secrets = [created["key"]] + [
                r.json()["key"] for r in responses if r.status_code == 200
            ]
            working = [
                secret
                for secret in secrets
                if (
                    await client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
                ).status_code
                == 200
            ]
            assert len(working) == 1
            assert working[0] != created["key"]
