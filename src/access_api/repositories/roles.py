"""Custom roles of a tree: stored beside the built-in ones, referenced by grants."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.access import Role
from access_api.domain.errors import RoleKeyTaken
from access_api.domain.permissions import BUILTIN_ROLES, builtin_permissions
from access_api.ids import new_id
from access_api.repositories.dialect import insert
from access_api.repositories.orm import authorization_roles, roles
from access_api.repositories.pagination import Page, SortKey, fetch_page


def to_role(row: Row[Any] | Any) -> Role:
    return Role(
        id=row.id,
        root_id=row.root_id,
        key=row.key,
        name=row.name,
        permissions=_permissions(row.key, row.builtin, row.permissions),
        builtin=row.builtin,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _permissions(key: str, builtin: bool, stored: Iterable[str]) -> frozenset[str]:
    """A built-in role's permissions are the code's, whatever a tree stored at creation."""
    return builtin_permissions(key, frozenset(stored)) if builtin else frozenset(stored)


# A role read beside the grants that name it, labelled as roles_of_rows() reads them back.
ROLE_COLUMNS = (
    roles.c.id.label("role_id"),
    roles.c.root_id.label("role_root_id"),
    roles.c.key.label("role_key"),
    roles.c.name.label("role_name"),
    roles.c.permissions.label("role_permissions"),
    roles.c.builtin.label("role_builtin"),
    roles.c.created_at.label("role_created_at"),
    roles.c.updated_at.label("role_updated_at"),
)


def roles_of_rows(rows: Sequence[Any]) -> dict[str, Role]:
    """The roles read beside grants (ROLE_COLUMNS), by key."""
    return {
        row.role_key: Role(
            id=row.role_id,
            root_id=row.role_root_id,
            key=row.role_key,
            name=row.role_name,
            permissions=_permissions(row.role_key, row.role_builtin, row.role_permissions),
            builtin=row.role_builtin,
            created_at=row.role_created_at,
            updated_at=row.role_updated_at,
        )
        for row in rows
        if row.role_key is not None
    }


class RoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, root_id: UUID, key: str, *, for_update: bool = False) -> Role | None:
        statement = sa.select(roles).where(roles.c.root_id == root_id, roles.c.key == key)
        if for_update:
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).first()
        return to_role(row) if row else None

    async def list(
        self, root_id: UUID, *, after: tuple[Any, UUID] | None, limit: int
    ) -> Page[Role]:
        return await fetch_page(
            self.session,
            sa.select(roles).where(roles.c.root_id == root_id),
            key=SortKey(roles.c.key),
            id_column=roles.c.id,
            descending=False,
            after=after,
            limit=limit,
            build=to_role,
        )

    async def insert(self, role: Role) -> None:
        """The (tree, key) unique constraint decides races: the second one inserts nothing."""
        inserted = await self.session.execute(
            insert(self.session, roles)
            .values(
                id=role.id,
                root_id=role.root_id,
                key=role.key,
                name=role.name,
                permissions=sorted(role.permissions),
                builtin=role.builtin,
                created_at=role.created_at,
                updated_at=role.updated_at,
            )
            .on_conflict_do_nothing(index_elements=["root_id", "key"])
            .returning(roles.c.id)
        )
        if inserted.first() is None:
            raise RoleKeyTaken(f"a role with key {role.key!r} already exists")

    async def update(self, role: Role) -> None:
        await self.session.execute(
            sa.update(roles)
            .where(roles.c.id == role.id)
            .values(
                name=role.name, permissions=sorted(role.permissions), updated_at=role.updated_at
            )
        )

    async def in_use(self, role_id: UUID) -> bool:
        """Granted to anyone. (Pending invitations offering it count too, through their own
        RESTRICT foreign key.)"""
        found = await self.session.scalar(
            sa.select(sa.exists().where(authorization_roles.c.role_id == role_id))
        )
        return bool(found)

    async def delete(self, role_id: UUID) -> None:
        await self.session.execute(sa.delete(roles).where(roles.c.id == role_id))

    async def create_builtin(self, root_id: UUID, now: datetime) -> None:
        await self.session.execute(
            sa.insert(roles),
            [
                {
                    "id": new_id(),
                    "root_id": root_id,
                    "key": key,
                    "name": name,
                    "permissions": sorted(builtin_permissions(key, frozenset())),
                    "builtin": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for key, name in BUILTIN_ROLES.items()
            ],
        )

    async def of_tree(self, root_id: UUID) -> dict[str, Role]:
        rows = await self.session.execute(sa.select(roles).where(roles.c.root_id == root_id))
        return {row.key: to_role(row) for row in rows}
