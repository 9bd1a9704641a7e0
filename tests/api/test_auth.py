"""Login, sessions, logout and /v1/me over HTTP."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from access_api.repositories.orm import audit_events, sessions, throttle_buckets, users
from tests.api.conftest import PASSWORD, Msp, World, assert_problem


class TestLogin:
    async def test_returns_a_bearer_session_stored_only_as_a_digest(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.post(
            "/v1/auth/login", json={"email": msp.admin.email, "password": PASSWORD}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["access_token"].startswith("aas_")
        assert body["expires_at"] == "2026-11-22T10:00:00Z"  # idle timeout: 60 minutes
        stored = [row.token_hash for row in await world.rows(sa.select(sessions))]
        assert world.state.keyring.digest(body["access_token"]) in stored
        assert all(body["access_token"] not in h for h in stored)
        (hash_,) = (await world.connection.execute(sa.select(users.c.password_hash))).scalars()
        assert hash_.startswith("$argon2id$v=19$m=19456,t=2,p=1$")

    async def test_records_the_session_stamps_the_login_and_forgets_the_failures(
        self, world: World, msp: Msp
    ) -> None:
        wrong = {"email": msp.admin.email, "password": PASSWORD + "-wrong"}
        assert (await world.client.post("/v1/auth/login", json=wrong)).status_code == 401
        before = await world.rows(sa.select(throttle_buckets.c.rule))
        assert {row.rule for row in before} == {"login:account", "login:address"}
        response = await world.client.post(
            "/v1/auth/login",
            json={"email": msp.admin.email, "password": PASSWORD},
            headers={"X-Request-ID": "login-1", "User-Agent": "bench/1"},
        )
        assert response.status_code == 200
        (session,) = await world.rows(
            sa.select(sessions).where(
                sessions.c.token_hash == world.state.keyring.digest(response.json()["access_token"])
            )
        )
        assert (session.user_id, session.user_agent, session.ended_at) == (
            msp.admin.user_id,
            "bench/1",
            None,
        )
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.target_id == session.id)
        )
        assert (event.action, event.actor_user_id, event.actor_kind, event.request_id) == (
            "session.created",
            msp.admin.user_id,
            "session",
            "login-1",
        )
        assert (event.tenant_id, event.changes, event.at) == (None, {}, session.created_at)
        (stamped,) = await world.rows(
            sa.select(users.c.last_login_at).where(users.c.id == msp.admin.user_id)
        )
        assert stamped.last_login_at == session.created_at
        # The success forgot the account's failures, not the address's.
        after = await world.rows(sa.select(throttle_buckets.c.rule))
        assert {row.rule for row in after} == {"login:address"}

    async def test_email_is_case_insensitive(self, world: World, msp: Msp) -> None:
        response = await world.client.post(
            "/v1/auth/login", json={"email": msp.admin.email.upper(), "password": PASSWORD}
        )
        assert response.status_code == 200

    async def test_wrong_password_and_unknown_email_read_the_same(
        self, world: World, msp: Msp
    ) -> None:
        # A failed login changes nothing but the failure counts it leaves (test_throttle.py).
        before = await world.snapshot(ignore={"throttle_buckets"})
        wrong = await world.client.post(
            "/v1/auth/login", json={"email": msp.admin.email, "password": "not the password"}
        )
        unknown = await world.client.post(
            "/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
        )
        for response in (wrong, unknown):
            body = assert_problem(response, 401, "invalid_credentials")
            body.pop("request_id")
        assert wrong.json() | {"request_id": None} == unknown.json() | {"request_id": None}
        assert await world.snapshot(ignore={"throttle_buckets"}) == before

    async def test_unknown_fields_are_refused(self, world: World, msp: Msp) -> None:
        response = await world.client.post(
            "/v1/auth/login",
            json={"email": msp.admin.email, "password": PASSWORD, "remember_me": True},
        )
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"] == [
            {
                "field": "remember_me",
                "code": "extra_forbidden",
                "message": body["errors"][0]["message"],
            }
        ]

    async def test_validation_errors_never_echo_the_password(self, world: World) -> None:
        secret = "hunter2-" * 200  # over the length cap
        response = await world.client.post(
            "/v1/auth/login", json={"email": "a@example.com", "password": secret}
        )
        assert_problem(response, 422, "validation_error")
        assert "hunter2" not in response.text


class TestSessions:
    async def test_a_session_token_authenticates(self, world: World, msp: Msp) -> None:
        response = await world.client.get("/v1/me", headers=msp.admin.headers)
        assert response.status_code == 200
        assert response.json()["email"] == msp.admin.email

    async def test_missing_or_unknown_credentials_are_unauthenticated(self, world: World) -> None:
        missing = await world.client.get("/v1/me")
        assert_problem(missing, 401, "unauthenticated")
        assert missing.headers["www-authenticate"].startswith("Bearer")
        forged = await world.client.get(
            "/v1/me", headers={"Authorization": "Bearer aas_not-a-real-token"}
        )
        assert_problem(forged, 401, "unauthenticated")
        foreign = await world.client.get("/v1/me", headers={"Authorization": "Bearer xyz_1"})
        assert_problem(foreign, 401, "unauthenticated")

    async def test_idle_sessions_expire_after_the_users_timeout(
        self, world: World, msp: Msp
    ) -> None:
        world.clock.advance(timedelta(minutes=59))
        assert (await world.client.get("/v1/me", headers=msp.admin.headers)).status_code == 200
        # That use moved the idle clock: 59 more minutes are fine, 61 are not.
        world.clock.advance(timedelta(minutes=59))
        assert (await world.client.get("/v1/me", headers=msp.admin.headers)).status_code == 200
        world.clock.advance(timedelta(minutes=61))
        response = await world.client.get("/v1/me", headers=msp.admin.headers)
        assert_problem(response, 401, "unauthenticated")

    async def test_activity_cannot_keep_a_session_alive_forever(
        self, world: World, msp: Msp
    ) -> None:
        logged_in_at = world.clock.now()
        for _ in range(15 * 24 * 2):
            world.clock.advance(timedelta(minutes=30))
            response = await world.client.get("/v1/me", headers=msp.admin.headers)
            if response.status_code == 401:
                break
        assert_problem(response, 401, "unauthenticated")
        assert world.clock.now() - logged_in_at == timedelta(days=14)  # the absolute lifetime

    async def test_logout_ends_the_session(self, world: World, msp: Msp) -> None:
        response = await world.client.post("/v1/auth/logout", headers=msp.admin.headers)
        assert response.status_code == 204
        assert_problem(
            await world.client.get("/v1/me", headers=msp.admin.headers), 401, "unauthenticated"
        )
        (ended,) = (
            await world.connection.execute(
                sa.select(sessions.c.ended_at).where(sessions.c.id.isnot(None))
            )
        ).scalars()
        assert ended is not None
        actions = (await world.connection.execute(sa.select(audit_events.c.action))).scalars()
        assert {"session.created", "session.ended"} <= set(actions)


class TestMe:
    async def test_shows_where_access_starts_and_pages_the_reachable_tenants(
        self, world: World, msp: Msp
    ) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Contoso Group")
        client = await world.tenant(multi["id"], msp.admin, name="Contoso East")
        await world.tenant(multi["id"], msp.admin, name="Contoso West")
        tech = await world.user(
            msp.id, [(multi["id"], ["read_only"], True), (client["id"], ["admin"], False)]
        )
        body = (await world.client.get("/v1/me", headers=tech.headers)).json()
        assert body["credential"]["kind"] == "session"
        # Where the reach starts (the grants), and how far it goes (a count): not the tenants.
        assert "tenants" not in body
        assert [
            (g["tenant"]["name"], g["roles"], g["include_descendants"]) for g in body["grants"]
        ] == [("Contoso East", ["admin"], False), ("Contoso Group", ["read_only"], True)]
        assert body["counts"] == {"tenants": 3, "grants": 2}
        reached = {t["name"]: t for t in await world.my_tenants(tech.headers, limit=1)}
        assert list(reached) == ["Contoso East", "Contoso Group", "Contoso West"]
        assert reached["Contoso Group"]["roles"] == ["read_only"]
        assert reached["Contoso East"]["roles"] == ["admin", "read_only"]
        assert reached["Contoso West"]["roles"] == ["read_only"]
        assert "clients.write" in reached["Contoso East"]["permissions"]
        assert reached["Contoso Group"]["permissions"] == [
            "audit.read",
            "invitations.read",
            "tenants.read",
            "users.read",
        ]
        found = await world.my_tenants(tech.headers, q="WEST")
        assert [t["id"] for t in found] == [reached["Contoso West"]["id"]]
        by_prefix = await world.my_tenants(tech.headers, q=client["domain_prefix"])
        assert [t["name"] for t in by_prefix] == ["Contoso East"]
        assert await world.my_tenants(tech.headers, q="100%_") == []

    async def test_the_tenant_pages_refuse_bad_input_and_strangers(
        self, world: World, msp: Msp
    ) -> None:
        cases = [{"limit": "0"}, {"limit": "201"}, {"cursor": "not-a-cursor"}, {"q": "x" * 300}]
        for params in cases:
            response = await world.client.get(
                "/v1/me/tenants", params=params, headers=msp.admin.headers
            )
            assert response.status_code == 422, (params, response.text)
        assert_problem(await world.client.get("/v1/me/tenants"), 401, "unauthenticated")

    async def test_a_user_without_roles_logs_in_and_sees_no_tenant(
        self, world: World, msp: Msp
    ) -> None:
        nobody = await world.user(msp.id, [])
        body = (await world.client.get("/v1/me", headers=nobody.headers)).json()
        assert (body["grants"], body["counts"]) == ([], {"tenants": 0, "grants": 0})
        assert await world.my_tenants(nobody.headers) == []
        response = await world.client.get(f"/v1/tenants/{msp.id}", headers=nobody.headers)
        assert_problem(response, 403, "no_access")
