"""Issue 10, "Rules": what the acceptance scenarios and a newcomer tripped on, over HTTP."""

from __future__ import annotations

import logging
from datetime import timedelta

import pyotp
import pytest

from access_api.repositories.orm import agents, invitations
from tests.api.conftest import PASSWORD, Msp, World, assert_problem, delivered
from tests.api.test_api_keys import join_tree, keys_url
from tests.api.test_invitations import invited, offer
from tests.mail import SmtpServer, accept_token


class TestAPersonInTwoTrees:
    """Person-level actions need all of the person's access, in every tree, at or below."""

    async def test_is_managed_from_neither_tree_alone(self, world: World, msp: Msp) -> None:
        other = await world.msp(name="Other MSP")
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        await join_tree(world, tech.user_id, other.id, ["read_only"])
        user_url = f"/v1/tenants/{msp.id}/users/{tech.user_id}"
        before = await world.snapshot()
        for response in (
            await world.client.patch(
                user_url,
                json={"first_name": "Renamed", "session_timeout_minutes": 5},
                headers=msp.admin.headers,
            ),
            await world.client.get(f"{user_url}/sessions", headers=msp.admin.headers),
            await world.client.post(
                f"/v1/tenants/{msp.id}/users/sessions/revoke",
                json={"user_ids": [str(tech.user_id)]},
                headers=msp.admin.headers,
            ),
            await world.client.post(
                f"/v1/tenants/{msp.id}/users/password-resets",
                json={"user_ids": [str(tech.user_id)]},
                headers=msp.admin.headers,
            ),
            await world.client.post(
                f"/v1/tenants/{msp.id}/two-factor-resets",
                json={"user_ids": [str(tech.user_id)]},
                headers=msp.admin.headers,
            ),
            await world.client.post(
                keys_url(msp.id, tech.user_id), json={"name": "k"}, headers=msp.admin.headers
            ),
            await world.client.post(
                f"{user_url}/agents", json={"name": "Runner"}, headers=msp.admin.headers
            ),
            await world.client.patch(
                f"/v1/tenants/{other.id}/users/{tech.user_id}",
                json={"phone": "+14155550100"},
                headers=other.admin.headers,
            ),
        ):
            assert_problem(response, 403, "user_outside_scope")
        assert await world.snapshot() == before
        # Their own person stays theirs.
        own = await world.client.patch("/v1/me", json={"first_name": "Mine"}, headers=tech.headers)
        assert own.status_code == 200, own.text


