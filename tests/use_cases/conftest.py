"""Use cases without HTTP: a Work over a session of the test's connection, and a tree to act in.

The same migrated databases as the HTTP tests (SQLite and PostgreSQL), the same rolled-back
outer transaction per test; no app, no router, no request.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from access_api.bootstrap import bootstrap
from access_api.db import Database
from access_api.domain.access import Caller, Scope
from access_api.domain.audit import SYSTEM, ActorKind
from access_api.domain.invitations import Offer
from access_api.domain.tenants import Tenant
from access_api.domain.users import User
from access_api.ids import new_id
from access_api.pagination import Cursors
from access_api.services.clock import FrozenClock
from access_api.services.keyring import Keyring
from access_api.services.mailer import Dispatcher
from access_api.services.passwords import Passwords
from access_api.services.webhooks import webhook_dispatcher
from access_api.state import AppState
from access_api.use_cases import Work, members
from tests.conftest import settings_for
from tests.people import new_person
from tests.use_cases.scene import Scene, scene_over

PASSWORD = "correct horse battery staple"
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
async def state(backend: tuple[str, str], connection: AsyncConnection) -> AsyncIterator[AppState]:
    settings = settings_for(backend[1])
    database = Database.bound_to(connection)
    keyring = Keyring(settings.secret)
    clock = FrozenClock(START)
    dispatcher = Dispatcher(database=database, keyring=keyring, clock=clock, settings=settings)
    yield AppState(
        settings=settings,
        database=database,
        keyring=keyring,
        passwords=Passwords(),
        clock=clock,
        cursors=Cursors(keyring),
        dispatcher=dispatcher,
        webhooks=webhook_dispatcher(dispatcher, database, keyring, clock, settings),
    )
    await dispatcher.close()


@pytest.fixture
async def session(state: AppState) -> AsyncIterator[AsyncSession]:
    async with state.database.session() as session:
        yield session


@dataclass
class Tree:
    """An MSP root, its first admin, and a way to add members and act as any of them."""

    state: AppState
    session: AsyncSession
    root: Tenant
    admin: User

    def work(self, later: timedelta = timedelta()) -> Work:
        return Work.over(self.session, self.state, START + later)

    async def scope(self, user: User, work: Work, tenant: Tenant | None = None) -> Scope:
        caller = Caller(
            user_id=user.id,
            email=user.email,
            credential=ActorKind.SESSION,
            credential_id=new_id(),
        )
        return await work.scope(caller, (tenant or self.root).id, None)

    async def member(self, *roles: str) -> User:
        """A member of the tree with these roles on the root (and below)."""
        work = self.work()
        user = new_person(f"user-{secrets.token_hex(4)}@example.com", START, last_name="Member")
        await members.join(
            work,
            SYSTEM,
            root_id=self.root.id,
            user=user,
            password_hash=await work.passwords.hash(PASSWORD),
            offers=[Offer(tenant_id=self.root.id, roles=frozenset(roles), include_descendants=True)]
            if roles
            else [],
            tenant=self.root,
        )
        return user


@pytest.fixture
async def tree(state: AppState, session: AsyncSession) -> Tree:
    prefix = f"msp-{secrets.token_hex(4)}"
    work = Work.over(session, state, START)
    made = await bootstrap(
        work,
        name="Northwind MSP",
        domain_prefix=prefix,
        admin_email=f"admin@{prefix}.example.com",
        admin_password=PASSWORD,
    )
    found = await work.users.by_email(made.admin_email)
    assert found is not None
    return Tree(state=state, session=session, root=made.tenant, admin=found[0])


@pytest.fixture
async def scene(backend: tuple[str, str], connection: AsyncConnection) -> Scene:
    return scene_over(backend, connection)
