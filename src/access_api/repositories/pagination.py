"""Keyset pagination: page N costs what page 1 costs, and pages stay stable under inserts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from access_api.pagination import After, Page

T = TypeVar("T")
__all__ = ["After", "Page", "SortKey", "fetch_page"]


@dataclass(frozen=True, slots=True)
class SortKey:
    """A sortable column. Nullable columns sort their NULLs last (first when descending)."""

    column: ColumnElement[Any]
    nullable: bool = False


def _after_clause(
    key: SortKey, id_column: ColumnElement[Any], descending: bool, after: After
) -> ColumnElement[bool]:
    value, last_id = after
    col = key.column
    if not key.nullable:
        # A row-value comparison is an index range on (col, id); an OR of terms is not.
        if descending:
            return sa.tuple_(col, id_column) < (value, last_id)
        return sa.tuple_(col, id_column) > (value, last_id)
    if not descending:  # NULLS LAST
        if value is None:
            return sa.and_(col.is_(None), id_column > last_id)
        return sa.or_(sa.tuple_(col, id_column) > (value, last_id), col.is_(None))
    if value is None:  # NULLS FIRST
        return sa.or_(sa.and_(col.is_(None), id_column < last_id), col.is_not(None))
    return sa.tuple_(col, id_column) < (value, last_id)


def _order(key: SortKey, id_column: ColumnElement[Any], descending: bool) -> list[Any]:
    col = key.column
    if descending:
        primary = col.desc().nulls_first() if key.nullable else col.desc()
        return [primary, id_column.desc()]
    primary = col.asc().nulls_last() if key.nullable else col.asc()
    return [primary, id_column.asc()]


async def fetch_page(
    session: AsyncSession,
    statement: sa.Select[Any],
    *,
    key: SortKey,
    id_column: ColumnElement[Any],
    descending: bool,
    after: After | None,
    limit: int,
    build: Callable[[Row[Any]], T],
    parameters: Mapping[str, Any] | None = None,
) -> Page[T]:
    """Run a select one page at a time: one row more than asked tells whether there is a next
    page, without counting anything. parameters: values for the statement's bound ones."""
    statement = statement.add_columns(key.column.label("_sort_key"), id_column.label("_sort_id"))
    if after is not None:
        statement = statement.where(_after_clause(key, id_column, descending, after))
    statement = statement.order_by(*_order(key, id_column, descending)).limit(limit + 1)
    rows: Sequence[Row[Any]] = (await session.execute(statement, parameters)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = (rows[-1]._sort_key, rows[-1]._sort_id) if more and rows else None
    return Page([build(row) for row in rows], next_after)
