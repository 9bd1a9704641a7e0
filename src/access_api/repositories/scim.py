"""SCIM settings of a tenant and the directory of users provisioned there, with SCIM filters
translated to SQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from scim2_models.path.expressions import (
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.scim import ScimSettings, ScimUser, user_name_key
from access_api.domain.users import email_key
from access_api.repositories.orm import (
    authorization_roles,
    authorizations,
    roles,
    scim_settings,
    scim_users,
    users,
)
from access_api.repositories.tenants import escape_like


class UnsupportedFilter(Exception):
    """A filter naming an attribute or operator the directory cannot search by."""


# Filterable attributes, lowercased (attribute names are case-insensitive), with whether their
# values compare case-insensitively; each is backed by an index for `eq` (userName, emails).
_ATTRIBUTES: dict[str, tuple[sa.ColumnElement[Any], bool]] = {
    "id": (scim_users.c.user_id, False),
    "username": (scim_users.c.user_name_key, True),
    "externalid": (scim_users.c.external_id, False),
    "active": (scim_users.c.active, False),
    "emails": (users.c.email_key, True),
    "emails.value": (users.c.email_key, True),
    "name.givenname": (users.c.first_name, True),
    "name.familyname": (users.c.last_name, True),
    "meta.created": (scim_users.c.created_at, False),
    "meta.lastmodified": (scim_users.c.updated_at, False),
}


def _column(path: Any) -> tuple[sa.ColumnElement[Any], bool]:
    name = f"{path.attr}.{path.sub_attr}" if path.sub_attr else str(path.attr)
    found = _ATTRIBUTES.get(name.lower())
    if found is None:
        raise UnsupportedFilter(f"cannot filter by {name}")
    return found


def _value(column: sa.ColumnElement[Any], folded: bool, value: Any) -> Any:
    if column is scim_users.c.user_id:
        try:
            return UUID(str(value))
        except ValueError:
            return None
    if isinstance(value, str) and folded:
        return value.casefold()
    return value


def predicate(node: FilterNode) -> sa.ColumnElement[bool]:
    """A SCIM filter (RFC 7644 §3.4.2.2) as a SQL condition."""
    if isinstance(node, LogicalExpr):
        terms = [predicate(term) for term in node.terms]
        return sa.and_(*terms) if node.op == LogicalOperator.and_ else sa.or_(*terms)
    if isinstance(node, Not):
        return sa.not_(predicate(node.expr))
    if isinstance(node, Present):
        column, _ = _column(node.attr_path)
        return column.is_not(None)
    if isinstance(node, ValuePath):
        return predicate(_scoped(node))
    if isinstance(node, Comparison):
        return _compare(node)
    raise UnsupportedFilter(f"cannot filter with {node}")


def _scoped(node: ValuePath) -> FilterNode:
    """emails[value eq "x"] reads as emails.value eq "x": each user has one email."""
    inner = node.val_filter
    if isinstance(inner, Comparison) and inner.attr_path.sub_attr is None:
        path = type(inner.attr_path)(attr=node.attr_path.attr, sub_attr=inner.attr_path.attr)
        return Comparison(attr_path=path, op=inner.op, value=inner.value)
    raise UnsupportedFilter(f"cannot filter with {node}")


# Columns that hold their values folded already (and are indexed so).
_FOLDED = (scim_users.c.user_name_key, users.c.email_key)


def _compare(node: Comparison) -> sa.ColumnElement[bool]:
    column, folded = _column(node.attr_path)
    value = _value(column, folded, node.value)
    if folded and not any(column is c for c in _FOLDED):
        column = sa.func.lower(column)
    op = node.op
    if op == CompareOperator.eq:
        return column.is_(None) if value is None else column == value
    if op == CompareOperator.ne:
        return column.is_not(None) if value is None else column != value
    if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
        if not isinstance(value, str):
            raise UnsupportedFilter(f"{op.value} compares strings")
        text = escape_like(value)
        pattern = {"co": f"%{text}%", "sw": f"{text}%", "ew": f"%{text}"}[op.value]
        return column.like(pattern, escape="\\")
    comparisons = {
        CompareOperator.gt: column > value,
        CompareOperator.ge: column >= value,
        CompareOperator.lt: column < value,
        CompareOperator.le: column <= value,
    }
    if op in comparisons:
        found: sa.ColumnElement[bool] = comparisons[op]
        return found
    raise UnsupportedFilter(f"unknown operator {op}")


_USER_COLUMNS = (
    scim_users.c.user_id,
    scim_users.c.user_name,
    scim_users.c.external_id,
    scim_users.c.active,
    scim_users.c.created_at,
    scim_users.c.updated_at,
    users.c.email,
    users.c.first_name,
    users.c.last_name,
)


class ScimRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- settings ---------------------------------------------------------------------------

    async def settings(self, tenant_id: UUID) -> ScimSettings | None:
        row = (
            await self.session.execute(
                sa.select(scim_settings).where(scim_settings.c.tenant_id == tenant_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return ScimSettings(
            default_roles=frozenset(row.default_roles),
            include_descendants=row.include_descendants,
        )

    async def save_settings(self, tenant_id: UUID, settings: ScimSettings, now: datetime) -> None:
        values = {
            "default_roles": sorted(settings.default_roles),
            "include_descendants": settings.include_descendants,
            "updated_at": now,
        }
        changed = await self.session.execute(
            sa.update(scim_settings).where(scim_settings.c.tenant_id == tenant_id).values(**values)
        )
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(
                sa.insert(scim_settings).values(tenant_id=tenant_id, user_count=0, **values)
            )

    async def _count(self, tenant_id: UUID, delta: int, now: datetime) -> None:
        """Keep the directory's size beside its settings (callers hold the tree lock)."""
        changed = await self.session.execute(
            sa.update(scim_settings)
            .where(scim_settings.c.tenant_id == tenant_id)
            .values(user_count=scim_settings.c.user_count + delta)
        )
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(
                sa.insert(scim_settings).values(
                    tenant_id=tenant_id,
                    default_roles=[],
                    include_descendants=False,
                    user_count=max(delta, 0),
                    updated_at=now,
                )
            )

    # --- the directory ----------------------------------------------------------------------

    async def link(
        self,
        tenant_id: UUID,
        user_id: UUID,
        *,
        user_name: str,
        external_id: str | None,
        active: bool,
        now: datetime,
    ) -> None:
        await self.session.execute(
            sa.insert(scim_users).values(
                tenant_id=tenant_id,
                user_id=user_id,
                user_name=user_name,
                user_name_key=user_name_key(user_name),
                external_id=external_id,
                active=active,
                created_at=now,
                updated_at=now,
            )
        )
        await self._count(tenant_id, 1, now)

    async def update(
        self,
        tenant_id: UUID,
        user_id: UUID,
        *,
        user_name: str,
        external_id: str | None,
        active: bool,
        now: datetime,
    ) -> None:
        await self.session.execute(
            sa.update(scim_users)
            .where(scim_users.c.tenant_id == tenant_id, scim_users.c.user_id == user_id)
            .values(
                user_name=user_name,
                user_name_key=user_name_key(user_name),
                external_id=external_id,
                active=active,
                updated_at=now,
            )
        )

    async def unlink(self, tenant_id: UUID, user_id: UUID, now: datetime) -> None:
        await self.session.execute(
            sa.delete(scim_users).where(
                scim_users.c.tenant_id == tenant_id, scim_users.c.user_id == user_id
            )
        )
        await self._count(tenant_id, -1, now)

    async def set_email(self, user_id: UUID, email: str, now: datetime) -> None:
        """The first real address of a user provisioned without one (see domain.scim)."""
        await self.session.execute(
            sa.update(users)
            .where(users.c.id == user_id)
            .values(email=email, email_key=email_key(email), updated_at=now)
        )

    async def holder_of_name(self, tenant_id: UUID, user_name: str) -> UUID | None:
        return (
            await self.session.execute(
                sa.select(scim_users.c.user_id).where(
                    scim_users.c.tenant_id == tenant_id,
                    scim_users.c.user_name_key == user_name_key(user_name),
                )
            )
        ).scalar_one_or_none()

    async def linked(self, tenant_id: UUID, user_id: UUID) -> bool:
        found = await self.session.execute(
            sa.select(scim_users.c.user_id).where(
                scim_users.c.tenant_id == tenant_id, scim_users.c.user_id == user_id
            )
        )
        return found.first() is not None

    async def get(self, tenant_id: UUID, user_id: UUID) -> ScimUser | None:
        found = await self._users(
            tenant_id, sa.and_(scim_users.c.user_id == user_id), offset=0, limit=1
        )
        return found[0] if found else None

    async def page(
        self,
        tenant_id: UUID,
        where: sa.ColumnElement[bool] | None,
        *,
        offset: int,
        limit: int,
        after: UUID | None = None,
    ) -> tuple[int, list[ScimUser]]:
        """A page in the directory's order (the primary key): the first page costs the same at
        any size, and the total of an unfiltered list is the kept count, not a count(*)."""
        if where is None:
            total = (
                await self.session.execute(
                    sa.select(scim_settings.c.user_count).where(
                        scim_settings.c.tenant_id == tenant_id
                    )
                )
            ).scalar_one_or_none() or 0
        else:
            total = (
                await self.session.execute(
                    sa.select(sa.func.count())
                    .select_from(scim_users.join(users, users.c.id == scim_users.c.user_id))
                    .where(scim_users.c.tenant_id == tenant_id, where)
                )
            ).scalar_one()
        found = (
            await self._users(tenant_id, where, offset=offset, limit=limit, after=after)
            if limit
            else []
        )
        return int(total), found

    async def _users(
        self,
        tenant_id: UUID,
        where: sa.ColumnElement[bool] | None,
        *,
        offset: int,
        limit: int,
        after: UUID | None = None,
    ) -> list[ScimUser]:
        # A cursor (RFC 9865) seeks past the last id it saw: every page costs the first's.
        seek = scim_users.c.user_id > after if after is not None else sa.true()
        if where is None:
            # Skip over (or seek in) the primary key alone, then join the page: a deep
            # startIndex costs a walk over index entries, not over joined rows, and a cursor
            # page joins its rows only (joined first, PostgreSQL would merge-join the whole of
            # users up to the cursor, a cost that grows with the directory).
            ids = (
                sa.select(scim_users.c.user_id)
                .where(scim_users.c.tenant_id == tenant_id, seek)
                .order_by(scim_users.c.user_id)
                .offset(offset)
                .limit(limit)
                .subquery("page")
            )
            statement = (
                sa.select(*_USER_COLUMNS)
                .select_from(
                    ids.join(scim_users, scim_users.c.user_id == ids.c.user_id).join(
                        users, users.c.id == scim_users.c.user_id
                    )
                )
                .where(scim_users.c.tenant_id == tenant_id)
                .order_by(scim_users.c.user_id)
            )
        else:
            statement = (
                sa.select(*_USER_COLUMNS)
                .select_from(scim_users.join(users, users.c.id == scim_users.c.user_id))
                .where(scim_users.c.tenant_id == tenant_id, where, seek)
                .order_by(scim_users.c.user_id)
                .offset(offset)
                .limit(limit)
            )
        rows = (await self.session.execute(statement)).all()
        held = await self.roles_on(tenant_id, [row.user_id for row in rows])
        return [
            ScimUser(
                id=row.user_id,
                user_name=row.user_name,
                external_id=row.external_id,
                active=row.active,
                email=row.email,
                first_name=row.first_name,
                last_name=row.last_name,
                roles=frozenset(held.get(row.user_id, ())),
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            for row in rows
        ]

    # --- groups: roles held on the tenant ---------------------------------------------------

    async def roles_on(self, tenant_id: UUID, user_ids: Sequence[UUID]) -> dict[UUID, set[str]]:
        if not user_ids:
            return {}
        rows = await self.session.execute(
            sa.select(authorizations.c.user_id, roles.c.key)
            .select_from(
                authorizations.join(
                    authorization_roles,
                    authorization_roles.c.authorization_id == authorizations.c.id,
                ).join(roles, roles.c.id == authorization_roles.c.role_id)
            )
            .where(authorizations.c.tenant_id == tenant_id, authorizations.c.user_id.in_(user_ids))
        )
        held: dict[UUID, set[str]] = defaultdict(set)
        for row in rows:
            held[row.user_id].add(row.key)
        return held

    async def members_of(self, tenant_id: UUID, role_keys: Iterable[str]) -> dict[str, list[Any]]:
        """Who holds each role on the tenant: (user id, email), by role key."""
        rows = await self.session.execute(
            sa.select(roles.c.key, users.c.id, users.c.email)
            .select_from(
                authorizations.join(
                    authorization_roles,
                    authorization_roles.c.authorization_id == authorizations.c.id,
                )
                .join(roles, roles.c.id == authorization_roles.c.role_id)
                .join(users, users.c.id == authorizations.c.user_id)
            )
            .where(authorizations.c.tenant_id == tenant_id, roles.c.key.in_(list(role_keys)))
            .order_by(users.c.id)
        )
        found: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            found[row.key].append((row.id, row.email))
        return found
