"""Security policy per tenant over HTTP (SPEC §5.2): set, inherited, enforced everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from access_api.repositories.orm import audit_events, security_policies, users
from tests.api.conftest import PASSWORD, Login, Msp, World, assert_problem, delivered
from tests.mail import SmtpServer, accept_token

LOCAL = "127.0.0.1/32"  # the test client's own address (httpx's ASGI transport)


def policy_url(tenant_id: UUID | str, suffix: str = "") -> str:
    return f"/v1/tenants/{tenant_id}/security-policy{suffix}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def put(world: World, by: Login, tenant_id: UUID | str, **policy: Any) -> httpx.Response:
    return await world.client.put(policy_url(tenant_id), json=policy, headers=by.headers)


async def set_policy(world: World, by: Login, tenant_id: UUID | str, **policy: Any) -> None:
    response = await put(world, by, tenant_id, **policy)
    assert response.status_code == 200, response.text


async def with_second_factor(world: World, user: Login) -> None:
    await world.connection.execute(
        sa.update(users).where(users.c.id == user.user_id).values(two_factor="totp")
    )


@pytest.fixture
async def tree(world: World, msp: Msp) -> dict[str, Any]:
    """root -> multi-client -> client, and a technician with admin on the client only."""
    multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
    client = await world.tenant(multi["id"], msp.admin)
    tech = await world.user(msp.id, [(client["id"], ["admin"], False)])
    return {"multi": multi["id"], "client": client["id"], "tech": tech}


def client_from(app: Any, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def elsewhere(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_from(app, "198.51.100.7") as client:
        yield client


class TestSettingAPolicy:
    async def test_a_policy_is_read_back_and_audited_with_before_and_after(
        self, world: World, msp: Msp
    ) -> None:
        response = await put(
            world,
            msp.admin,
            msp.id,
            allowed_ip_ranges=["10.0.0.0/8", " 127.0.0.1 ", "2001:db8::/32"],
            max_session_timeout_minutes=30,
        )
        assert response.status_code == 200, response.text
        expected = {
            "require_two_factor": None,
            "allowed_ip_ranges": ["10.0.0.0/8", "127.0.0.1/32", "2001:db8::/32"],
            "max_session_timeout_minutes": 30,
            "password_min_length": None,
        }
        assert response.json() == expected
        got = await world.client.get(policy_url(msp.id), headers=msp.admin.headers)
        assert got.json() == expected
        assert got.headers["ETag"]
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "policy.updated")
        )
        assert event.target_type == "tenant"
        assert event.target_id == msp.id
        assert event.changes["max_session_timeout_minutes"] == {"before": None, "after": 30}
        assert "password_min_length" not in event.changes

    async def test_a_policy_that_sets_nothing_leaves_no_row(self, world: World, msp: Msp) -> None:
        await set_policy(world, msp.admin, msp.id, password_min_length=20)
        await set_policy(world, msp.admin, msp.id)
        assert await world.count(security_policies) == 0

    @pytest.mark.parametrize(
        ("policy", "field", "code"),
        [
            ({"allowed_ip_ranges": ["10.0.0.1/8"]}, "allowed_ip_ranges.0", "invalid_cidr"),
            ({"allowed_ip_ranges": ["not an address"]}, "allowed_ip_ranges.0", "invalid_cidr"),
            ({"allowed_ip_ranges": ["2001:db8::/129"]}, "allowed_ip_ranges.0", "invalid_cidr"),
            ({"allowed_ip_ranges": []}, "allowed_ip_ranges", "empty"),
            ({"max_session_timeout_minutes": 2}, "max_session_timeout_minutes", "out_of_range"),
            ({"password_min_length": 6}, "password_min_length", "out_of_range"),
        ],
    )
    async def test_bad_values_are_refused_and_change_nothing(
        self, world: World, msp: Msp, policy: dict[str, Any], field: str, code: str
    ) -> None:
        before = await world.snapshot()
        body = assert_problem(
            await put(world, msp.admin, msp.id, **policy), 422, "validation_error"
        )
        assert {(item["field"], item["code"]) for item in body["errors"]} == {(field, code)}
        assert await world.snapshot() == before

    async def test_unknown_fields_are_refused(self, world: World, msp: Msp) -> None:
        response = await put(world, msp.admin, msp.id, require_mfa=True)
        assert_problem(response, 422, "validation_error")

    async def test_needs_policies_write(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        assert (
            await world.client.get(policy_url(msp.id), headers=reader.headers)
        ).status_code == 200
        assert_problem(await put(world, reader, msp.id, require_two_factor=True), 403, "forbidden")
        assert await world.snapshot() == before


class TestInheritance:
    async def test_strictest_wins_over_three_levels_and_names_its_source(
        self, world: World, msp: Msp, tree: dict[str, Any]
    ) -> None:
        multi, client = tree["multi"], tree["client"]
        await set_policy(
            world, msp.admin, msp.id,
            allowed_ip_ranges=["127.0.0.0/8", "10.0.0.0/8"], max_session_timeout_minutes=60,
            password_min_length=14,
        )  # fmt: skip
        await set_policy(
            world, msp.admin, multi, max_session_timeout_minutes=20, password_min_length=13
        )
        await set_policy(
            world, msp.admin, client,
            require_two_factor=False, allowed_ip_ranges=[LOCAL], max_session_timeout_minutes=45,
            password_min_length=16,
        )  # fmt: skip
        response = await world.client.get(
            policy_url(client, "/effective"), headers=msp.admin.headers
        )
        assert response.json() == {
            "tenant_id": client,
            "require_two_factor": {"value": False, "tenant_id": None},
            "allowed_ip_ranges": [
                {"ranges": ["127.0.0.0/8", "10.0.0.0/8"], "tenant_id": str(msp.id)},
                {"ranges": [LOCAL], "tenant_id": client},
            ],
            "max_session_timeout_minutes": {"value": 20, "tenant_id": multi},
            "password_min_length": {"value": 16, "tenant_id": client},
        }
        at_multi = (
            await world.client.get(policy_url(multi, "/effective"), headers=msp.admin.headers)
        ).json()
        assert at_multi["password_min_length"] == {"value": 14, "tenant_id": str(msp.id)}
        assert at_multi["max_session_timeout_minutes"] == {"value": 20, "tenant_id": multi}

    async def test_a_child_cannot_loosen_what_is_required_above(
        self, world: World, msp: Msp, tree: dict[str, Any]
    ) -> None:
        await with_second_factor(world, msp.admin)
        await set_policy(world, msp.admin, tree["multi"], require_two_factor=True)
        await set_policy(world, msp.admin, tree["client"], require_two_factor=False)
        effective = (
            await world.client.get(
                policy_url(tree["client"], "/effective"), headers=msp.admin.headers
            )
        ).json()
        assert effective["require_two_factor"] == {"value": True, "tenant_id": tree["multi"]}
        response = await world.client.get(
            f"/v1/tenants/{tree['client']}", headers=tree["tech"].headers
        )
        assert_problem(response, 403, "two_factor_required")


class TestEnforcement:
    async def test_two_factor_required_refuses_every_credential_kind(
        self, world: World, msp: Msp, tree: dict[str, Any]
    ) -> None:
        tech: Login = tree["tech"]
        client = tree["client"]
        key = (
            await world.client.post(
                f"/v1/tenants/{client}/users/{tech.user_id}/api-keys", json={}, headers=tech.headers
            )
        ).json()["key"]
        agent = (
            await world.client.post(
                f"/v1/tenants/{client}/users/{tech.user_id}/agents",
                json={"name": "Runner"},
                headers=tech.headers,
            )
        ).json()["token"]
        await with_second_factor(world, msp.admin)
        await set_policy(world, msp.admin, msp.id, require_two_factor=True)
        before = await world.snapshot(ignore=["sessions", "api_keys"])
        for token in (tech.token, key):
            response = await world.client.get(f"/v1/tenants/{client}", headers=bearer(token))
            assert_problem(response, 403, "two_factor_required")
        beat = await world.client.post("/v1/agent/heartbeat", headers=bearer(agent))
        assert_problem(beat, 403, "two_factor_required")
        assert await world.snapshot(ignore=["sessions", "api_keys"]) == before
        # The person can still see why, and enrol.
        me = await world.client.get("/v1/me", headers=tech.headers)
        assert me.status_code == 200
        mine = await world.my_tenants(tech.headers)
        assert [t["blocked_by"] for t in mine] == [["two_factor_required"]]
        enrol = await world.client.post("/v1/me/two-factor/totp", headers=tech.headers)
        assert enrol.status_code in (200, 201), enrol.text
        await with_second_factor(world, tech)
        for token in (tech.token, key):
            response = await world.client.get(f"/v1/tenants/{client}", headers=bearer(token))
            assert response.status_code == 200
        beat = await world.client.post("/v1/agent/heartbeat", headers=bearer(agent))
        assert beat.status_code in (200, 204), beat.text

    async def test_an_address_outside_the_ranges_is_refused_for_every_credential_kind(
        self, world: World, msp: Msp, tree: dict[str, Any], elsewhere: httpx.AsyncClient
    ) -> None:
        tech: Login = tree["tech"]
        client = tree["client"]
        key = (
            await world.client.post(
                f"/v1/tenants/{client}/users/{tech.user_id}/api-keys", json={}, headers=tech.headers
            )
        ).json()["key"]
        agent = (
            await world.client.post(
                f"/v1/tenants/{client}/users/{tech.user_id}/agents",
                json={"name": "Runner"},
                headers=tech.headers,
            )
        ).json()["token"]
        await set_policy(world, msp.admin, tree["multi"], allowed_ip_ranges=[LOCAL])
        before = await world.snapshot(ignore=["sessions", "api_keys"])
        for token in (tech.token, key):
            response = await elsewhere.get(f"/v1/tenants/{client}", headers=bearer(token))
            assert_problem(response, 403, "ip_not_allowed")
        assert_problem(
            await elsewhere.post("/v1/agent/heartbeat", headers=bearer(agent)),
            403,
            "ip_not_allowed",
        )
        assert await world.snapshot(ignore=["sessions", "api_keys"]) == before
        me = await elsewhere.get("/v1/me/tenants", headers=tech.headers)
        assert [t["blocked_by"] for t in me.json()["items"]] == [["ip_not_allowed"]]
        # From inside the range everything works, and the root (no ranges) works from anywhere.
        for token in (tech.token, key):
            response = await world.client.get(f"/v1/tenants/{client}", headers=bearer(token))
            assert response.status_code == 200
        assert (
            await elsewhere.get(f"/v1/tenants/{msp.id}", headers=msp.admin.headers)
        ).status_code == 200
        assert_problem(
            await elsewhere.get(f"/v1/tenants/{tree['multi']}", headers=msp.admin.headers),
            403,
            "ip_not_allowed",
        )

    async def test_order_of_checks_unreachable_disabled_policy_permission(
        self, world: World, msp: Msp, tree: dict[str, Any]
    ) -> None:
        tech: Login = tree["tech"]
        reader = await world.user(msp.id, [(tree["client"], ["read_only"], False)])
        await with_second_factor(world, msp.admin)
        await set_policy(world, msp.admin, msp.id, require_two_factor=True)
        # Out of reach: absent, whatever the policy.
        assert_problem(
            await world.client.get(f"/v1/tenants/{msp.id}", headers=tech.headers), 404, "not_found"
        )
        # Policy before permission.
        response = await world.client.post(
            f"/v1/tenants/{tree['client']}/clients/disable",
            json={"ids": [str(uuid4())]},
            headers=reader.headers,
        )
        assert_problem(response, 403, "two_factor_required")
        # Disabled before policy.
        disabled = await world.client.post(
            f"/v1/tenants/{tree['multi']}/clients/disable",
            json={"ids": [tree["client"]]},
            headers=msp.admin.headers,
        )
        assert disabled.status_code in (200, 204), disabled.text
        response = await world.client.get(f"/v1/tenants/{tree['client']}", headers=tech.headers)
        assert_problem(response, 403, "tenant_disabled")

    async def test_ipv6_ranges(self, world: World, msp: Msp, app: FastAPI) -> None:
        await set_policy(world, msp.admin, msp.id, allowed_ip_ranges=[LOCAL, "2001:db8:10::/48"])
        url = f"/v1/tenants/{msp.id}"
        async with client_from(app, "2001:db8:10::7") as inside:
            assert (await inside.get(url, headers=msp.admin.headers)).status_code == 200
        async with client_from(app, "2001:db8:11::7") as outside:
            assert_problem(await outside.get(url, headers=msp.admin.headers), 403, "ip_not_allowed")
        async with client_from(app, "::ffff:127.0.0.1") as mapped:
            assert (await mapped.get(url, headers=msp.admin.headers)).status_code == 200


class TestClientAddressBehindAProxy:
    """uvicorn applies --forwarded-allow-ips with ProxyHeadersMiddleware; the service reads
    request.client, so it judges what uvicorn decided the client's address is."""

    async def test_a_trusted_proxy_is_judged_by_the_forwarded_address(
        self, world: World, msp: Msp, app: FastAPI
    ) -> None:
        await set_policy(world, msp.admin, msp.id, allowed_ip_ranges=[LOCAL, "203.0.113.0/24"])
        proxied = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=["10.9.9.9"])
        url = f"/v1/tenants/{msp.id}"
        transport = httpx.ASGITransport(app=cast(Any, proxied), client=("10.9.9.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as proxy:
            inside = {"X-Forwarded-For": "203.0.113.20"} | msp.admin.headers
            assert (await proxy.get(url, headers=inside)).status_code == 200
            outside = {"X-Forwarded-For": "198.51.100.1"} | msp.admin.headers
            assert_problem(await proxy.get(url, headers=outside), 403, "ip_not_allowed")

    async def test_an_untrusted_peer_is_judged_by_the_connection(
        self, world: World, msp: Msp, app: FastAPI
    ) -> None:
        await set_policy(world, msp.admin, msp.id, allowed_ip_ranges=[LOCAL, "203.0.113.0/24"])
        proxied = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=["10.9.9.9"])
        transport = httpx.ASGITransport(app=cast(Any, proxied), client=("198.51.100.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as spoof:
            headers = {"X-Forwarded-For": "203.0.113.20"} | msp.admin.headers
            response = await spoof.get(f"/v1/tenants/{msp.id}", headers=headers)
            assert_problem(response, 403, "ip_not_allowed")


class TestLockOutGuard:
    async def test_ranges_that_leave_out_the_author_are_refused(
        self, world: World, msp: Msp
    ) -> None:
        before = await world.snapshot()
        response = await put(world, msp.admin, msp.id, allowed_ip_ranges=["10.0.0.0/8"])
        assert_problem(response, 422, "would_lock_you_out")
        assert await world.snapshot() == before

    async def test_requiring_two_factor_without_one_is_refused(
        self, world: World, msp: Msp
    ) -> None:
        before = await world.snapshot()
        response = await put(world, msp.admin, msp.id, require_two_factor=True)
        assert_problem(response, 422, "would_lock_you_out")
        assert await world.snapshot() == before
        await with_second_factor(world, msp.admin)
        assert (await put(world, msp.admin, msp.id, require_two_factor=True)).status_code == 200


class TestSessionsAndPasswords:
    async def test_the_idle_timeout_is_capped_where_the_user_holds_a_grant(
        self, world: World, msp: Msp, tree: dict[str, Any]
    ) -> None:
        await set_policy(world, msp.admin, tree["client"], max_session_timeout_minutes=15)
        login = await world.client.post(
            "/v1/auth/login", json={"email": tree["tech"].email, "password": PASSWORD}
        )
        now = world.clock.now()
        assert login.json()["expires_at"].startswith(
            (now + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M")
        )
        token = login.json()["access_token"]
        world.clock.advance(timedelta(minutes=16))
        assert_problem(
            await world.client.get("/v1/me", headers=bearer(token)), 401, "unauthenticated"
        )
        # The MSP admin reaches the client through include_descendants: capped too.
        admin = await world.client.get("/v1/me", headers=msp.admin.headers)
        assert admin.status_code == 401

    async def test_a_password_change_meets_the_longest_minimum(
        self, world: World, msp: Msp, tree: dict[str, Any]
    ) -> None:
        await set_policy(world, msp.admin, tree["multi"], password_min_length=30)
        tech: Login = tree["tech"]
        before = await world.snapshot()
        response = await world.client.post(
            "/v1/me/password",
            json={"current_password": PASSWORD, "new_password": "a much longer passphrase"},
            headers=tech.headers,
        )
        body = assert_problem(response, 422, "validation_error")
        assert [e["code"] for e in body["errors"]] == ["password_too_short"]
        assert await world.snapshot() == before

    async def test_accepting_an_invitation_meets_the_minimum_where_access_is_given(
        self, world: World, msp: Msp, tree: dict[str, Any], smtp: SmtpServer
    ) -> None:
        await set_policy(world, msp.admin, tree["client"], password_min_length=30)
        invited = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={
                "emails": ["new.person@example.com"],
                "authorizations": [
                    {
                        "tenant_id": tree["client"],
                        "roles": ["read_only"],
                        "include_descendants": False,
                    }
                ],
            },
            headers=msp.admin.headers,
        )
        assert invited.status_code in (200, 201), invited.text
        mail = (await delivered(world, smtp))["new.person@example.com"]
        token = accept_token(mail)
        before = await world.snapshot(ignore=["throttle_buckets"])
        response = await world.client.post(
            "/v1/invitations/accept",
            json={
                "token": token,
                "first_name": "New",
                "last_name": "Person",
                "password": "a much longer passphrase",
            },
        )
        body = assert_problem(response, 422, "validation_error")
        assert [e["code"] for e in body["errors"]] == ["password_too_short"]
        assert await world.snapshot(ignore=["throttle_buckets"]) == before
