"""TOTP over HTTP: enrolment, its first code, and codes at login (each accepted once)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import sqlalchemy as sa

from access_api.repositories.orm import audit_events, sessions, users
from tests.api.conftest import PASSWORD, Login, Msp, World, assert_problem

STEP = timedelta(seconds=30)


def code(secret: str, world: World, offset: int = 0) -> str:
    """What an authenticator app shows, offset steps away from the server's clock."""
    return str(pyotp.TOTP(secret).at(world.clock.now() + offset * STEP))


async def enrol(world: World, who: Login) -> str:
    response = await world.client.post("/v1/me/two-factor/totp", headers=who.headers)
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


async def enable(world: World, who: Login) -> str:
    secret = await enrol(world, who)
    response = await world.client.post(
        "/v1/me/two-factor/totp/verify", json={"code": code(secret, world)}, headers=who.headers
    )
    assert response.status_code == 200, response.text
    # The next code is the next step's: move the clock there, as a person would wait.
    world.clock.advance(STEP)
    return secret


async def user_row(world: World, who: Login) -> Any:
    (row,) = await world.rows(sa.select(users).where(users.c.id == who.user_id))
    return row


async def login(world: World, who: Login, otp: str | None = None) -> Any:
    body: dict[str, str] = {"email": who.email, "password": PASSWORD}
    if otp is not None:
        body["otp"] = otp
    return await world.client.post("/v1/auth/login", json=body)


