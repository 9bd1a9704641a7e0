"""A benchmark's world: a fresh database built by the migrations, an MSP with clients, its admin
with an API key, and as many users as the measure needs, loaded straight into the tables (and
into a tenant's SCIM directory when the measure pages through it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import sqlalchemy as sa
from tests.users_bulk import add_users

from access_api.db import create_engine
from access_api.repositories.orm import authorizations, scim_settings, scim_users, users
from access_api.services.clock import SystemClock
from access_api.settings import Settings

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "bench-secret-key-" + "b" * 48
ADMIN_EMAIL = "admin@bench.example.com"
ADMIN_PASSWORD = "correct horse battery staple 42"


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, secret_key=SECRET)


def env_for(url: str) -> dict[str, str]:
    return {
        "ACCESS_API_DATABASE_URL": url,
        "ACCESS_API_SECRET_KEY": SECRET,
        "ACCESS_API_PUBLIC_URL": "http://127.0.0.1",
        # No access line per request: the ceiling and the peer run with uvicorn's
        # --no-access-log. An operator gets the same with this setting.
        "ACCESS_API_LOG_LEVEL": "WARNING",
    }


@asynccontextmanager
async def postgres_database(label: str) -> AsyncIterator[tuple[str, str]]:
    """(SQLAlchemy URL, asyncpg DSN) of a new database, dropped afterwards."""
    name = f"access_api_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    try:
        yield dsn.replace("postgresql://", "postgresql+asyncpg://"), dsn
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def sqlite_database() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="access-api-bench-") as directory:
        yield f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"


@dataclass
class Msp:
    """The MSP as its admin sees it over HTTP."""

    root_id: UUID
    region_id: UUID
    client_id: UUID
    session: dict[str, str]
    api_key: dict[str, str]
    admin_id: UUID
    extra: dict[str, Any] = field(default_factory=dict)


def bootstrap(url: str) -> None:
    """Migrate and bootstrap the MSP with the CLI, as an operator would."""
    cli = str(Path(sys.executable).with_name("access-api"))
    env = {**os.environ, **env_for(url)}
    with tempfile.NamedTemporaryFile("w", suffix=".pw") as secret:
        secret.write(ADMIN_PASSWORD)
        secret.flush()
        for argv in (
            [cli, "migrate"],
            [
                cli,
                "bootstrap",
                "--name",
                "Bench MSP",
                "--domain-prefix",
                "bench",
                "--admin-email",
                ADMIN_EMAIL,
                "--admin-password-file",
                secret.name,
            ],
        ):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # noqa: S603
            if done.returncode:
                raise RuntimeError(f"{argv[1]} failed:\n{done.stdout}{done.stderr}")


async def build_msp(base_url: str) -> Msp:
    """Over HTTP, as a user would: log in, add a multi-client and a client below it, and make
    the admin an API key. The admin's grant on the root reaches both by inheritance."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        login = await client.post(
            "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        login.raise_for_status()
        session = {"Authorization": f"Bearer {login.json()['access_token']}"}
        me = (await client.get("/v1/me", headers=session)).json()
        root_id = UUID(me["grants"][0]["tenant"]["id"])
        admin_id = UUID(me["id"])
        region = await client.post(
            f"/v1/tenants/{root_id}/clients",
            json={"kind": "multi_client", "name": "Region", "domain_prefix": "region"},
            headers=session,
        )
        region.raise_for_status()
        acme = await client.post(
            f"/v1/tenants/{region.json()['id']}/clients",
            json={"kind": "client", "name": "Acme", "domain_prefix": "acme"},
            headers=session,
        )
        acme.raise_for_status()
        key = await client.post(
            f"/v1/tenants/{root_id}/users/{admin_id}/api-keys",
            json={"name": "bench"},
            headers=session,
        )
        key.raise_for_status()
        return Msp(
            root_id=root_id,
            region_id=UUID(region.json()["id"]),
            client_id=UUID(acme.json()["id"]),
            session=session,
            api_key={"Authorization": f"Bearer {key.json()['key']}"},
            admin_id=admin_id,
        )


