"""Single sign-on through a real OpenID provider (oidc-provider on loopback), driven like a
browser with httpx: start, the provider's login and consent, callback, exchange."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from access_api.repositories.orm import audit_events, sso_codes, sso_connections, users
from access_api.services.clock import FrozenClock
from tests.api.conftest import Msp, World, assert_problem
from tests.api.test_totp import code as totp
from tests.api.test_totp import enable
from tests.live import count_rows, inserts_refused, live_client, live_msp, state_of
from tests.oidc import provider as idp
from tests.oidc.servers import serving


@pytest.fixture(scope="session")
def provider() -> Iterator[idp.Provider]:
    with idp.running() as running:
        yield running


@pytest.fixture
def clock() -> FrozenClock:
    # ID tokens carry the provider's (real) time: the app's clock starts at the real time too.
    return FrozenClock(datetime.now(UTC))


def connection_body(provider: idp.Provider, domains: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "issuer": provider.issuer,
        "client_id": idp.CLIENT_ID,
        "client_secret": idp.CLIENT_SECRET,
        "domains": domains,
        **extra,
    }


def new_domain() -> str:
    return f"acme-{secrets.token_hex(3)}.test"


async def connect(
    world: World, tenant_id: UUID | str, provider: idp.Provider, domain: str, msp: Msp, **extra: Any
) -> dict[str, Any]:
    answer = await world.client.put(
        f"/v1/tenants/{tenant_id}/sso",
        json=connection_body(provider, [domain], **extra),
        headers=msp.admin.headers,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def through_provider(
    client: httpx.AsyncClient, login: str, *, start: dict[str, str] | None = None
) -> str:
    """Start at the API, sign in at the provider; the callback URL the browser comes back to."""
    email = login.rsplit(":", 1)[-1]
    started = await client.get("/v1/auth/sso/start", params=start or {"email": email})
    assert started.status_code == 302, started.text
    back = await idp.sign_in(started.headers["location"], login)
    assert back.startswith(idp.CALLBACK), back
    return back


async def callback(client: httpx.AsyncClient, back: str) -> dict[str, str]:
    """Deliver the provider's answer to the API; the parameters of /sso/complete."""
    answer = await client.get("/v1/auth/sso/callback?" + urlsplit(back).query)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith("https://app.access-api.test/sso/complete?"), location
    return query(location)


async def sso_login(client: httpx.AsyncClient, login: str) -> dict[str, str]:
    return await callback(client, await through_provider(client, login))


