"""Test databases: a fresh SQLite file and a fresh PostgreSQL database per run, built by Alembic.

HTTP tests run once per backend. Each test gets one connection inside an outer transaction that
is rolled back at the end; the app's own commits and rollbacks become savepoint releases and
rollbacks, so its transaction code runs as in production. Tests that need real commits across
connections (races, outages) ask for `live_database` instead: a database of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from access_api.db import create_engine
from access_api.settings import Settings

pytest_plugins = ("tests.mail",)  # the SMTP server fixtures

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_DSN = os.environ.get(
    "ACCESS_API_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("ACCESS_API_TEST_REQUIRE_POSTGRES") == "1"
TEST_SECRET = "test-secret-key-" + "k" * 48


def settings_for(url: str, **overrides: Any) -> Settings:
    """Settings for an app in the test process, which builds hundreds of apps: the collector
    is left as it is (tests/unit/test_collector.py tunes it and puts it back)."""
    return Settings(
        **{
            "database_url": url,
            "secret_key": TEST_SECRET,
            "public_url": "https://app.access-api.test",
            "gc_tuning": False,
            **overrides,
        }
    )


def _upgrade(connection: Connection) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["connection"] = connection
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """The schema comes from the migrations, in tests as in production."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def _postgres_admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError) as error:
        reason = f"PostgreSQL unreachable at {POSTGRES_ADMIN_DSN}: {error}"
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (required: ACCESS_API_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database, dropped afterwards."""
    name = f"access_api_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await _postgres_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    engine = create_engine(settings_for(url))
    try:
        await migrate(engine)
        await engine.dispose()
        yield url
    finally:
        await engine.dispose()
        admin = await _postgres_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def sqlite_database(directory: Path) -> AsyncIterator[str]:
    url = f"sqlite+aiosqlite:///{directory / f'test-{uuid.uuid4().hex[:8]}.db'}"
    engine = create_engine(settings_for(url))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    """(name, url) of a migrated database shared by the session's tests on that backend."""
    if request.param == "sqlite":
        async with sqlite_database(tmp_path_factory.mktemp("sqlite")) as url:
            yield "sqlite", url
    else:
        async with postgres_database() as url:
            yield "postgresql", url


@pytest.fixture(scope="session")
async def engine(backend: tuple[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings_for(backend[1]))
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
async def live_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database of the test's own, with real commits: for races and outages. PostgreSQL
    (skipped without it, failed without it in CI) unless parametrized with "sqlite"."""
    kind = getattr(request, "param", "postgresql")
    if kind == "sqlite":
        async with sqlite_database(tmp_path_factory.mktemp("live")) as url:
            yield url
    else:
        async with postgres_database() as url:
            yield url


@pytest.fixture
async def autocommit(live_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine in autocommit on a database of the test's own: as the service runs its
    reads on PostgreSQL, where FastRead skips SQLAlchemy."""
    engine = create_engine(settings_for(live_database)).execution_options(
        isolation_level="AUTOCOMMIT"
    )
    yield engine
    await engine.dispose()
