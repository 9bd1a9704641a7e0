"""Custom roles of a tree: stored beside the built-in ones, referenced by grants."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.access import Role
from access_api.domain.errors import RoleKeyTaken
from access_api.repositories.access import to_role
from access_api.repositories.dialect import insert
from access_api.repositories.orm import authorization_roles, roles
from access_api.repositories.pagination import Page, SortKey, fetch_page


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