class TestLogin:
    async def test_a_member_signs_in_through_the_provider_and_gets_a_session(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        await connect(world, msp.id, provider, domain, msp)
        member = await world.user(msp.id, [(msp.id, ["read_only"], True)], email=f"ann@{domain}")

        done = await sso_login(world.client, f"ann@{domain}")
        assert set(done) == {"code"}
        exchanged = await world.client.post("/v1/auth/sso/exchange", json={"code": done["code"]})
        assert exchanged.status_code == 200, exchanged.text
        me = await world.client.get(
            "/v1/me", headers={"Authorization": f"Bearer {exchanged.json()['access_token']}"}
        )
        assert me.json()["id"] == str(member.user_id)
        again = await world.client.post("/v1/auth/sso/exchange", json={"code": done["code"]})
        assert_problem(again, 400, "invalid_token")

    async def test_an_unknown_person_is_created_just_in_time_with_the_configured_roles(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        domain = new_domain()
        jit = {"enabled": True, "roles": ["read_only"], "include_descendants": False}
        await connect(world, client["id"], provider, domain, msp, jit=jit)

        done = await sso_login(world.client, f"bob@{domain}")
        exchanged = await world.client.post("/v1/auth/sso/exchange", json={"code": done["code"]})
        assert exchanged.status_code == 200, exchanged.text
        headers = {"Authorization": f"Bearer {exchanged.json()['access_token']}"}
        me = (await world.client.get("/v1/me", headers=headers)).json()
        assert me["email"] == f"bob@{domain}"
        assert me["first_name"] == "Bob"
        assert [(t["id"], t["roles"]) for t in await world.my_tenants(headers)] == [
            (client["id"], ["read_only"])
        ]
        assert [(g["tenant"]["id"], g["roles"]) for g in me["grants"]] == [
            (client["id"], ["read_only"])
        ]
        # The next login finds the same person.
        again = await sso_login(world.client, f"bob@{domain}")
        assert "code" in again
        assert await world.count(users, users.c.email == f"bob@{domain}") == 1

    async def test_without_jit_an_unknown_person_is_refused_and_nothing_is_created(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        await connect(world, msp.id, provider, domain, msp)
        back = await through_provider(world.client, f"carl@{domain}")
        before = await world.snapshot(ignore={"sso_logins", "audit_events"})

        assert await callback(world.client, back) == {"error": "sso_user_unknown"}
        assert await world.snapshot(ignore={"sso_logins", "audit_events"}) == before
        assert await world.count(sso_codes) == 0

    async def test_a_person_of_another_organization_is_refused_even_with_jit(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        other = await world.msp()
        await world.user(other.id, [(other.id, ["admin"], True)], email=f"dana@{domain}")
        jit = {"enabled": True, "roles": ["admin"], "include_descendants": True}
        await connect(world, msp.id, provider, domain, msp, jit=jit)

        assert await sso_login(world.client, f"dana@{domain}") == {"error": "sso_user_unknown"}
        assert await world.count(sso_codes) == 0

    async def test_start_by_domain_prefix_uses_the_nearest_connection_above(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        client = await world.tenant(msp.id, msp.admin)
        await connect(world, msp.id, provider, domain, msp)
        await world.user(msp.id, [(msp.id, ["admin"], True)], email=f"eve@{domain}")

        back = await through_provider(
            world.client, f"eve@{domain}", start={"domain_prefix": client["domain_prefix"]}
        )
        assert "code" in await callback(world.client, back)

    async def test_an_unconnected_domain_is_not_configured(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        answer = await world.client.get("/v1/auth/sso/start", params={"email": "x@nowhere.test"})
        assert_problem(answer, 404, "sso_not_configured")
        answer = await world.client.get("/v1/auth/sso/start", params={"domain_prefix": "nope"})
        assert_problem(answer, 404, "sso_not_configured")
        answer = await world.client.get("/v1/auth/sso/start")
        assert_problem(answer, 422, "validation_error")
        assert await world.snapshot() == before

    async def test_a_code_expires_after_a_minute(
        self, world: World, msp: Msp, provider: idp.Provider, clock: FrozenClock
    ) -> None:
        domain = new_domain()
        await connect(world, msp.id, provider, domain, msp)
        await world.user(msp.id, [(msp.id, ["admin"], True)], email=f"fay@{domain}")
        done = await sso_login(world.client, f"fay@{domain}")
        clock.advance(timedelta(seconds=61))
        answer = await world.client.post("/v1/auth/sso/exchange", json={"code": done["code"]})
        assert_problem(answer, 400, "invalid_token")
        answer = await world.client.post("/v1/auth/sso/exchange", json={"code": "asc_forged"})
        assert_problem(answer, 400, "invalid_token")


class TestRefusedCallbacks:
    """Each check of the callback, shown by a provider (or a browser) that breaks it: the
    browser lands on /sso/complete?error=<code>, and no code is issued."""

    @pytest.fixture
    async def domain(self, world: World, msp: Msp, provider: idp.Provider) -> str:
        domain = new_domain()
        jit = {"enabled": True, "roles": ["read_only"], "include_descendants": False}
        await connect(world, msp.id, provider, domain, msp, jit=jit)
        return domain

    async def refused(self, world: World, back: str) -> str:
        done = await callback(world.client, back)
        assert set(done) == {"error"}
        assert await world.count(sso_codes) == 0
        assert await world.count(users, users.c.email.like("%@acme-%")) == 0
        return done["error"]

    async def test_a_tampered_state(self, world: World, domain: str) -> None:
        back = await through_provider(world.client, f"gil@{domain}")
        state = query(back)["state"]
        tampered = back.replace(f"state={state}", f"state={state[:-2]}xx")
        assert await self.refused(world, tampered) == "invalid_state"

    async def test_a_state_is_answered_once(self, world: World, domain: str) -> None:
        back = await through_provider(world.client, f"gil@{domain}")
        first = await callback(world.client, back)
        assert "code" in first
        assert await callback(world.client, back) == {"error": "invalid_state"}

    async def test_a_state_older_than_ten_minutes(
        self, world: World, domain: str, clock: FrozenClock
    ) -> None:
        back = await through_provider(world.client, f"gil@{domain}")
        clock.advance(timedelta(minutes=10, seconds=1))
        assert await self.refused(world, back) == "invalid_state"

    async def test_a_wrong_nonce(self, world: World, domain: str) -> None:
        back = await through_provider(world.client, f"wrong-nonce:hal@{domain}")
        assert await self.refused(world, back) == "invalid_id_token"

    async def test_a_token_for_another_audience(self, world: World, domain: str) -> None:
        back = await through_provider(world.client, f"wrong-aud:hal@{domain}")
        assert await self.refused(world, back) == "invalid_id_token"

    async def test_an_expired_id_token(self, world: World, domain: str, clock: FrozenClock) -> None:
        back = await through_provider(world.client, f"hal@{domain}")
        # The provider's ID tokens live 120 s; we allow 60 s of clock skew.
        clock.advance(timedelta(minutes=4))
        assert await self.refused(world, back) == "invalid_id_token"

    async def test_an_unverified_email(self, world: World, domain: str) -> None:
        back = await through_provider(world.client, f"unverified:hal@{domain}")
        assert await self.refused(world, back) == "email_not_verified"

    async def test_an_email_of_a_domain_the_connection_does_not_claim(
        self, world: World, msp: Msp, domain: str, provider: idp.Provider
    ) -> None:
        # The provider vouches for an address of another connection's domain: it may not.
        other = await world.msp()
        elsewhere = new_domain()
        await connect(world, other.id, provider, elsewhere, other)
        started = await world.client.get("/v1/auth/sso/start", params={"email": f"x@{domain}"})
        back = await idp.sign_in(started.headers["location"], f"ivy@{elsewhere}")
        assert await self.refused(world, back) == "sso_domain_mismatch"

    async def test_the_provider_reports_an_error(self, world: World, domain: str) -> None:
        back = await through_provider(world.client, f"hal@{domain}")
        state = query(back)["state"]
        answer = await world.client.get(
            "/v1/auth/sso/callback", params={"state": state, "error": "access_denied"}
        )
        assert query(answer.headers["location"]) == {"error": "idp_error"}

    async def test_a_refusal_is_audited_without_tokens(self, world: World, domain: str) -> None:
        back = await through_provider(world.client, f"unverified:hal@{domain}")
        await callback(world.client, back)
        rows = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "sso.login_refused")
        )
        assert len(rows) == 1
        assert query(back)["code"] not in str(tuple(rows[0]))


class TestEnforce:
    async def test_password_login_for_the_domains_answers_sso_required(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        member = await world.user(msp.id, [(msp.id, ["admin"], True)], email=f"jo@{domain}")
        await connect(world, msp.id, provider, domain, msp, enforce=True)
        before = await world.snapshot(ignore={"throttle_buckets"})
        answer = await world.client.post(
            "/v1/auth/login", json={"email": member.email, "password": member.password}
        )
        assert_problem(answer, 401, "sso_required")
        assert await world.snapshot(ignore={"throttle_buckets"}) == before
        # Through the IdP they still get in.
        assert "code" in await sso_login(world.client, member.email)

    async def test_without_enforce_password_login_still_works(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        member = await world.user(msp.id, [(msp.id, ["admin"], True)], email=f"kim@{domain}")
        await connect(world, msp.id, provider, domain, msp)
        assert (await world.login(member.email)).token


class TestConnection:
    async def test_the_secret_is_sealed_at_rest_and_never_returned(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        saved = await connect(world, msp.id, provider, domain, msp)
        read = await world.client.get(f"/v1/tenants/{msp.id}/sso", headers=msp.admin.headers)
        assert read.status_code == 200
        for body in (saved, read.json()):
            assert idp.CLIENT_SECRET not in str(body)
            assert body["domains"] == [domain]
            assert body["redirect_uri"] == idp.CALLBACK
        (row,) = await world.rows(sa.select(sso_connections.c.client_secret))
        assert idp.CLIENT_SECRET not in row.client_secret
        events = await world.rows(sa.select(audit_events.c.changes))
        assert all(idp.CLIENT_SECRET not in str(e.changes) for e in events)
        # A replacement without a secret keeps the secret: logins still work.
        body = connection_body(provider, [domain])
        del body["client_secret"]
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/sso", json=body, headers=msp.admin.headers
        )
        assert answer.status_code == 200, answer.text
        await world.user(msp.id, [(msp.id, ["admin"], True)], email=f"lu@{domain}")
        assert "code" in await sso_login(world.client, f"lu@{domain}")

    async def test_a_domain_belongs_to_one_connection(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        await connect(world, msp.id, provider, domain, msp)
        client = await world.tenant(msp.id, msp.admin)
        before = await world.snapshot()
        answer = await world.client.put(
            f"/v1/tenants/{client['id']}/sso",
            json=connection_body(provider, ["free.test", domain.upper()]),
            headers=msp.admin.headers,
        )
        body = assert_problem(answer, 409, "sso_domain_taken")
        assert domain in body["detail"]
        assert await world.snapshot() == before

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"domains": ["not a domain"]}, "domains"),
            ({"domains": []}, "domains"),
            ({"issuer": "ftp://idp.example.com"}, "issuer"),
            ({"jit": {"enabled": True, "roles": ["no-such-role"]}}, "jit.roles"),
            ({"surprise": 1}, "surprise"),
        ],
    )
    async def test_bad_settings_are_refused(
        self,
        world: World,
        msp: Msp,
        provider: idp.Provider,
        change: dict[str, Any],
        field: str,
    ) -> None:
        before = await world.snapshot()
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/sso",
            json=connection_body(provider, [new_domain()]) | change,
            headers=msp.admin.headers,
        )
        body = assert_problem(answer, 422, "validation_error")
        assert any(field in e["field"] for e in body["errors"]), body
        assert await world.snapshot() == before

    async def test_a_new_connection_needs_a_secret(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        body = connection_body(provider, [new_domain()])
        del body["client_secret"]
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/sso", json=body, headers=msp.admin.headers
        )
        assert_problem(answer, 422, "validation_error")

    async def test_an_issuer_without_discovery_is_refused(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        dead = f"http://127.0.0.1:{idp.free_port()}"
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/sso",
            json={**connection_body(idp.Provider(dead), [new_domain()])},
            headers=msp.admin.headers,
        )
        assert_problem(answer, 422, "sso_discovery_failed")
        assert await world.snapshot() == before

    async def test_it_takes_sso_manage_and_is_absent_out_of_reach(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        other = await world.msp()
        before = await world.snapshot()
        body = connection_body(provider, [new_domain()])
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/sso", json=body, headers=reader.headers
        )
        assert_problem(answer, 403, "forbidden")
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/sso", json=body, headers=other.admin.headers
        )
        assert_problem(answer, 404, "not_found")
        answer = await world.client.get(f"/v1/tenants/{msp.id}/sso", headers=msp.admin.headers)
        assert_problem(answer, 404, "not_found")
        assert await world.snapshot() == before

    async def test_deleting_frees_the_domain(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        await connect(world, msp.id, provider, domain, msp)
        answer = await world.client.delete(f"/v1/tenants/{msp.id}/sso", headers=msp.admin.headers)
        assert answer.status_code == 204
        answer = await world.client.get("/v1/auth/sso/start", params={"email": f"a@{domain}"})
        assert_problem(answer, 404, "sso_not_configured")
        client = await world.tenant(msp.id, msp.admin)
        await connect(world, client["id"], provider, domain, msp)


class TestTwoProcesses:
    @pytest.mark.parametrize("live_database", ["postgresql", "sqlite"], indirect=True)
    async def test_one_process_starts_the_login_and_another_finishes_it(
        self, live_database: str, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        async with live_client(live_database) as client:
            msp_id, headers = await live_msp(client, f"sso-{secrets.token_hex(3)}")
            saved = await client.put(
                f"/v1/tenants/{msp_id}/sso",
                json=connection_body(provider, [domain], jit={"enabled": True, "roles": ["admin"]}),
                headers=headers,
            )
            assert saved.status_code == 200, saved.text
        # Both processes stand behind one public address (the redirect URI the IdP knows).
        with (
            serving(live_database, base_url=idp.BASE_URL) as first,
            serving(live_database, base_url=idp.BASE_URL) as second,
        ):
            async with (
                httpx.AsyncClient(base_url=first) as one,
                httpx.AsyncClient(base_url=second) as two,
            ):
                back = await through_provider(one, f"max@{domain}")
                done = await callback(two, back)
                exchanged = await one.post("/v1/auth/sso/exchange", json={"code": done["code"]})
                assert exchanged.status_code == 200, exchanged.text
                token = exchanged.json()["access_token"]
                me = await two.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
                assert me.json()["email"] == f"max@{domain}"


class TestAtomicCallback:
    """The callback is a GET that writes: the person made just in time and the one-time code
    are kept together or not at all, on a database with real commits (read-only GETs run in
    autocommit on PostgreSQL; this one must not)."""

    @pytest.mark.parametrize("live_database", ["postgresql", "sqlite"], indirect=True)
    async def test_a_failed_code_leaves_no_person_made_just_in_time(
        self, live_database: str, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        email = f"eve@{domain}"
        async with live_client(live_database) as client:
            msp_id, headers = await live_msp(client, f"sso-{secrets.token_hex(3)}")
            jit = {"enabled": True, "roles": ["admin"]}
            saved = await client.put(
                f"/v1/tenants/{msp_id}/sso",
                json=connection_body(provider, [domain], jit=jit),
                headers=headers,
            )
            assert saved.status_code == 200, saved.text
            engine = state_of(client).database.engine
            with serving(live_database, base_url=idp.BASE_URL) as url:
                async with httpx.AsyncClient(base_url=url) as browser:
                    back = await through_provider(browser, email)
                    events = await count_rows(engine, audit_events)
                    async with inserts_refused(engine, "sso_codes"):
                        failed = await browser.get("/v1/auth/sso/callback?" + urlsplit(back).query)
                    assert failed.status_code == 500, failed.text
                    assert failed.json()["code"] == "internal_error"
                    assert await count_rows(engine, users, users.c.email == email) == 0
                    assert await count_rows(engine, audit_events) == events
                    # The state was used up all the same: the same answer again is refused.
                    again = await callback(browser, back)
                    assert again == {"error": "invalid_state"}

                    done = await sso_login(browser, email)
                    assert set(done) == {"code"}
                    assert await count_rows(engine, users, users.c.email == email) == 1
                    assert await count_rows(engine, sso_codes) == 1


class TestDeletedAccount:
    async def test_a_deleted_accounts_connection_logs_nobody_in_and_frees_its_domains(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        client = await world.tenant(msp.id, msp.admin)
        jit = {"enabled": True, "roles": ["read_only"], "include_descendants": False}
        await connect(world, client["id"], provider, domain, msp, jit=jit)
        back = await through_provider(world.client, f"ned@{domain}")
        deleted = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/delete",
            json={"ids": [client["id"]], "confirm": "delete"},
            headers=msp.admin.headers,
        )
        assert deleted.status_code == 200, deleted.text
        assert await callback(world.client, back) == {"error": "invalid_state"}
        answer = await world.client.get("/v1/auth/sso/start", params={"email": f"x@{domain}"})
        assert_problem(answer, 404, "sso_not_configured")
        await connect(world, msp.id, provider, domain, msp)


class TestSecondFactor:
    async def test_a_user_with_totp_gives_a_code_at_the_exchange(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        domain = new_domain()
        await connect(world, msp.id, provider, domain, msp)
        member = await world.user(msp.id, [(msp.id, ["admin"], True)], email=f"oz@{domain}")
        secret = await enable(world, member)
        done = await sso_login(world.client, member.email)

        asked = await world.client.post("/v1/auth/sso/exchange", json={"code": done["code"]})
        assert_problem(asked, 401, "otp_required")
        wrong = await world.client.post(
            "/v1/auth/sso/exchange", json={"code": done["code"], "otp": "000000"}
        )
        assert_problem(wrong, 401, "invalid_otp")
        right = await world.client.post(
            "/v1/auth/sso/exchange", json={"code": done["code"], "otp": totp(secret, world)}
        )
        assert right.status_code == 200, right.text


class TestEscalation:
    async def test_nobody_hands_out_permissions_they_lack(
        self, world: World, msp: Msp, provider: idp.Provider
    ) -> None:
        made = await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={"key": "sso_admin", "name": "SSO admin", "permissions": ["sso.manage"]},
            headers=msp.admin.headers,
        )
        assert made.status_code == 201, made.text
        manager = await world.user(msp.id, [(msp.id, ["sso_admin"], True)])
        before = await world.snapshot()
        jit = {"enabled": True, "roles": ["admin"], "include_descendants": True}
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/sso",
            json=connection_body(provider, [new_domain()], jit=jit),
            headers=manager.headers,
        )
        assert_problem(answer, 403, "privilege_escalation")
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/scim", json={"default_roles": ["admin"]}, headers=manager.headers
        )
        assert_problem(answer, 403, "privilege_escalation")
        assert await world.snapshot() == before
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/sso",
            json=connection_body(provider, [new_domain()], jit={"enabled": True}),
            headers=manager.headers,
        )
        assert answer.status_code == 200, answer.text
