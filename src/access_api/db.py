"""The database engine and the two kinds of session the service uses."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
import uuid
import weakref
from collections.abc import Coroutine, Generator
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import event, func, select, text
from sqlalchemy import table as table_named
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from access_api.settings import Settings

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_STATISTICS_EVERY_SECONDS = 3600.0
# How often the tables a bulk import grows are counted against their statistics, and how far
# they may drift before the hour is up: more than twice or less than half the rows the
# statistics were taken at, and at least this many rows apart. Few enough that a first
# directory of a thousand users, synced into a new database, is analyzed within the minute
# (at 1,000, its 999 users stayed planned as the one user seen at startup, for up to an
# hour); a table that small is analyzed in milliseconds.
SQLITE_STATISTICS_CHECK_SECONDS = 60.0
SQLITE_STATISTICS_DRIFT_ROWS = 100
_GROWING_TABLES = ("users", "members", "authorizations")
# A transaction idle longer than this is ended by PostgreSQL (a process that stalled or lost
# track of it must not hold its locks). Six statement timeouts, but never less than this: a
# request may pause inside its transaction for a password hash (tens of ms, far more on a
# loaded machine), and a short statement timeout must not turn that pause into a lost
# connection.
IDLE_IN_TRANSACTION_FLOOR_MS = 10_000
_PACKAGE = Path(__file__).resolve().parent


def migrations_directory() -> Path:
    """The migrations shipped inside the installed package (the wheel carries them as
    access_api/migrations), or the checkout's top-level migrations/ in a development install."""
    packaged = _PACKAGE / "migrations"
    return packaged if (packaged / "env.py").is_file() else _PACKAGE.parents[1] / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's configuration, built in code: migrate works from any directory, installed or
    not, with no alembic.ini to find."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.set_main_option("path_separator", "os")
    config.attributes["configure_logging"] = False
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The revision the code expects the database schema to be at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {migrations_directory()}")
    return head


# In a session's info: its transactions are deferred reads (SQLite), in which a write would
# have to upgrade the read lock, and fail at once if another connection wrote meanwhile.
DEFERRED = "deferred_reads"


