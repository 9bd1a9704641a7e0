"""The app against a database of its own with real commits, for races and outages."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from access_api.bootstrap import bootstrap
from access_api.domain.audit import SYSTEM
from access_api.domain.invitations import Offer
from access_api.domain.users import User
from access_api.main import create_app
from access_api.services.passwords import Passwords
from access_api.state import AppState
from access_api.use_cases import Work, members
from tests.conftest import ROOT, settings_for
from tests.people import new_person

PASSWORD = "correct horse battery staple"


@asynccontextmanager
async def live_client(url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(url, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://live") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def state_of(client: httpx.AsyncClient) -> AppState:
    app: FastAPI = client.app  # type: ignore[attr-defined]
    state: AppState = app.state.access
    return state


async def live_msp(client: httpx.AsyncClient, prefix: str) -> tuple[UUID, dict[str, str]]:
    """An MSP (committed) and its admin's auth headers."""
    state = state_of(client)
    email = f"admin@{prefix}.example.com"
    async with state.database.session() as session:
        result = await bootstrap(
            Work.over(session, state),
            name=prefix.title(),
            domain_prefix=prefix,
            admin_email=email,
            admin_password=PASSWORD,
        )
        await session.commit()
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return result.tenant.id, {"Authorization": f"Bearer {login.json()['access_token']}"}


async def join_member(state: AppState, root_id: UUID, offers: Sequence[Offer], email: str) -> UUID:
    """A member of the tree with these grants (password PASSWORD), joined and committed
    through the code the service uses."""
    user = new_person(email, state.clock.now())
    async with state.database.session() as session:
        await join_in(Work.over(session, state), user, root_id, offers, state.passwords)
        await session.commit()
    return user.id


async def join_in(
    work: Work, user: User, root_id: UUID, offers: Sequence[Offer], passwords: Passwords
) -> None:
    """A new user joins a tree with these grants and the password PASSWORD, in work's
    transaction (the caller commits)."""
    root = await work.tenants.get(root_id)
    assert root is not None
    await members.join(
        work,
        SYSTEM,
        root_id=root_id,
        user=user,
        password_hash=await passwords.hash(PASSWORD),
        offers=offers,
        tenant=root,
    )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`access-api worker` (the outbox dispatcher) as a process of its own, logging to log."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "access_api.cli", "worker"],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def until(condition: Any, within: float, what: str) -> None:
    """Wait for an async condition, failing with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


@asynccontextmanager
async def inserts_refused(engine: AsyncEngine, table: str) -> AsyncIterator[None]:
    """Every INSERT into `table` fails (a trigger raises) until the block ends: a write that
    fails half-way through a request, on a real database, for whatever other process uses it."""
    if engine.dialect.name == "postgresql":
        made = [
            f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN RAISE EXCEPTION 'inserts into {table} refused by the test'; END $$",
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION refuse_{table}()",
        ]
        dropped = [f"DROP TRIGGER refuse_{table} ON {table}", f"DROP FUNCTION refuse_{table}()"]
    else:
        made = [
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}"
            f" BEGIN SELECT RAISE(ABORT, 'inserts into {table} refused by the test'); END"
        ]
        dropped = [f"DROP TRIGGER refuse_{table}"]
    async with engine.begin() as connection:
        for statement in made:
            await connection.exec_driver_sql(statement)
    try:
        yield
    finally:
        async with engine.begin() as connection:
            for statement in dropped:
                await connection.exec_driver_sql(statement)


async def count_rows(engine: AsyncEngine, table: sa.Table, *where: Any) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(sa.select(sa.func.count()).select_from(table).where(*where))
        return int(found or 0)


@asynccontextmanager
async def write_lock_held(url: str) -> AsyncIterator[None]:
    """Another connection to a SQLite database (another process, as far as SQLite can tell)
    holding its write lock until the block ends. Taken without blocking the event loop: the
    app under test may be writing (its startup ANALYZE) and must be able to finish."""
    connection = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, timeout=0)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                assert time.monotonic() < deadline, "the write lock stayed taken"
                await asyncio.sleep(0.05)
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()
