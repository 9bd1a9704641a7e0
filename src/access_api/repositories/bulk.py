"""Bulk writes: multi-row inserts (one INSERT … VALUES (…), (…) per table and batch, never one
per row) and updates of many rows by id in one executemany."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_rows(
    session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert rows (each with the same keys) as one multi-row statement.

    A plain executemany is one INSERT per row on the wire with asyncpg (pipelined, but each
    bound and executed alone), and `insert().values([...])` is compiled anew on every call
    (its cache key holds the values). An INSERT … RETURNING given many rows takes SQLAlchemy's
    "insertmanyvalues" path on both databases instead: its one-row statement is compiled once
    and cached, then rendered as INSERT … VALUES (…), (…) in batches that stay under each
    database's bind-parameter limit. The returned keys are not needed; they only select
    that path.
    """
    if rows:
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
