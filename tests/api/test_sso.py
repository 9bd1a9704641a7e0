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
from tests.oidc import provider as idp


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
