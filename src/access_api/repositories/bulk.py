"""Bulk writes: multi-row inserts (one INSERT per table and batch, never one per row) and
updates of many rows by id in one executemany."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession


@functools.cache
def unnested(table: sa.Table, names: tuple[str, ...]) -> sa.Select[Any]:
    """The rows of an insert as PostgreSQL's `unnest` of one array per column: `SELECT … FROM
    unnest($1::uuid[], $2::varchar[], …)`. Bound as `many_<column>`, one list per column
    (`many`). Built once per table and columns, so SQLAlchemy compiles it once and caches it,
    and PostgreSQL plans one small statement whatever the number of rows."""
    columns = [table.c[name] for name in names]
    arrays = (
        sa.func.unnest(
            *(sa.bindparam(f"many_{c.name}", type_=postgresql.ARRAY(c.type)) for c in columns)
        )
        .table_valued(*names)
        .render_derived(name=f"many_{table.name}")
    )
    return sa.select(*(arrays.c[name] for name in names))


@functools.cache
def _insert_unnested(table: sa.Table, names: tuple[str, ...]) -> sa.Insert:
    return sa.insert(table).from_select(list(names), unnested(table, names))


def many(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The parameters of `unnested`: each column's values, in the rows' order."""
    return {f"many_{name}": [row[name] for row in rows] for name in rows[0]}


async def insert_rows(
    session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert rows (each with the same keys) as one statement.

    On PostgreSQL, `INSERT … SELECT … FROM unnest(…)` with one array per column (`unnested`):
    a dozen parameters whatever the number of rows. Measured in process on 100 audit events:
    1.08 ms of CPU against 1.53 for the multi-row VALUES below, whose parameters SQLAlchemy
    renders and binds one by one (a hundred rows of a dozen columns are 1,200 of them).

    On SQLite, which has no arrays: a plain executemany is one INSERT per row, and
    `insert().values([...])` is compiled anew on every call (its cache key holds the values).
    An INSERT … RETURNING given many rows takes SQLAlchemy's "insertmanyvalues" path instead:
    its one-row statement is compiled once and cached, then rendered as INSERT … VALUES (…),
    (…) in batches that stay under the bind-parameter limit. The returned keys are not
    needed; they only select that path.
    """
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_insert_unnested(table, tuple(rows[0])), many(rows))
        return
    key = next(iter(table.primary_key.columns))
    await session.execute(sa.insert(table).returning(key), list(rows))


async def update_rows(
    session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Update rows by id, each to its own values (every row with the same keys: `id` and the
    columns to set), as one executemany of one statement built from those keys."""
    if rows:
        columns = [key for key in rows[0] if key != "id"]
        await session.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("row_id"))
            .values({column: sa.bindparam(column) for column in columns}),
            [{"row_id": row["id"], **{c: row[c] for c in columns}} for row in rows],
        )
