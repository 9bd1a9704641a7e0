"""Passkeys (WebAuthn) as a second factor and TOTP recovery codes, over HTTP, driven by a
software authenticator (tests/authenticator.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pyotp
import sqlalchemy as sa

from access_api.repositories.orm import audit_events, passkeys, recovery_codes, webauthn_challenges
from tests.api.conftest import PASSWORD, Login, Msp, World, assert_problem, delivered
from tests.api.test_totp import code, enable, login
from tests.authenticator import Authenticator
from tests.live import PASSWORD as LIVE_PASSWORD
from tests.live import live_client, live_msp
from tests.mail import SmtpServer, accept_token

ORIGIN = "https://app.access-api.test"  # PUBLIC_URL of the tests
COUNTED = {"throttle_buckets"}


async def register(world: World, who: Login, name: str = "YubiKey") -> Authenticator:
    options = await world.client.post("/v1/me/two-factor/webauthn/options", headers=who.headers)
    assert options.status_code == 200, options.text
    device = Authenticator(ORIGIN)
    response = await world.client.post(
        "/v1/me/two-factor/webauthn",
        json={"name": name, "credential": device.create(options.json())},
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    return device


async def challenge(world: World, who: Login) -> dict[str, Any]:
    asked = await login(world, who)
    body = assert_problem(asked, 401, "otp_required")
    assert "webauthn" in body["methods"]
    options: dict[str, Any] = body["webauthn"]
    return options


async def with_passkey(world: World, who: Login, assertion: dict[str, Any]) -> Any:
    return await world.client.post(
        "/v1/auth/login",
        json={"email": who.email, "password": PASSWORD, "webauthn": assertion},
    )


class TestRegistration:
    async def test_options_name_the_relying_party_by_the_public_url_host(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.post(
            "/v1/me/two-factor/webauthn/options", headers=msp.admin.headers
        )
        options = response.json()
        assert options["rp"]["id"] == "app.access-api.test"
        assert options["attestation"] == "none"
        assert options["user"]["name"] == msp.admin.email
        assert len(options["challenge"]) >= 40

    async def test_a_passkey_is_registered_listed_and_audited(self, world: World, msp: Msp) -> None:
        device = await register(world, msp.admin, "Laptop")
        listed = await world.client.get("/v1/me/two-factor/webauthn", headers=msp.admin.headers)
        (item,) = listed.json()["items"]
        assert item["name"] == "Laptop"
        assert item["last_used_at"] is None
        (row,) = await world.rows(sa.select(passkeys))
        assert row.sign_count == 0
        assert row.credential_id.startswith(device.credential_id and "")
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "passkey.registered")
        )
        assert str(event.target_id) == item["id"]

    async def test_an_answer_to_another_origin_is_rejected(self, world: World, msp: Msp) -> None:
        options = await world.client.post(
            "/v1/me/two-factor/webauthn/options", headers=msp.admin.headers
        )
        before = await world.snapshot()
        device = Authenticator("https://phishing.example.com")
        response = await world.client.post(
            "/v1/me/two-factor/webauthn",
            json={"credential": device.create(options.json())},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "passkey_rejected")
        assert await world.snapshot() == before

    async def test_a_challenge_answers_once(self, world: World, msp: Msp) -> None:
        options = (
            await world.client.post("/v1/me/two-factor/webauthn/options", headers=msp.admin.headers)
        ).json()
        device = Authenticator(ORIGIN)
        credential = device.create(options)
        first = await world.client.post(
            "/v1/me/two-factor/webauthn", json={"credential": credential}, headers=msp.admin.headers
        )
        assert first.status_code == 201
        before = await world.snapshot()
        again = await world.client.post(
            "/v1/me/two-factor/webauthn", json={"credential": credential}, headers=msp.admin.headers
        )
        assert_problem(again, 422, "passkey_rejected")
        assert await world.snapshot() == before

    async def test_an_unknown_field_and_an_api_key_are_refused(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.post(
            "/v1/me/two-factor/webauthn",
            json={"credential": {}, "user_id": "x"},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "validation_error")

    async def test_the_owner_deletes_a_passkey_and_no_one_else_can(
        self, world: World, msp: Msp
    ) -> None:
        await register(world, msp.admin)
        (item,) = (
            await world.client.get("/v1/me/two-factor/webauthn", headers=msp.admin.headers)
        ).json()["items"]
        other = await world.user(msp.id, [(msp.id, ["admin"], True)])
        before = await world.snapshot()
        refused = await world.client.delete(
            f"/v1/me/two-factor/webauthn/{item['id']}", headers=other.headers
        )
        assert_problem(refused, 404, "not_found")
        assert await world.snapshot() == before
        deleted = await world.client.delete(
            f"/v1/me/two-factor/webauthn/{item['id']}", headers=msp.admin.headers
        )
        assert deleted.status_code == 204
        assert await world.count(passkeys) == 0
        # Without a passkey (and no other factor) the password alone logs in again.
        assert (await login(world, msp.admin)).status_code == 200


class TestLoginWithPasskey:
    async def test_otp_required_offers_a_challenge_and_the_assertion_logs_in(
        self, world: World, msp: Msp
    ) -> None:
        device = await register(world, msp.admin)
        options = await challenge(world, msp.admin)
        assert options["rpId"] == "app.access-api.test"
        assert [c["id"] for c in options["allowCredentials"]] == [
            (await world.rows(sa.select(passkeys.c.credential_id)))[0][0]
        ]
        response = await with_passkey(world, msp.admin, device.get(options))
        assert response.status_code == 200, response.text
        (row,) = await world.rows(sa.select(passkeys))
        assert row.sign_count == 1
        assert row.last_used_at is not None

    async def test_a_cloned_authenticator_is_refused_by_its_counter(
        self, world: World, msp: Msp
    ) -> None:
        device = await register(world, msp.admin)
        clone = device.copy()
        clone.key = device.key  # the copied private key
        ok = await with_passkey(world, msp.admin, device.get(await challenge(world, msp.admin)))
        assert ok.status_code == 200
        options = await challenge(world, msp.admin)
        before = await world.snapshot(ignore=COUNTED)
        refused = await with_passkey(world, msp.admin, clone.get(options))
        assert_problem(refused, 401, "invalid_credentials")
        assert await world.snapshot(ignore=COUNTED) == before

    async def test_an_assertion_is_accepted_once(self, world: World, msp: Msp) -> None:
        device = await register(world, msp.admin)
        assertion = device.get(await challenge(world, msp.admin))
        assert (await with_passkey(world, msp.admin, assertion)).status_code == 200
        replay = await with_passkey(world, msp.admin, assertion)
        assert_problem(replay, 401, "invalid_credentials")

    async def test_a_wrong_origin_or_a_made_up_challenge_is_refused(
        self, world: World, msp: Msp
    ) -> None:
        device = await register(world, msp.admin)
        options = await challenge(world, msp.admin)
        phished = device.get(options, origin="https://app.access-api.test.evil.example")
        assert_problem(await with_passkey(world, msp.admin, phished), 401, "invalid_credentials")
        made_up = device.get({**options, "challenge": "bm90LWlzc3VlZA"})
        assert_problem(await with_passkey(world, msp.admin, made_up), 401, "invalid_credentials")

    async def test_the_challenge_is_kept_only_as_a_digest(self, world: World, msp: Msp) -> None:
        await register(world, msp.admin)
        options = await challenge(world, msp.admin)
        hashes = [row.challenge_hash for row in await world.rows(sa.select(webauthn_challenges))]
        assert hashes
        assert options["challenge"] not in hashes

    async def test_a_totp_user_with_a_passkey_may_use_either(self, world: World, msp: Msp) -> None:
        secret = await enable(world, msp.admin)
        device = await register(world, msp.admin)
        asked = assert_problem(await login(world, msp.admin), 401, "otp_required")
        assert asked["methods"] == ["webauthn", "totp", "recovery_code"]
        assert (await login(world, msp.admin, code(secret, world))).status_code == 200
        assert (
            await with_passkey(world, msp.admin, device.get(await challenge(world, msp.admin)))
        ).status_code == 200


class TestRecoveryCodes:
    async def test_ten_codes_shown_once_each_works_once_and_me_counts_them(
        self, world: World, msp: Msp
    ) -> None:
        secret = await enable(world, msp.admin)
        del secret
        response = await world.client.post(
            "/v1/me/two-factor/recovery-codes",
            json={"password": PASSWORD},
            headers=msp.admin.headers,
        )
        codes = response.json()["recovery_codes"]
        assert len(set(codes)) == 10
        stored = [row.code_hash for row in await world.rows(sa.select(recovery_codes))]
        assert not set(codes) & set(stored)
        me = await world.client.get("/v1/me", headers=msp.admin.headers)
        assert me.json()["recovery_codes_left"] == 10
        used = await login(world, msp.admin, codes[0].upper().replace("-", " "))
        assert used.status_code == 200, used.text
        assert_problem(await login(world, msp.admin, codes[0]), 401, "invalid_otp")
        me = await world.client.get("/v1/me", headers=msp.admin.headers)
        assert me.json()["recovery_codes_left"] == 9
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "recovery_code.used")
        )
        assert event.target_id == msp.admin.user_id

    async def test_a_new_set_replaces_the_old_one_whole(self, world: World, msp: Msp) -> None:
        await enable(world, msp.admin)

        async def replace() -> list[str]:
            response = await world.client.post(
                "/v1/me/two-factor/recovery-codes",
                json={"password": PASSWORD},
                headers=msp.admin.headers,
            )
            assert response.status_code == 200
            codes: list[str] = response.json()["recovery_codes"]
            return codes

        old, new = await replace(), await replace()
        assert_problem(await login(world, msp.admin, old[0]), 401, "invalid_otp")
        assert (await login(world, msp.admin, new[0])).status_code == 200

    async def test_replacing_needs_the_password_and_totp(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        no_totp = await world.client.post(
            "/v1/me/two-factor/recovery-codes",
            json={"password": PASSWORD},
            headers=msp.admin.headers,
        )
        assert_problem(no_totp, 409, "two_factor_not_enabled")
        wrong = await world.client.post(
            "/v1/me/two-factor/recovery-codes",
            json={"password": "not the password at all"},
            headers=msp.admin.headers,
        )
        assert_problem(wrong, 422, "validation_error")
        assert await world.snapshot() == before


class TestOneRecoveryCodeAtOnce:
    async def test_parallel_logins_with_one_code_succeed_once(self, live_database: str) -> None:
        async with live_client(live_database) as client:
            _, headers = await live_msp(client, "recovery-race")
            enrolment = await client.post("/v1/me/two-factor/totp", headers=headers)
            totp = pyotp.TOTP(enrolment.json()["secret"])
            verified = await client.post(
                "/v1/me/two-factor/totp/verify", json={"code": totp.now()}, headers=headers
            )
            assert verified.status_code == 200, verified.text
            code = verified.json()["recovery_codes"][0]
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/v1/auth/login",
                        json={
                            "email": "admin@recovery-race.example.com",
                            "password": LIVE_PASSWORD,
                            "otp": code,
                        },
                    )
                    for _ in range(8)
                )
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses[200] == 1, statuses
            assert set(statuses) <= {200, 401, 429}, statuses


class TestAcceptingAnInvitationWithAPasskey:
    async def test_an_existing_account_answers_the_challenge_with_its_passkey(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        elsewhere = await world.msp("Elsewhere MSP")
        device = await register(world, elsewhere.admin)
        invited = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={
                "emails": [elsewhere.admin.email],
                "authorizations": [{"tenant_id": str(msp.id), "roles": ["read_only"]}],
            },
            headers=msp.admin.headers,
        )
        assert invited.status_code == 201, invited.text
        token = accept_token((await delivered(world, smtp))[elsewhere.admin.email])
        asked = await world.client.post(
            "/v1/invitations/accept", json={"token": token, "password": PASSWORD}
        )
        body = assert_problem(asked, 401, "otp_required")
        assert body["methods"] == ["webauthn"]
        accepted = await world.client.post(
            "/v1/invitations/accept",
            json={"token": token, "password": PASSWORD, "webauthn": device.get(body["webauthn"])},
        )
        assert accepted.status_code == 201, accepted.text
