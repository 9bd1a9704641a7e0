"""SCIM settings of a tenant and the directory of users provisioned there."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class ScimRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