async def grow(url: str, msp: Msp, total: int, prefix: str) -> int:
    """Add users (read_only on the client) until the tree has `total`; returns how many now."""
    engine = create_engine(settings_for(url))
    try:
        # SQLite: take the write lock first, as the app does, or the server's writes between
        # this read and the inserts would make the upgrade fail.
        async with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
            have = (
                await connection.execute(sa.select(sa.func.count()).select_from(users))
            ).scalar_one()
            if total > have:
                await add_users(
                    connection,
                    msp.root_id,
                    msp.client_id,
                    total - have,
                    SystemClock().now(),
                    prefix=prefix,
                    batch=10_000,
                )
        return max(total, int(have))
    finally:
        await engine.dispose()


async def settle(url: str) -> None:
    """After a bulk load, what autovacuum would do to the loaded tables, done now: on
    PostgreSQL, VACUUM (ANALYZE) the database, so that no autovacuum pass of the load (100k
    rows inserted set one off within its naptime, a minute) runs on the same two cores as the
    measures that follow. A steady database, not one still digesting its load. (SQLite keeps
    no statistics by itself: the server refreshes them at its start.)"""
    if not url.startswith("postgresql"):
        return
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


async def enrol(url: str, tenant_id: UUID) -> int:
    """Make every user granted on tenant_id a member of its SCIM directory, as if the identity
    provider had provisioned them (userName: their email), with the directory's kept size
    (scim_settings.user_count) set to what it holds, as the service keeps it. Returns that."""
    now = SystemClock().now()
    engine = create_engine(settings_for(url))
    try:
        async with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
            if connection.dialect.name == "sqlite":
                # Statistics of the grown tables first: with those of a near-empty tree (the
                # server's, taken at its start) SQLite joins them by scanning users for each
                # grant, which never ends at 100k.
                for table in ("users", "authorizations", "scim_users"):
                    await connection.exec_driver_sql(f"ANALYZE {table}")
            enrolled = sa.exists().where(
                scim_users.c.tenant_id == tenant_id, scim_users.c.user_id == users.c.id
            )
            granted = (
                sa.select(
                    sa.literal(tenant_id, scim_users.c.tenant_id.type),
                    users.c.id,
                    users.c.email,
                    users.c.email_key,  # the email folded: what user_name_key makes of it
                    sa.literal(True, scim_users.c.active.type),
                    sa.literal(now, scim_users.c.created_at.type),
                    sa.literal(now, scim_users.c.updated_at.type),
                )
                .select_from(authorizations.join(users, users.c.id == authorizations.c.user_id))
                .where(authorizations.c.tenant_id == tenant_id, ~enrolled)
            )
            columns = ["tenant_id", "user_id", "user_name", "user_name_key", "active"]
            await connection.execute(
                sa.insert(scim_users).from_select([*columns, "created_at", "updated_at"], granted)
            )
            size = (
                await connection.execute(
                    sa.select(sa.func.count())
                    .select_from(scim_users)
                    .where(scim_users.c.tenant_id == tenant_id)
                )
            ).scalar_one()
            kept = await connection.execute(
                sa.update(scim_settings)
                .where(scim_settings.c.tenant_id == tenant_id)
                .values(user_count=size, updated_at=now)
            )
            if kept.rowcount == 0:
                await connection.execute(
                    sa.insert(scim_settings).values(
                        tenant_id=tenant_id,
                        default_roles=[],
                        include_descendants=False,
                        user_count=size,
                        updated_at=now,
                    )
                )
            # What autovacuum would do after the load (the server refreshes SQLite's at start).
            await connection.exec_driver_sql("ANALYZE scim_users")
        return int(size)
    finally:
        await engine.dispose()