class TestEnrolment:
    async def test_returns_the_secret_as_text_uri_and_qr_code_sealed_at_rest(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.post("/v1/me/two-factor/totp", headers=msp.admin.headers)
        assert response.status_code == 200
        body = response.json()
        uri = urlparse(body["otpauth_uri"])
        assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
        assert unquote(uri.path) == f"/access-api:{msp.admin.email}"
        assert parse_qs(uri.query)["secret"] == [body["secret"]]
        assert parse_qs(uri.query)["issuer"] == ["access-api"]
        assert body["qr_svg"].startswith("<svg")
        row = await user_row(world, msp.admin)
        assert (row.two_factor, row.totp_secret) == ("disabled", None)
        assert row.totp_pending_secret is not None
        assert body["secret"] not in row.totp_pending_secret
        assert world.state.keyring.unseal_text(row.totp_pending_secret, "totp") == body["secret"]
        # Not on yet: the password alone still logs in.
        assert (await login(world, msp.admin)).status_code == 200

    async def test_the_first_valid_code_turns_it_on(self, world: World, msp: Msp) -> None:
        secret = await enrol(world, msp.admin)
        response = await world.client.post(
            "/v1/me/two-factor/totp/verify",
            json={"code": code(secret, world)},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        assert response.json()["two_factor"] == "totp"
        assert len(response.json()["recovery_codes"]) == 10
        row = await user_row(world, msp.admin)
        assert (row.two_factor, row.totp_pending_secret) == ("totp", None)
        assert world.state.keyring.unseal_text(row.totp_secret, "totp") == secret
        me = await world.client.get("/v1/me", headers=msp.admin.headers)
        assert me.json()["two_factor"] == "totp"
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "two_factor.enabled")
        )
        assert event.changes == {"two_factor": {"before": "disabled", "after": "totp"}}
        assert secret not in str(event.changes)

    async def test_a_wrong_code_changes_nothing(self, world: World, msp: Msp) -> None:
        secret = await enrol(world, msp.admin)
        before = await world.snapshot()
        for wrong in (code(secret, world, offset=3), "abcdef", "12 34 5x"):
            response = await world.client.post(
                "/v1/me/two-factor/totp/verify", json={"code": wrong}, headers=msp.admin.headers
            )
            assert_problem(response, 401, "invalid_otp")
        assert await world.snapshot() == before

    async def test_verifying_without_enrolment_is_refused(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        response = await world.client.post(
            "/v1/me/two-factor/totp/verify", json={"code": "123456"}, headers=msp.admin.headers
        )
        assert_problem(response, 409, "totp_not_enrolling")
        assert await world.snapshot() == before

    async def test_once_on_it_is_changed_only_by_a_reset(self, world: World, msp: Msp) -> None:
        secret = await enable(world, msp.admin)
        before = await world.snapshot()
        response = await world.client.post("/v1/me/two-factor/totp", headers=msp.admin.headers)
        assert_problem(response, 409, "two_factor_enabled")
        response = await world.client.post(
            "/v1/me/two-factor/totp/verify",
            json={"code": code(secret, world)},
            headers=msp.admin.headers,
        )
        assert_problem(response, 409, "two_factor_enabled")
        assert await world.snapshot() == before

    async def test_an_api_key_cannot_change_two_factor_settings(
        self, world: World, msp: Msp
    ) -> None:
        key = await world.client.post(
            f"/v1/tenants/{msp.id}/users/{msp.admin.user_id}/api-keys",
            json={},
            headers=msp.admin.headers,
        )
        headers = {"Authorization": f"Bearer {key.json()['key']}"}
        await world.client.get("/v1/me", headers=headers)  # first use: last_used_at is written
        before = await world.snapshot()
        response = await world.client.post("/v1/me/two-factor/totp", headers=headers)
        assert_problem(response, 403, "forbidden")
        assert await world.snapshot() == before


class TestLoginWithTotp:
    async def test_the_password_comes_first_then_the_code_is_asked_for(
        self, world: World, msp: Msp
    ) -> None:
        secret = await enable(world, msp.admin)
        before = await world.snapshot(ignore={"throttle_buckets"})
        wrong_password = await world.client.post(
            "/v1/auth/login", json={"email": msp.admin.email, "password": "not it"}
        )
        assert_problem(wrong_password, 401, "invalid_credentials")
        wrong_both = await world.client.post(
            "/v1/auth/login",
            json={"email": msp.admin.email, "password": "not it", "otp": code(secret, world)},
        )
        assert_problem(wrong_both, 401, "invalid_credentials")
        asked = await login(world, msp.admin)
        assert_problem(asked, 401, "otp_required")
        assert await world.snapshot(ignore={"throttle_buckets"}) == before
        response = await login(world, msp.admin, code(secret, world))
        assert response.status_code == 200
        assert response.json()["access_token"].startswith("aas_")

    async def test_a_code_is_accepted_once(self, world: World, msp: Msp) -> None:
        secret = await enable(world, msp.admin)
        first = await login(world, msp.admin, code(secret, world))
        assert first.status_code == 200
        count = await world.count(sessions)
        replay = await login(world, msp.admin, code(secret, world))
        assert_problem(replay, 401, "invalid_otp")
        assert await world.count(sessions) == count
        # An older code is refused too, even within the drift allowance.
        world.clock.advance(STEP)
        assert_problem(
            await login(world, msp.admin, code(secret, world, offset=-2)),
            401,
            "invalid_otp",
        )
        assert (await login(world, msp.admin, code(secret, world))).status_code == 200

    async def test_the_code_that_enabled_it_cannot_log_in(self, world: World, msp: Msp) -> None:
        secret = await enrol(world, msp.admin)
        used = code(secret, world)
        await world.client.post(
            "/v1/me/two-factor/totp/verify", json={"code": used}, headers=msp.admin.headers
        )
        assert_problem(await login(world, msp.admin, used), 401, "invalid_otp")

    async def test_one_step_of_drift_either_way_is_allowed(self, world: World, msp: Msp) -> None:
        secret = await enable(world, msp.admin)
        world.clock.advance(3 * STEP)
        assert (await login(world, msp.admin, code(secret, world, offset=-1))).status_code == 200
        world.clock.advance(3 * STEP)
        assert (await login(world, msp.admin, code(secret, world, offset=1))).status_code == 200
        world.clock.advance(3 * STEP)
        assert_problem(
            await login(world, msp.admin, code(secret, world, offset=2)),
            401,
            "invalid_otp",
        )

    async def test_a_wrong_code_counts_as_a_failed_login(self, world: World, msp: Msp) -> None:
        secret = await enable(world, msp.admin)
        wrong = code(secret, world, offset=5)
        for _ in range(5):
            assert_problem(await login(world, msp.admin, wrong), 401, "invalid_otp")
        locked = await login(world, msp.admin, code(secret, world))
        assert_problem(locked, 429, "rate_limited")
        assert locked.headers["retry-after"] == "60"
