"""The app over HTTP against a real database, and a World to set scenes up in."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from access_api.bootstrap import bootstrap
from access_api.db import Database
from access_api.domain.invitations import Offer
from access_api.main import create_app
from access_api.repositories.orm import metadata, tenants
from access_api.services.clock import FrozenClock
from access_api.state import AppState
from access_api.use_cases import Work
from tests.conftest import settings_for
from tests.live import join_member
from tests.mail import SmtpServer

PASSWORD = "correct horse battery staple"


@dataclass
class Login:
    user_id: UUID
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Msp:
    id: UUID
    prefix: str
    admin: Login


class World:
    """Builds scenes through the same code paths the service uses, and reads the database."""

    def __init__(
        self, client: httpx.AsyncClient, app: FastAPI, connection: AsyncConnection
    ) -> None:
        self.client = client
        self.app = app
        self.connection = connection

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.access
        return state

    @property
    def clock(self) -> FrozenClock:
        clock = self.state.clock
        assert isinstance(clock, FrozenClock)
        return clock

    async def msp(self, name: str = "Northwind MSP", prefix: str | None = None) -> Msp:
        prefix = prefix or f"msp-{secrets.token_hex(4)}"
        email = f"admin@{prefix}.example.com"
        async with self.state.database.session() as session:
            result = await bootstrap(
                Work.over(session, self.state),
                name=name,
                domain_prefix=prefix,
                admin_email=email,
                admin_password=PASSWORD,
            )
            await session.commit()
        admin = await self.login(email, PASSWORD)
        return Msp(id=result.tenant.id, prefix=prefix, admin=admin)

    async def tenant(
        self,
        parent_id: UUID,
        by: Login,
        *,
        kind: str = "client",
        name: str | None = None,
        prefix: str | None = None,
    ) -> dict[str, Any]:
        prefix = prefix or f"c-{secrets.token_hex(4)}"
        response = await self.client.post(
            f"/v1/tenants/{parent_id}/clients",
            json={"kind": kind, "name": name or prefix.title(), "domain_prefix": prefix},
            headers=by.headers,
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def user(
        self,
        root_id: UUID | str,
        grants: Iterable[tuple[UUID | str, Iterable[str], bool]] = (),
        *,
        email: str | None = None,
        login: bool = True,
    ) -> Login:
        """A member of the tree with the given (tenant, roles, include_descendants) grants."""
        email = email or f"user-{secrets.token_hex(4)}@example.com"
        root_id = UUID(str(root_id))
        offers = [
            Offer(
                tenant_id=UUID(str(tenant_id)),
                roles=frozenset(roles),
                include_descendants=include,
            )
            for tenant_id, roles, include in grants
        ]
        user_id = await join_member(self.state, root_id, offers, email)
        if not login:
            return Login(user_id, email, PASSWORD, token="")
        return await self.login(email, PASSWORD)

    async def my_tenants(self, headers: dict[str, str], **query: Any) -> list[dict[str, Any]]:
        """Every page of GET /v1/me/tenants: the accounts a credential can act in."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get("/v1/me/tenants", headers=headers, params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            found.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    async def login(self, email: str, password: str = PASSWORD) -> Login:
        response = await self.client.post(
            "/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        me = await self.client.get(
            "/v1/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
        )
        return Login(UUID(me.json()["id"]), email, password, response.json()["access_token"])

    async def snapshot(self, *, ignore: Iterable[str] = ()) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table: compare before and after a refusal to prove nothing changed.
        ignore names tables a refusal is meant to write (throttle_buckets counts failures)."""
        tables: dict[str, list[tuple[Any, ...]]] = {}
        skipped = set(ignore)
        for table in metadata.sorted_tables:
            if table.name in skipped:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            rows = await self.connection.execute(sa.select(table).order_by(*order))
            tables[table.name] = [tuple(row) for row in rows]
        return tables

    async def many_clients(self, root_id: UUID, group_id: UUID, count: int) -> None:
        """`count` clients "Client 1" … under a multi-client group of the root, straight into
        the tables as the tenant repository keeps them (closure rows, the counts of live
        tenants below the group and the root), then ANALYZE. PostgreSQL only: for the plan
        guards of trees the API would take minutes to build."""
        await self.connection.execute(
            sa.text(
                "WITH new AS (SELECT gen_random_uuid() AS id, n FROM generate_series(1, :count) n),"
                " made AS (INSERT INTO tenants (id, root_id, parent_id, kind, name, domain_prefix,"
                "  status, created_at, updated_at)"
                "  SELECT id, :root, :group, 'client', 'Client ' || n, 'big-' || n, 'enabled',"
                "  now(), now() FROM new)"
                " INSERT INTO tenant_closure (ancestor_id, descendant_id, depth)"
                " SELECT id, id, 0 FROM new UNION ALL SELECT :group, id, 1 FROM new"
                " UNION ALL SELECT :root, id, 2 FROM new"
            ),
            {"root": root_id, "group": group_id, "count": count},
        )
        await self.connection.execute(
            sa.update(tenants)
            .where(tenants.c.id.in_([root_id, group_id]))
            .values(live_descendants=tenants.c.live_descendants + count)
        )
        await self.connection.execute(sa.text("ANALYZE"))

    async def rows(self, statement: sa.Select[Any]) -> list[Any]:
        return list((await self.connection.execute(statement)).all())

    async def count(self, table: sa.Table, *where: Any) -> int:
        statement = sa.select(sa.func.count()).select_from(table)
        if where:
            statement = statement.where(*where)
        return int((await self.connection.execute(statement)).scalar_one())


async def delivered(world: World, smtp: SmtpServer) -> dict[str, Any]:
    """Run the dispatcher now; the mail that arrived, by recipient."""
    await world.state.dispatcher.deliver_due()
    return {str(message["To"]).lower(): message for message in smtp.inbox.take()}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}" or body["errors"]
    assert body["title"]
    assert body["detail"]
    return body


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))


@pytest.fixture
async def app(
    backend: tuple[str, str], connection: AsyncConnection, clock: FrozenClock, smtp: SmtpServer
) -> AsyncIterator[FastAPI]:
    """The app on the test's connection, its mail going to the test's SMTP server (delivered
    only when the test runs the dispatcher: see delivered())."""
    app = create_app(
        settings_for(backend[1], smtp_url=smtp.url),
        database=Database.bound_to(connection),
        clock=clock,
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def world(client: httpx.AsyncClient, app: FastAPI, connection: AsyncConnection) -> World:
    return World(client, app, connection)


@pytest.fixture
async def msp(world: World) -> Msp:
    return await world.msp()