class Database:
    """Holds the engine and session factories.

    `session()` is for request transactions. On SQLite every one of them begins IMMEDIATE:
    SQLite has one writer at a time, and taking the write lock up front turns check-then-write
    races into a short queue instead of "database is locked" failures half-way through.
    `snapshot()` is for long reads (CSV export) that must not hold the write lock.
    `reads()` is for read-only requests: on PostgreSQL without a transaction pooler it runs
    in autocommit, so a request's reads cost no BEGIN and COMMIT round trips (each statement
    of a READ COMMITTED transaction takes its own snapshot anyway, and a read-only request's
    only writes are single idempotent statements: a credential's last-use stamp). Behind a
    transaction pooler it stays transactional: asyncpg prepares a statement and runs it in two
    exchanges, which the pooler may send to two different servers outside a transaction.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        snapshots: async_sessionmaker[AsyncSession],
        *,
        reads: async_sessionmaker[AsyncSession] | None = None,
        one_statement: async_sessionmaker[AsyncSession] | None = None,
        owns_engine: bool = True,
    ) -> None:
        self.engine = engine
        self.session = sessions
        self.snapshot = snapshots
        self.reads = reads or sessions
        # A change that is one statement (atomic by itself) needs no transaction around it:
        # the same autocommit sessions as reads, where reads have them (PostgreSQL).
        self.one_statement = one_statement or self.reads
        self._owns_engine = owns_engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    def connect(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        writes = engine.execution_options(sqlite_begin="IMMEDIATE")
        # A long read (CSV export) sees one consistent state: REPEATABLE READ on PostgreSQL;
        # SQLite's WAL gives a read transaction a snapshot by itself.
        reads = (
            engine
            if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="REPEATABLE READ")
        )
        sessions = async_sessionmaker(writes, expire_on_commit=False, autoflush=False)
        snapshots = async_sessionmaker(reads, expire_on_commit=False, autoflush=False)
        if engine.dialect.name == "sqlite":
            # Read-only requests in a deferred transaction: WAL readers run side by side
            # instead of queuing for the write lock (with the busy handler's sleeps, up to a
            # second or two at the 99th percentile under 16 connections). The one write such
            # a request may make, a credential's last-use stamp, goes apart (Work.stamp).
            return cls(
                engine,
                sessions,
                snapshots,
                reads=async_sessionmaker(
                    engine, expire_on_commit=False, autoflush=False, info={DEFERRED: True}
                ),
                one_statement=sessions,
            )
        autocommit = settings.db_pooler == "none"
        return cls(
            engine,
            sessions,
            snapshots,
            reads=async_sessionmaker(
                engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                autoflush=False,
            )
            if autocommit
            else sessions,
        )

    @classmethod
    def bound_to(cls, connection: AsyncConnection) -> Database:
        """Sessions that live inside an outer transaction on one connection (tests): the app's
        commits release savepoints and its rollbacks roll back to them."""
        sessions = async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        return cls(connection.engine, sessions, sessions, owns_engine=False)

    async def ping(self, within_seconds: float) -> bool:
        """Readiness: can a connection run a query in time?"""
        try:
            async with asyncio.timeout(within_seconds), self.snapshot() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def schema_revision(self) -> str | None:
        """The schema's Alembic revision; None on a database never migrated."""
        try:
            async with self.snapshot() as session:
                found = await session.execute(text("SELECT version_num FROM alembic_version"))
                return found.scalar_one_or_none()
        except DBAPIError:
            return None

    async def schema_is_current(self) -> bool:
        return await self.schema_revision() == head_revision()

    async def refresh_statistics(self) -> None:
        """SQLite has no autovacuum to keep planner statistics: without them it takes any
        equality index over the one that matches ORDER BY, and a list page at 100k users sorts
        every row instead of walking 50. A full ANALYZE (a sampled one, PRAGMA analysis_limit,
        gave estimates that misled the planner): about a second per 100k users, once an hour.
        PostgreSQL's autovacuum does this by itself."""
        if self.dialect != "sqlite":
            return
        async with self.session() as session:
            await session.execute(text("ANALYZE"))
            await session.commit()
        # Each connection read the statistics when it loaded the schema; tell them to reload.
        _statistics_generation[self.engine.sync_engine] += 1

    async def statistics_stale(self) -> bool:
        """Whether a table a bulk import grows (users, members, authorizations) now holds more
        than twice or less than half the rows its statistics were taken at (and at least
        SQLITE_STATISTICS_DRIFT_ROWS apart). Statistics taken on a near-empty database tell
        the planner that scanning is cheapest: after an import of 5,000 users, an export
        scanned the role keys and the authorizations once per user (2.6 s, and quadratic:
        minutes at 20,000) where fresh ones make it 0.06 s. A count per table: milliseconds
        at 100k users."""
        if self.dialect != "sqlite":
            return False
        async with self.snapshot() as session:
            try:
                # Each row's first number is its table's row count when it was analyzed.
                rows = await session.execute(text("SELECT tbl, stat FROM sqlite_stat1"))
                analyzed = {row.tbl: int(row.stat.split()[0]) for row in rows}
            except DBAPIError:  # never analyzed: no sqlite_stat1 yet
                analyzed = {}
            for table in _GROWING_TABLES:
                counted = select(func.count()).select_from(table_named(table))
                held = (await session.execute(counted)).scalar_one()
                then = analyzed.get(table, 0)
                if abs(held - then) >= SQLITE_STATISTICS_DRIFT_ROWS and (
                    held > 2 * then or 2 * held < then
                ):
                    return True
        return False

    async def keep_statistics(
        self, stop: asyncio.Event, every_seconds: float, check_seconds: float
    ) -> None:
        """refresh_statistics now, then every_seconds, and sooner when a check (every
        check_seconds) finds them stale, until stop is set (SQLite only)."""
        refreshed = -math.inf
        while self.dialect == "sqlite":
            try:
                if time.monotonic() - refreshed >= every_seconds or await self.statistics_stale():
                    await self.refresh_statistics()
                    refreshed = time.monotonic()
            except Exception:
                log.exception("refreshing SQLite statistics failed; retrying later")
            try:
                await asyncio.wait_for(stop.wait(), timeout=check_seconds)
            except TimeoutError:
                continue
            return

    async def dispose(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()


async def finish(session: AsyncSession) -> None:
    """Commit a request's session, if anything ran through it: one no statement began (all its
    reads were fast reads on connections of their own, repositories/fast.py) has nothing to
    commit, and committing it would begin and end an empty transaction (a greenlet hop and a
    tenth of GET /v1/me's CPU)."""
    if session.in_transaction():
        await session.commit()


async def close(session: AsyncSession) -> None:
    """End a request's session as `async with` would (rolled back if still open, in a task the
    request's cancellation cannot interrupt), unless it never began or has ended: then it holds
    no connection and there is nothing to close (this service never adds ORM objects)."""
    if session.in_transaction():
        await session.__aexit__(None, None, None)


def stale_connection(error: BaseException) -> bool:
    """Did a statement fail because its pooled connection was dead (the server restarted, a
    proxy dropped it)? Then nothing of the transaction was committed and the request may run
    once more on a fresh connection. There is no ping per checkout to catch this earlier: it
    cost a round trip on every request. A failure at COMMIT itself (no statement) is not
    stale: whether it was applied is unknown, so it is never retried."""
    return (
        isinstance(error, DBAPIError)
        and error.connection_invalidated
        and error.statement is not None
    )


class _ConnectWhenAwaited:
    """`asyncpg.connect(...)` that makes its coroutine only when awaited.

    SQLAlchemy's asyncpg adapter makes the connect coroutine, then awaits it through its
    greenlet. Asked for a connection outside a greenlet (a hot-path read taking an idle pooled
    connection straight from the event loop finds it must reconnect the one it got), it raises
    MissingGreenlet and closes what it was given: with a coroutine made in advance, the
    coroutine inside would be dropped unawaited (a RuntimeWarning); with this, nothing was
    started."""

    __slots__ = ("_args", "_kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs

    def __await__(self) -> Generator[Any, None, Any]:
        connecting: Coroutine[Any, Any, Any] = asyncpg.connect(*self._args, **self._kwargs)
        return connecting.__await__()


def _unique_statement_name() -> str:
    return f"__access_api_{uuid.uuid4().hex}__"


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    statement_ms = int(settings.db_statement_timeout_seconds * 1000)
    server_settings = {"application_name": "access-api"}
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        # Client-side bound too: a stalled server (not just a slow query) must not hang us.
        "command_timeout": settings.db_statement_timeout_seconds + 1,
        "server_settings": server_settings,
        # asyncpg.connect, started only once awaited (repositories/fast.py, _checkout_idle).
        "async_creator_fn": _ConnectWhenAwaited,
    }
    if settings.db_pooler == "transaction":
        # PgBouncer in transaction mode hands each transaction to any server connection: a
        # statement prepared and cached on one is missing (or, by the same name, present) on
        # the next. So no statement cache in asyncpg or in SQLAlchemy, and a unique name for
        # every statement prepared (SQLAlchemy's documented recipe). PgBouncer refuses
        # startup parameters it does not know: the timeouts are set on the database instead
        # (README, "Scale-out").
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    else:
        server_settings |= {
            "statement_timeout": str(statement_ms),
            "lock_timeout": str(statement_ms),
            "idle_in_transaction_session_timeout": str(
                max(statement_ms * 6, IDLE_IN_TRANSACTION_FLOOR_MS)
            ),
            "jit": "off",
        }
    return create_async_engine(
        url,
        # Every connection the pool opens stays open: an overflow connection would be opened
        # and closed again around each request once the load passes pool_size (a connect, TLS
        # negotiation and a close per request: a tenth of GET /v1/me's CPU under load).
        pool_size=settings.db_pool_size,
        max_overflow=0,
        # The connection given back last is handed out first: after a burst has opened many,
        # a lighter load keeps reusing the few whose prepared statements (asyncpg's cache and
        # PostgreSQL's plans) are warm, instead of visiting every one in turn and preparing
        # each statement again on each.
        pool_use_lifo=True,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=1800,
        connect_args=connect_args,
    )


# Bumped by each ANALYZE; a pooled SQLite connection that has seen an older one reloads the
# statistics (ANALYZE sqlite_schema) when next checked out.
_statistics_generation: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


def _configure_sqlite(engine: AsyncEngine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (the documented
    recipe), so SAVEPOINT and BEGIN IMMEDIATE work; WAL lets readers run beside the writer."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(pragma)
        cursor.close()

    _statistics_generation[engine.sync_engine] = 0

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        current = _statistics_generation.get(engine.sync_engine, 0)
        if record.info.setdefault("statistics", current) != current:
            # The reload takes the write lock for a moment. A read-only request must not wait
            # for a writer for it: without the lock at once, it is left to a later checkout.
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA busy_timeout=0")
                cursor.execute("ANALYZE sqlite_schema")
            except sqlite3.OperationalError:
                pass
            else:
                record.info["statistics"] = current
            finally:
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin")
        connection.exec_driver_sql(f"BEGIN {mode}" if mode else "BEGIN")
