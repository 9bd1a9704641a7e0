"""Transitional: grants, members and roles under the one name that code not yet moved onto
use cases still asks for (`AccessRepository`). New code uses the repositories themselves:
`repositories.grants`, `repositories.members`, `repositories.roles`."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from access_api.domain.access import Role
from access_api.repositories.grants import GrantRepository
from access_api.repositories.members import MemberRepository
from access_api.repositories.roles import RoleRepository, to_role

__all__ = ["AccessRepository", "to_role"]


class AccessRepository(GrantRepository, MemberRepository):
    async def roles(self, root_id: UUID) -> dict[str, Role]:
        return await RoleRepository(self.session).of_tree(root_id)

    async def create_builtin_roles(self, root_id: UUID, now: datetime) -> None:
        await RoleRepository(self.session).create_builtin(root_id, now)
