"""Users: the person, their password hash and their login record."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.tenants import Tenant
from access_api.domain.users import (
    FORMULA_STARTS,
    TwoFactor,
    User,
    email_key,
)
from access_api.repositories import sqlite_csv
from access_api.repositories.dialect import insert, is_postgresql
from access_api.repositories.members import live as live_grant
from access_api.repositories.members import reaching, visible
from access_api.repositories.orm import (
    authorization_roles,
    authorizations,
    roles,
    tenant_closure,
    users,
)
from access_api.repositories.pagination import After, Page, SortKey, fetch_page
from access_api.repositories.tenants import escape_like

USER_SORTS: dict[str, SortKey] = {
    "email": SortKey(users.c.email_key),
    "first_name": SortKey(users.c.first_name),
    "last_name": SortKey(users.c.last_name),
    "two_factor": SortKey(users.c.two_factor),
    "created_at": SortKey(users.c.created_at),
    "last_login_at": SortKey(users.c.last_login_at, nullable=True),
    "id": SortKey(users.c.id),
}


_HELD = tenant_closure.alias("held")  # built once: an alias copies its table's columns


def _neutralized(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """SQL for domain.users.neutralize: a leading apostrophe before a formula character."""
    return sa.case(
        (sa.func.left(column, 1).in_(FORMULA_STARTS), sa.literal("'") + column), else_=column
    )


def _utc_text(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """SQL for EXPORT_TIME_FORMAT."""
    return sa.func.to_char(sa.func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')


# What to_user reads: no secret (password hash, TOTP secret) leaves the database with it.
USER_KEYS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "session_timeout_minutes",
    "two_factor",
    "created_at",
    "updated_at",
    "last_login_at",
)


def to_user(row: Row[Any] | Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        phone=row.phone,
        session_timeout_minutes=row.session_timeout_minutes,
        two_factor=TwoFactor(row.two_factor),
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
    )


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: UUID) -> User | None:
        row = (await self.session.execute(sa.select(users).where(users.c.id == user_id))).first()
        return to_user(row) if row else None

    async def get_many(self, user_ids: Iterable[UUID]) -> dict[UUID, User]:
        ids = set(user_ids)
        if not ids:
            return {}
        rows = await self.session.execute(sa.select(users).where(users.c.id.in_(ids)))
        return {row.id: to_user(row) for row in rows}

    async def by_email(self, email: str) -> tuple[User, str] | None:
        """The user and their password hash, for login."""
        row = (
            await self.session.execute(
                sa.select(users).where(users.c.email_key == email_key(email))
            )
        ).first()
        return (to_user(row), row.password_hash) if row else None

    async def insert(self, user: User, password_hash: str) -> bool:
        """Create the account unless one with this email appeared meanwhile (another link
        accepted at the same moment): False then, with nothing written and no aborted
        transaction."""
        result = await self.session.execute(
            insert(self.session, users)
            .values(
                id=user.id,
                email=user.email,
                email_key=email_key(user.email),
                password_hash=password_hash,
                first_name=user.first_name,
                last_name=user.last_name,
                phone=user.phone,
                session_timeout_minutes=user.session_timeout_minutes,
                two_factor=user.two_factor.value,
                created_at=user.created_at,
                updated_at=user.updated_at,
                last_login_at=user.last_login_at,
                password_changed_at=user.created_at,
            )
            .on_conflict_do_nothing(index_elements=["email_key"])
            .returning(users.c.id)
        )
        return result.first() is not None

    async def list_visible(
        self,
        context: Tenant,
        *,
        q: str | None,
        role: str | None,
        two_factor: TwoFactor | None,
        ids: Sequence[UUID] | None,
        sort: str,
        descending: bool,
        after: After | None,
        limit: int,
        now: datetime,
    ) -> Page[User]:
        """Users with access to the context or below it, filtered, one keyset page at a time."""
        statement = sa.select(users).where(visible(users.c.id, context.id, context.root_id, now))
        if q:
            pattern = f"%{escape_like(q.lower())}%"
            statement = statement.where(
                sa.or_(
                    users.c.email_key.like(pattern, escape="\\"),
                    sa.func.lower(users.c.first_name).like(pattern, escape="\\"),
                    sa.func.lower(users.c.last_name).like(pattern, escape="\\"),
                )
            )
        if two_factor is not None:
            statement = statement.where(users.c.two_factor == two_factor.value)
        if ids is not None:
            statement = statement.where(users.c.id.in_(set(ids)))
        if role is not None:
            statement = statement.where(
                sa.exists().where(
                    authorizations.c.user_id == users.c.id,
                    reaching(context.id, context.root_id, now),
                    authorization_roles.c.authorization_id == authorizations.c.id,
                    roles.c.id == authorization_roles.c.role_id,
                    roles.c.key == role,
                )
            )
        return await fetch_page(
            self.session,
            statement,
            key=USER_SORTS[sort],
            id_column=users.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=to_user,
        )

    def _export_select(
        self, context: Tenant, ids: Sequence[UUID] | None, now: datetime
    ) -> tuple[sa.Select[Any], dict[str, sa.ColumnElement[Any]]]:
        """Everyone visible from the context, with the roles that apply there and whether any
        live grant remains (both computed once for everyone by grouped joins), by email."""
        held = _HELD
        postgres = is_postgresql(self.session)
        keys = (
            sa.func.array_to_string(
                sa.func.array_agg(aggregate_order_by(sa.distinct(roles.c.key), roles.c.key)), ";"
            )
            if postgres
            else sa.func.group_concat(sa.distinct(roles.c.key))
        )
        role_keys = (
            sa.select(authorizations.c.user_id, keys.label("role_keys"))
            .select_from(
                held.join(authorizations, authorizations.c.tenant_id == held.c.ancestor_id)
                .join(
                    authorization_roles,
                    authorization_roles.c.authorization_id == authorizations.c.id,
                )
                .join(roles, roles.c.id == authorization_roles.c.role_id)
            )
            .where(
                held.c.descendant_id == context.id,
                sa.or_(held.c.depth == 0, authorizations.c.include_descendants),
                live_grant(now),
            )
            # On SQLite, grouping by the user alone lets the planner walk every grant of the
            # database in user order to skip a sort; the context's column (one value) in the
            # key makes it start from the context's few ancestors instead.
            .group_by(*([] if postgres else [held.c.descendant_id]), authorizations.c.user_id)
            .subquery("role_keys")
        )
        statement = sa.select(users).outerjoin(role_keys, role_keys.c.user_id == users.c.id)
        active: sa.ColumnElement[Any] = sa.true()
        if context.parent_id is None and postgres:
            # At the root a member may have no role left anywhere (seed 003): say so.
            live = (
                sa.select(authorizations.c.user_id)
                .where(authorizations.c.root_id == context.id, live_grant(now))
                .distinct()
                .subquery("live")
            )
            statement = statement.outerjoin(live, live.c.user_id == users.c.id)
            active = live.c.user_id.is_not(None)
        elif context.parent_id is None:
            # SQLite walks users in email order: one probe of (root_id, user_id) per row costs
            # less there than a DISTINCT over every grant of the tree joined back through a
            # temporary index (PostgreSQL hashes that join, and keeps it).
            active = sa.exists().where(
                authorizations.c.root_id == context.id,
                authorizations.c.user_id == users.c.id,
                live_grant(now),
            )
        statement = statement.where(visible(users.c.id, context.id, context.root_id, now))
        if ids is not None:
            statement = statement.where(users.c.id.in_(set(ids)))
        fields: dict[str, sa.ColumnElement[Any]] = {
            "id": users.c.id,
            "email": users.c.email,
            "first_name": users.c.first_name,
            "last_name": users.c.last_name,
            "role_keys": role_keys.c.role_keys,
            "two_factor": users.c.two_factor,
            "active": active,
            "created_at": users.c.created_at,
            "last_login_at": users.c.last_login_at,
        }
        return statement.order_by(users.c.email_key, users.c.id), fields

    def export_sql(
        self, context: Tenant, *, columns: Sequence[str], ids: Sequence[UUID] | None, now: datetime
    ) -> str:
        """The export's one query, as the database runs it: on PostgreSQL each cell rendered as
        COPY writes it, on SQLite each cell as stored (sqlite_csv writes the line). Every
        literal in it is a UUID, a time or a constant of ours: no caller text reaches the SQL.
        The bench runs it straight on the driver, as the floor of the export."""
        statement, fields = self._export_select(context, ids, now)
        cells: dict[str, sa.ColumnElement[Any]]
        if is_postgresql(self.session):
            cells = {
                "user_id": sa.cast(fields["id"], sa.Text),
                "email": _neutralized(fields["email"]),
                "first_name": _neutralized(fields["first_name"]),
                "last_name": _neutralized(fields["last_name"]),
                "created_at": _utc_text(fields["created_at"]),
                "last_login_at": _utc_text(fields["last_login_at"]),
            }
        else:
            # SQLite's cells leave the database as they are stored (text, no UUID or datetime
            # built per row).
            cells = {
                "user_id": sa.type_coerce(fields["id"], sa.String),
                "email": fields["email"],
                "first_name": fields["first_name"],
                "last_name": fields["last_name"],
                "created_at": sa.type_coerce(fields["created_at"], sa.String),
                "last_login_at": sa.type_coerce(fields["last_login_at"], sa.String),
            }
        cells["roles"] = fields["role_keys"]
        cells["two_factor"] = fields["two_factor"]
        cells["status"] = sa.case((fields["active"], "active"), else_="no_access")
        query = statement.with_only_columns(*(cells[c].label(c) for c in columns))
        return str(
            query.compile(
                dialect=self.session.get_bind().dialect, compile_kwargs={"literal_binds": True}
            )
        )

    async def export_csv(
        self,
        context: Tenant,
        *,
        columns: Sequence[str],
        ids: Sequence[UUID] | None,
        now: datetime,
        statement_seconds: float,
        batch: int = 1000,
    ) -> AsyncGenerator[bytes, None]:
        """The CSV export (seed 003), streamed from one query (one snapshot) with memory flat
        whatever the number of users. PostgreSQL renders the CSV itself (COPY ... TO STDOUT),
        at its own speed; SQLite's rows are rendered here, with COPY's rules (sqlite_csv). Both
        give the same bytes."""
        sql = self.export_sql(context, columns=columns, ids=ids, now=now)
        if is_postgresql(self.session):
            stream = self._copy_csv(sql, statement_seconds)
        else:
            stream = self._sqlite_csv(sql, columns, batch)
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _sqlite_csv(
        self, sql: str, columns: Sequence[str], batch: int
    ) -> AsyncGenerator[bytes, None]:
        """Straight from the driver's cursor, in batches: SQLAlchemy's rows would add nothing
        but their cost."""
        connection = await self.session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        if driver is None:
            raise RuntimeError("the export's connection is closed")
        lines_of = sqlite_csv.lines_for(columns)
        cursor = await driver.execute(sql)
        try:
            yield (",".join(columns) + "\n").encode()  # names of ours: nothing to quote
            while partition := await cursor.fetchmany(batch):
                lines = lines_of(partition)
                lines.append("")
                yield "\n".join(lines).encode()
        finally:
            await cursor.close()

    async def _copy_csv(self, sql: str, statement_seconds: float) -> AsyncGenerator[bytes, None]:
        """Stream COPY's output through a small queue: when the client reads slowly, the queue
        fills, asyncpg stops reading, and PostgreSQL waits; nothing piles up in memory."""
        connection = await self.session.connection()
        # An export is one long statement by design: the per-statement timeout that turns a
        # stalled database into a quick 503 would cut it off, so it gets its own bound.
        await connection.execute(
            sa.text(f"SET LOCAL statement_timeout = {int(statement_seconds * 1000)}")
        )
        driver = (await connection.get_raw_connection()).driver_connection
        if driver is None:
            raise RuntimeError("the export's connection is closed")
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)

        async def sink(chunk: bytes | bytearray) -> None:
            await chunks.put(bytes(chunk))

        async def copy() -> None:
            try:
                await driver.copy_from_query(
                    sql, output=sink, format="csv", header=True, timeout=statement_seconds
                )
            except asyncio.CancelledError:
                # The reader went away (the client left): nobody takes an end from the queue,
                # and waiting for room in it would keep the COPY, and its connection, busy.
                raise
            except BaseException:
                await chunks.put(None)
                raise
            await chunks.put(None)

        task = asyncio.create_task(copy())
        try:
            while (chunk := await chunks.get()) is not None:
                yield chunk
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # Cut off mid-stream (the client left): the connection is dropped, not given
                # back. Waiting for the server to acknowledge the COPY's cancellation is not
                # enough for asyncpg, whose next statement on it (the snapshot's ROLLBACK)
                # can still find it busy ("another operation is in progress").
                await connection.invalidate()

    async def update_profile(self, user: User) -> None:
        await self.session.execute(
            sa.update(users)
            .where(users.c.id == user.id)
            .values(
                first_name=user.first_name,
                last_name=user.last_name,
                phone=user.phone,
                session_timeout_minutes=user.session_timeout_minutes,
                updated_at=user.updated_at,
            )
        )

    async def lock(self, user_id: UUID) -> User | None:
        row = (
            await self.session.execute(
                sa.select(users).where(users.c.id == user_id).with_for_update()
            )
        ).first()
        return to_user(row) if row else None

    async def password_hash(self, user_id: UUID) -> str | None:
        value = await self.session.scalar(
            sa.select(users.c.password_hash).where(users.c.id == user_id)
        )
        return str(value) if value is not None else None

    async def set_password_hash(
        self, user_id: UUID, password_hash: str, now: datetime, *, replacing: str | None = None
    ) -> None:
        """A new hash; with `replacing`, only if the stored hash is still that one."""
        statement = (
            sa.update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash, password_changed_at=now, updated_at=now)
        )
        if replacing is not None:
            statement = statement.where(users.c.password_hash == replacing)
        await self.session.execute(statement)
