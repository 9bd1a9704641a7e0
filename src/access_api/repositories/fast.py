"""The hottest reads straight on asyncpg: a statement compiled once, run on a pooled connection
without SQLAlchemy's per-execution machinery.

Measured in process on PostgreSQL (`GET /v1/me`'s statement, one row): 0.19 ms of CPU per
execution through `AsyncSession.execute`, 0.04 ms through asyncpg on the same connection. The
statement is still built with SQLAlchemy Core (in its repository) and its values still pass
SQLAlchemy's type processors both ways, so the rows are the ones `execute` would give.

Only where it is safe: a session in autocommit (the reads of a request on PostgreSQL without
a pooler). There, each statement is its own transaction anyway, so when the session has not
begun (nothing ran through it yet, the usual case: a request's first read) the statement takes
a connection from the pool for itself and gives it back at once, without the session's
transaction, Connection and their greenlet hops (a sixth of `GET /v1/me`'s CPU); it never holds
two connections at once. An idle connection is taken without SQLAlchemy's greenlet too
(`_checkout_idle`): a greenlet switch copies the C stack. Measured in a loop, a checkout and
return cost 45-55 us of CPU through the greenlet and 13-20 us without it; under load, a few
percent of `GET /v1/me`'s CPU, within this machine's noise.

A session that has begun lends its own connection. Inside a transaction, or behind a
transaction pooler, or on SQLite, the statement runs through SQLAlchemy as any other.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.util import greenlet_spawn

# Connection._handle_dbapi_exception: translates, invalidates a dead connection, raises.
_Handler = Callable[[BaseException, str, list[Any], None, None], NoReturn]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind parameters in their positional order
    fixed: Mapping[str, Any]  # values bound when the statement was built (literals)
    bind: Mapping[str, Callable[[Any], Any] | None]
    keys: tuple[str, ...]
    # The columns whose values SQLAlchemy's types process (by position, with the processor);
    # the others are taken as asyncpg decoded them.
    results: tuple[tuple[int, str, Callable[[Any], Any]], ...]
    # The columns asyncpg decodes into lists or dicts (JSON, arrays), by position.
    nested: tuple[int, ...]


class _Row:
    """A row as `Result.all()` gives it, as far as repositories read one: attributes by
    column key, and `_mapping`. Its attributes are its mapping, not a copy of it."""

    __slots__ = ("__dict__", "_mapping")

    def __init__(self, mapping: dict[str, Any]) -> None:
        self.__dict__ = mapping
        self._mapping = mapping


_Statement = sa.Select[Any] | sa.Insert | sa.Update | sa.Delete

T = TypeVar("T")


class Made(Generic[T]):
    """What a pure function makes of a statement's rows, remembered by the rows' values as
    asyncpg decoded them, for the reads that run on every call and whose rows rarely change
    between two calls (a credential and its scope: the same key in the same tenant).

    The statement still runs every time: only the turning of the same values into the same
    domain objects is saved (SQLAlchemy's processors, the mappings, the objects), which is
    most of what a permission decision costs in Python. `make` must depend on the rows alone,
    and what it makes must be immutable: it is shared by every call that read the same rows.

    Memory is bounded by rows, not calls: the least recently used go first beyond `budget`
    rows in all (a row and what it makes: a few kB), and what more than `most` rows make is
    not remembered (a user with grants on hundreds of tenants: the reading costs more than
    the making there)."""

    def __init__(
        self, make: Callable[[Sequence[Any]], T], *, budget: int = 1024, most: int = 32
    ) -> None:
        self.make = make
        self.budget = budget
        self.most = most
        self.rows = 0  # the rows of everything remembered
        self._made: OrderedDict[tuple[Any, ...], tuple[T, int]] = OrderedDict()

    def of(self, key: tuple[Any, ...] | None, rows: Callable[[], Sequence[Any]]) -> T:
        """What make made of the rows read under key (None: nothing to remember them by)."""
        if key is None or len(key) > self.most:
            return self.make(rows())
        try:
            made, _ = self._made[key]
        except KeyError:
            made = self.make(rows())
            self._made[key] = (made, len(key) or 1)
            self.rows += len(key) or 1
            while self.rows > self.budget:
                _, (_, count) = self._made.popitem(last=False)
                self.rows -= count
            return made
        self._made.move_to_end(key)
        return made


# Tags no JSON value can be equal to: a list of strings and any other JSON value, as keys.
_STRINGS = object()
_JSON = object()


def _frozen(value: Any) -> tuple[Any, ...]:
    """A JSON value as asyncpg decoded it (a list, a dict), hashable and equal only to the
    same value: 1, 1.0 and true are equal in Python, not in JSON's text."""
    if type(value) is list and all(type(item) is str for item in value):
        return (_STRINGS, *value)
    return (_JSON, json.dumps(value, sort_keys=True))


def _key(nested: tuple[int, ...], records: Sequence[Any]) -> tuple[Any, ...] | None:
    """The records' values as one hashable key; None if one cannot be hashed."""
    if not nested:
        key = tuple(records)
    else:
        rows = []
        for record in records:
            values = list(record.values())
            for position in nested:
                value = values[position]
                if value is not None:
                    values[position] = _frozen(value)
            rows.append(tuple(values))
        key = tuple(rows)
    try:
        hash(key)
    except TypeError:
        return None
    return key


class FastRead:
    """One statement, and how to run it on asyncpg directly when the connection allows."""

    returns_rows = True

    def __init__(self, statement: _Statement) -> None:
        self.statement = statement
        self._compiled: _Compiled | None = None

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise TypeError("a FastRead statement cannot have expanding parameters")
        if any(bind.callable is not None for bind in compiled.binds.values()):
            raise TypeError("a FastRead statement cannot have values computed per execution")
        processors = compiled._bind_processors
        return _Compiled(
            sql=str(compiled),
            names=tuple(compiled.positiontup or ()),
            # As SQLAlchemy binds them: a value given when the statement was built, None
            # included (`.values(ended_at=None)`), unless the execution gives one.
            fixed={name: bind.value for name, bind in compiled.binds.items() if not bind.required},
            bind={name: processors.get(name) for name in compiled.binds},  # type: ignore[misc]
            keys=tuple(column[0] for column in compiled._result_columns),
            results=tuple(
                (position, column[0], process)
                for position, column in enumerate(compiled._result_columns)
                if (process := column[3]._cached_result_processor(dialect, None)) is not None
            ),
            nested=tuple(
                position
                for position, column in enumerate(compiled._result_columns)
                if isinstance(column[3].dialect_impl(dialect), sa.JSON | sa.ARRAY)
            ),
        )

    async def rows(self, session: AsyncSession, parameters: Mapping[str, Any]) -> Sequence[Any]:
        """The statement's rows (attributes by column key, and `_mapping`)."""
        rows: Sequence[Any] = await self._run(session, parameters, None)
        return rows

    async def made(self, session: AsyncSession, parameters: Mapping[str, Any], made: Made[T]) -> T:
        """What `made` makes of the statement's rows, remembered where the statement ran on
        asyncpg directly."""
        result: T = await self._run(session, parameters, made)
        return result

    async def _run(
        self, session: AsyncSession, parameters: Mapping[str, Any], made: Made[Any] | None
    ) -> Any:
        own = session.sync_session
        engine = own.bind
        if isinstance(engine, Engine) and _autocommit(engine) and not own.in_transaction():
            # Nothing of the session's yet: a pooled connection of our own for this one
            # statement, given back at once (no Session transaction, no Connection around it).
            return await self._on_pooled(engine, parameters, made)
        connection = await session.connection()
        if not _autocommit(connection.sync_connection):  # type: ignore[arg-type]
            executed = await session.execute(self.statement, parameters)
            result: Sequence[Any] = executed.all() if self.returns_rows else []
            return result if made is None else made.make(result)
        raw = await connection.get_raw_connection()
        handle = connection.sync_connection._handle_dbapi_exception  # type: ignore[union-attr]
        return await self._fetch(connection.dialect, raw, parameters, handle, made)

    async def _on_pooled(
        self, engine: Engine, parameters: Mapping[str, Any], made: Made[Any] | None
    ) -> Any:
        raw = _checkout_idle(engine)
        if raw is None:
            raw = await greenlet_spawn(_checkout, engine)
        try:
            return await self._fetch(
                engine.dialect,
                raw,
                parameters,
                # On failure only: a Connection over it, to handle the error as its own.
                lambda *error: Connection(engine, raw)._handle_dbapi_exception(*error),
                made,
            )
        finally:
            if raw.is_valid:  # an invalidated one went back to the pool as it was invalidated
                raw.close()

    async def _fetch(
        self,
        dialect: Dialect,
        raw: PoolProxiedConnection,
        parameters: Mapping[str, Any],
        handle: _Handler,
        made: Made[Any] | None,
    ) -> Any:
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = self._compile(dialect)
        values = {**compiled.fixed, **parameters}
        arguments = []
        for name in compiled.names:
            value = values[name]
            process = compiled.bind[name]
            arguments.append(process(value) if process is not None and value is not None else value)
        try:
            records = await raw.driver_connection.fetch(compiled.sql, *arguments)  # type: ignore[union-attr]
        except Exception as error:
            await greenlet_spawn(_raise_as_sqlalchemy, handle, raw, compiled.sql, arguments, error)
            raise
        if made is not None:
            return made.of(_key(compiled.nested, records), lambda: _rows(compiled, records))
        return _rows(compiled, records)


def _rows(compiled: _Compiled, records: Sequence[Any]) -> list[_Row]:
    """Records as SQLAlchemy would give their rows: its types' processors applied."""
    found = []
    keys, processed = compiled.keys, compiled.results
    for record in records:
        mapping = dict(zip(keys, record.values(), strict=True))
        for position, key, process in processed:
            mapping[key] = process(record[position])
        found.append(_Row(mapping))
    return found


class FastWrite(FastRead):
    """A change that is one statement, atomic by itself (a data-modifying WITH on PostgreSQL),
    run as FastRead runs a read: on asyncpg directly where the session is in autocommit and
    has not begun (`Work.one_statement`'s, when nothing before it began the request's
    transaction), through SQLAlchemy in the session's transaction otherwise."""

    returns_rows = False

    async def run(self, session: AsyncSession, parameters: Mapping[str, Any]) -> None:
        await self.rows(session, parameters)


def _autocommit(bind: Engine | Connection) -> bool:
    """A PostgreSQL engine or connection in autocommit: where a statement may skip SQLAlchemy."""
    return bind.dialect.name == "postgresql" and (
        bind.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    )


def _checkout(engine: Engine) -> PoolProxiedConnection:
    """A connection from the pool, failing as `engine.connect()` would (DBAPIError)."""
    try:
        return engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as error:
        Connection._handle_dbapi_exception_noconnection(error, engine.dialect, engine)
        raise


def _checkout_idle(engine: Engine) -> PoolProxiedConnection | None:
    """An idle pooled connection, taken without leaving the event loop's greenlet; None when
    taking one would need the loop (none idle, so wait or connect; or the idle one must be
    reconnected: recycled, or invalidated after a failure), for `greenlet_spawn` to do.

    The pool awaits only to wait for a connection or to open one. Asked outside a greenlet it
    raises MissingGreenlet at that point instead, before taking anything (an empty queue) or
    after giving back what it took (a connection record that failed to connect goes back to
    the pool unconnected, and the greenlet's checkout connects it). The greenlet costs more
    than the checkout itself (it switches C stacks): about 30 us per read, measured in a
    loop."""
    pool = engine.pool
    if not isinstance(pool, QueuePool) or pool.checkedin() == 0 or pool._pre_ping:
        return None
    try:
        return _checkout(engine)
    except MissingGreenlet:
        return None


def _raise_as_sqlalchemy(
    handle: _Handler,
    raw: PoolProxiedConnection,
    sql: str,
    arguments: list[Any],
    error: Exception,
) -> NoReturn:
    """A failure raised exactly as SQLAlchemy would have raised it: translated by its asyncpg
    adapter, then handled by the connection, which invalidates a dead one (so the request's
    retry gets a fresh connection) and wraps the error in DBAPIError (answered as 503 when the
    database is unavailable)."""
    try:
        raw.dbapi_connection._handle_exception(error)  # type: ignore[union-attr]
    except Exception as translated:
        handle(translated, sql, arguments, None, None)
    raise error
