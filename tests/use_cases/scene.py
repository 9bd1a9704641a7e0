"""A scene for use cases called directly, without HTTP, on the test database (both backends)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncConnection

from access_api.bootstrap import bootstrap, offline_state
from access_api.db import Database
from access_api.domain.access import Caller, Scope
from access_api.domain.audit import SYSTEM, ActorKind
from access_api.domain.invitations import Offer
from access_api.domain.tenants import Tenant
from access_api.domain.users import User
from access_api.state import AppState
from access_api.use_cases import Work, members
from tests.conftest import settings_for
from tests.people import new_person

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


@dataclass
class Scene:
    """A database to run use cases against, and ways to set a scene up through them."""

    state: AppState

    @asynccontextmanager
    async def work(self) -> AsyncIterator[Work]:
        """One unit of work, committed at the end (a savepoint of the test's transaction)."""
        async with self.state.database.session() as session:
            yield Work.over(session, self.state, NOW)
            await session.commit()

    async def msp(self) -> tuple[Tenant, Caller]:
        prefix = f"msp-{secrets.token_hex(4)}"
        async with self.work() as work:
            made = await bootstrap(
                work,
                name="Northwind",
                domain_prefix=prefix,
                admin_email=f"admin@{prefix}.example.com",
                admin_password=PASSWORD,
            )
            found = await work.users.by_email(made.admin_email)
        assert found is not None
        return made.tenant, caller_of(found[0])

    async def user(
        self, root: Tenant, grants: Iterable[tuple[UUID, Iterable[str], bool]] = ()
    ) -> Caller:
        user = person(f"user-{secrets.token_hex(4)}@example.com")
        async with self.work() as work:
            await members.join(
                work,
                SYSTEM,
                root_id=root.id,
                user=user,
                password_hash=await self.state.passwords.hash(PASSWORD),
                offers=[
                    Offer(tenant_id=t, roles=frozenset(r), include_descendants=d)
                    for t, r, d in grants
                ],
                tenant=root,
            )
        return caller_of(user)

    async def scope(self, caller: Caller, tenant_id: UUID, permission: str) -> Scope:
        async with self.work() as work:
            return await work.scope(caller, tenant_id, permission)


def person(email: str) -> User:
    return new_person(email, NOW)


def caller_of(user: User) -> Caller:
    return Caller(
        user_id=user.id, email=user.email, credential=ActorKind.SESSION, credential_id=uuid4()
    )


def scene_over(backend: tuple[str, str], connection: AsyncConnection) -> Scene:
    return Scene(offline_state(settings_for(backend[1]), Database.bound_to(connection)))