class TestInvitationPreview:
    async def test_takes_the_token_in_a_body_and_no_log_line_holds_it(
        self, world: World, msp: Msp, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        await invited(world, msp.id, msp.admin, "ann@example.com", [offer()])
        token = accept_token((await delivered(world, smtp))["ann@example.com"])
        with caplog.at_level(logging.DEBUG):
            posted = await world.client.post("/v1/invitations/preview", json={"token": token})
            got = await world.client.get("/v1/invitations/preview", params={"token": token})
        assert posted.status_code == 200, posted.text
        assert posted.json()["email"] == "ann@example.com"
        assert got.json() == posted.json()
        # Every server-side line (httpx's own lines are the test client's, not the server's).
        server = [r for r in caplog.records if r.name != "httpx"]
        assert any(r.name == "access_api.access" for r in server)
        assert all(token not in r.getMessage() + str(r.__dict__) for r in server)
        wrong = await world.client.post("/v1/invitations/preview", json={"token": "inv_nope"})
        assert_problem(wrong, 400, "invalid_token")

    async def test_the_get_is_deprecated_and_both_document_429(self, world: World) -> None:
        paths = (await world.client.get("/openapi.json")).json()["paths"]
        preview = paths["/v1/invitations/preview"]
        assert preview["get"]["deprecated"] is True
        assert "deprecated" not in preview["post"]
        assert "429" in preview["get"]["responses"]
        assert "429" in preview["post"]["responses"]


class TestGrantsAndRoles:
    async def test_authorizations_carry_user_id_and_can_be_put_back(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        await world.user(msp.id, [(client["id"], ["read_only"], False)])
        url = f"/v1/tenants/{client['id']}/authorizations"
        (item,) = (await world.client.get(url, headers=msp.admin.headers)).json()["items"]
        assert item["user_id"] == item["user"]["id"]
        put = await world.client.put(
            url,
            json={"items": [{k: item[k] for k in ("user_id", "roles", "include_descendants")}]},
            headers=msp.admin.headers,
        )
        assert put.status_code == 200, put.text

    async def test_role_keys_may_hold_hyphens(self, world: World, msp: Msp) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={"key": "quality-manager", "name": "QM", "permissions": ["users.read"]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 201, response.text
        assert response.json()["key"] == "quality-manager"

    async def test_an_unknown_role_is_a_bad_field_not_a_missing_tenant(
        self, world: World, msp: Msp
    ) -> None:
        ann = await world.user(msp.id, [])
        before = await world.snapshot()
        granted = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={"items": [{"user_id": str(ann.user_id), "roles": ["superuser"]}]},
            headers=msp.admin.headers,
        )
        problem = assert_problem(granted, 422, "validation_error")
        assert problem["errors"] == [
            {
                "field": "items.0.roles",
                "code": "unknown_role",
                "message": "no role superuser in this organization",
            }
        ]
        offered = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={"emails": ["bo@example.com"], "authorizations": [{"roles": ["superuser"]}]},
            headers=msp.admin.headers,
        )
        problem = assert_problem(offered, 422, "validation_error")
        assert problem["errors"][0]["field"] == "authorizations.0.roles"
        assert str(msp.id) not in problem["detail"]
        assert await world.snapshot() == before


class TestFixedEmails:
    async def test_an_invitation_edit_with_another_email_says_email_immutable(
        self, world: World, msp: Msp
    ) -> None:
        made = await invited(world, msp.id, msp.admin, "cy@example.com", [offer()])
        url = f"/v1/tenants/{msp.id}/invitations/{made['id']}"
        before = await world.snapshot()
        response = await world.client.patch(
            url, json={"email": "other@example.com"}, headers=msp.admin.headers
        )
        assert_problem(response, 422, "email_immutable")
        response = await world.client.patch(
            url, json={"email": "cy@example.com"}, headers=msp.admin.headers
        )
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == "authorizations"
        assert await world.snapshot() == before
        assert await world.count(invitations) == 1

    async def test_my_email_is_accepted_unchanged_refused_otherwise_and_not_advertised(
        self, world: World, msp: Msp
    ) -> None:
        before = await world.snapshot()
        response = await world.client.patch(
            "/v1/me", json={"email": "new@example.com"}, headers=msp.admin.headers
        )
        assert_problem(response, 422, "email_immutable")
        assert await world.snapshot() == before
        same = await world.client.patch(
            "/v1/me", json={"email": msp.admin.email}, headers=msp.admin.headers
        )
        assert same.status_code == 200, same.text
        schema = (await world.client.get("/openapi.json")).json()["components"]["schemas"]
        assert "email" not in schema["MePatch"]["properties"]
        # Names change but are never cleared: null is refused (422), never a 500.
        cleared = await world.client.patch(
            "/v1/me", json={"first_name": "A", "last_name": None}, headers=msp.admin.headers
        )
        assert_problem(cleared, 422, "validation_error")


class TestWrongCodes:
    async def test_a_wrong_totp_code_is_invalid_otp_at_verify_and_login(
        self, world: World, msp: Msp
    ) -> None:
        enrolment = await world.client.post("/v1/me/two-factor/totp", headers=msp.admin.headers)
        secret = enrolment.json()["secret"]
        totp = pyotp.TOTP(secret)
        wrong = str((int(totp.at(world.clock.now())) + 1) % 1_000_000).zfill(6)
        response = await world.client.post(
            "/v1/me/two-factor/totp/verify", json={"code": wrong}, headers=msp.admin.headers
        )
        assert_problem(response, 401, "invalid_otp")
        verified = await world.client.post(
            "/v1/me/two-factor/totp/verify",
            json={"code": totp.at(world.clock.now())},
            headers=msp.admin.headers,
        )
        assert verified.status_code == 200, verified.text
        world.clock.advance(timedelta(seconds=30))
        wrong = str((int(totp.at(world.clock.now())) + 1) % 1_000_000).zfill(6)
        login = await world.client.post(
            "/v1/auth/login",
            json={"email": msp.admin.email, "password": PASSWORD, "otp": wrong},
        )
        assert_problem(login, 401, "invalid_otp")
        bad_password = await world.client.post(
            "/v1/auth/login",
            json={"email": msp.admin.email, "password": "not-it", "otp": wrong},
        )
        assert_problem(bad_password, 401, "invalid_credentials")


class TestAgentsNeedTheirUsersAccess:
    async def test_no_agent_for_a_user_without_access_to_that_account(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        other_client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/{tech.user_id}/agents",
            json={"name": "Runner", "tenant_id": other_client["id"]},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "agent_user_without_access")
        assert await world.snapshot() == before
        assert await world.count(agents) == 0
        made = await world.client.post(
            f"/v1/tenants/{msp.id}/users/{tech.user_id}/agents",
            json={"name": "Runner", "tenant_id": client["id"]},
            headers=msp.admin.headers,
        )
        assert made.status_code == 201, made.text


class TestTheRootAndKeys:
    async def test_disabling_the_msp_root_says_so(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/disable",
            json={"ids": [str(msp.id)]},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "cannot_disable_root")
        assert await world.snapshot() == before

    async def test_an_api_key_expires_within_two_years(self, world: World, msp: Msp) -> None:
        url = keys_url(msp.id, msp.admin.user_id)
        now = world.clock.now()
        before = await world.snapshot()
        for late in ("9999-12-31T00:00:00Z", (now + timedelta(days=731)).isoformat()):
            response = await world.client.post(
                url, json={"expires_at": late}, headers=msp.admin.headers
            )
            problem = assert_problem(response, 422, "validation_error")
            assert problem["errors"][0]["field"] == "expires_at"
        assert await world.snapshot() == before
        ok = await world.client.post(
            url,
            json={"expires_at": (now + timedelta(days=729)).isoformat()},
            headers=msp.admin.headers,
        )
        assert ok.status_code == 201, ok.text
