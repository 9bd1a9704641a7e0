"""SSO connections, their domains, logins in flight and one-time codes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.sso import Connection, Jit, PendingLogin
from access_api.repositories.orm import (
    sso_codes,
    sso_connections,
    sso_domains,
    sso_logins,
    tenants,
)

# A domain claim with the account of its connection.
_LIVE_CLAIMS = sso_domains.join(
    sso_connections, sso_connections.c.id == sso_domains.c.connection_id
).join(tenants, tenants.c.id == sso_connections.c.tenant_id)


def _connection(row: Any, domains: Iterable[str]) -> Connection:
    return Connection(
        id=row.id,
        tenant_id=row.tenant_id,
        root_id=row.root_id,
        issuer=row.issuer,
        client_id=row.client_id,
        domains=frozenset(domains),
        jit=Jit(
            enabled=row.jit_enabled,
            roles=frozenset(row.jit_roles),
            include_descendants=row.jit_include_descendants,
        ),
        enforce=row.enforce,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SsoRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _domains(self, connection_id: UUID) -> list[str]:
        rows = await self.session.execute(
            sa.select(sso_domains.c.domain).where(sso_domains.c.connection_id == connection_id)
        )
        return list(rows.scalars())

    async def of_tenant(self, tenant_id: UUID) -> tuple[Connection, str] | None:
        """A tenant's connection and its sealed client secret."""
        row = (
            await self.session.execute(
                sa.select(sso_connections).where(sso_connections.c.tenant_id == tenant_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return _connection(row, await self._domains(row.id)), row.client_secret

    async def get(self, connection_id: UUID) -> tuple[Connection, str] | None:
        row = (
            await self.session.execute(
                sa.select(sso_connections).where(sso_connections.c.id == connection_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return _connection(row, await self._domains(row.id)), row.client_secret

    async def of_domain(self, domain: str) -> Connection | None:
        """The connection claiming an email domain, if its account is live."""
        connection_id = (
            await self.session.execute(
                sa.select(sso_domains.c.connection_id)
                .select_from(_LIVE_CLAIMS)
                .where(sso_domains.c.domain == domain, tenants.c.deleted_at.is_(None))
            )
        ).scalar_one_or_none()
        found = await self.get(connection_id) if connection_id is not None else None
        return found[0] if found else None

    async def nearest(self, chain: list[UUID]) -> Connection | None:
        """The connection of the first tenant of the chain (a tenant, then its ancestors)."""
        for tenant_id in chain:
            found = await self.of_tenant(tenant_id)
            if found is not None:
                return found[0]
        return None

    async def owners(self, domains: Iterable[str]) -> dict[str, UUID]:
        """Who claims each of these domains now; locked, so two claims cannot both win."""
        rows = await self.session.execute(
            sa.select(sso_domains.c.domain, sso_domains.c.connection_id, tenants.c.deleted_at)
            .select_from(_LIVE_CLAIMS)
            .where(sso_domains.c.domain.in_(list(domains)))
            .with_for_update(of=sso_domains)
        )
        # A deleted account's claims lapse with it: they are released to whoever claims next.
        owners = {}
        for row in rows:
            if row.deleted_at is None:
                owners[row.domain] = row.connection_id
            else:
                await self.session.execute(
                    sa.delete(sso_domains).where(sso_domains.c.domain == row.domain)
                )
        return owners

    async def save(self, connection: Connection, sealed_secret: str, *, new: bool) -> None:
        values = {
            "tenant_id": connection.tenant_id,
            "root_id": connection.root_id,
            "issuer": connection.issuer,
            "client_id": connection.client_id,
            "client_secret": sealed_secret,
            "jit_enabled": connection.jit.enabled,
            "jit_roles": sorted(connection.jit.roles),
            "jit_include_descendants": connection.jit.include_descendants,
            "enforce": connection.enforce,
            "updated_at": connection.updated_at,
        }
        if new:
            await self.session.execute(
                sa.insert(sso_connections).values(
                    id=connection.id, created_at=connection.created_at, **values
                )
            )
        else:
            await self.session.execute(
                sa.update(sso_connections)
                .where(sso_connections.c.id == connection.id)
                .values(**values)
            )
        await self.session.execute(
            sa.delete(sso_domains).where(sso_domains.c.connection_id == connection.id)
        )
        await self.session.execute(
            sa.insert(sso_domains),
            [{"domain": d, "connection_id": connection.id} for d in sorted(connection.domains)],
        )

    async def delete(self, connection_id: UUID) -> None:
        for table in (sso_domains, sso_logins, sso_codes):
            await self.session.execute(
                sa.delete(table).where(table.c.connection_id == connection_id)
            )
        await self.session.execute(
            sa.delete(sso_connections).where(sso_connections.c.id == connection_id)
        )

    async def begin_login(
        self, state_hash: str, login: PendingLogin, sealed_verifier: str, now: datetime
    ) -> None:
        # Logins that ran out are swept as new ones begin: the table stays small.
        await self.session.execute(sa.delete(sso_logins).where(sso_logins.c.expires_at < now))
        await self.session.execute(
            sa.insert(sso_logins).values(
                state_hash=state_hash,
                connection_id=login.connection_id,
                nonce=login.nonce,
                code_verifier=sealed_verifier,
                created_at=now,
                expires_at=login.expires_at,
            )
        )

    async def take_login(self, state_hash: str) -> tuple[PendingLogin, str] | None:
        """A login in flight, removed as it is read: a state is answered once."""
        row = (
            await self.session.execute(
                sa.delete(sso_logins)
                .where(sso_logins.c.state_hash == state_hash)
                .returning(sso_logins)
            )
        ).one_or_none()
        if row is None:
            return None
        login = PendingLogin(
            connection_id=row.connection_id,
            nonce=row.nonce,
            code_verifier="",
            expires_at=row.expires_at,
        )
        return login, row.code_verifier

    async def issue_code(
        self, code_hash: str, user_id: UUID, connection_id: UUID, now: datetime, until: datetime
    ) -> None:
        await self.session.execute(sa.delete(sso_codes).where(sso_codes.c.expires_at < now))
        await self.session.execute(
            sa.insert(sso_codes).values(
                code_hash=code_hash,
                user_id=user_id,
                connection_id=connection_id,
                created_at=now,
                expires_at=until,
            )
        )

    async def use_code(self, code_hash: str, now: datetime) -> tuple[UUID, UUID] | None:
        """The user and connection of a live code, which dies here (a conditional UPDATE: two
        exchanges of one code cannot both win)."""
        row = (
            await self.session.execute(
                sa.update(sso_codes)
                .where(
                    sso_codes.c.code_hash == code_hash,
                    sso_codes.c.used_at.is_(None),
                    sso_codes.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(sso_codes.c.user_id, sso_codes.c.connection_id)
            )
        ).one_or_none()
        return (row.user_id, row.connection_id) if row else None
