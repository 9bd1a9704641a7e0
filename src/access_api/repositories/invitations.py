"""Invitations, their offered grants and roles, found by tenant, id, or token digest."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.access import Role
from access_api.domain.errors import InvitationExists
from access_api.domain.invitations import Invitation, InvitationStatus, Invited, Inviter, Offer
from access_api.domain.users import email_key
from access_api.ids import new_id
from access_api.repositories.bulk import insert_rows, many, unnested, update_rows
from access_api.repositories.dialect import is_postgresql
from access_api.repositories.orm import (
    invitation_grant_roles,
    invitation_grants,
    invitations,
    roles,
    tenants,
    users,
)
from access_api.repositories.pagination import After, Page, SortKey, fetch_page
from access_api.repositories.tenants import escape_like

INVITATION_SORTS: dict[str, SortKey] = {
    "created_at": SortKey(invitations.c.created_at),
    "email": SortKey(invitations.c.email_key),
    "expires_at": SortKey(invitations.c.expires_at),
}

# A constant in the SQL, not a bound parameter: the partial index on pending invitations is
# usable only by a query that says status = 'pending' itself. With a parameter, PostgreSQL's
# generic plan (a prepared statement's sixth run on) cannot prove the index applies and reads
# the tenant's invitations through another index instead: a bulk invitation's look for the
# pending ones went from 0.1 ms to 24 ms as the tenant's invitations grew to 5,000. (SQLite
# plans again with the value bound; the constant costs it nothing.)
_PENDING = invitations.c.status == sa.literal_column(f"'{InvitationStatus.PENDING.value}'")
# The partial index's own predicate, spelled as in orm.py (an ON CONFLICT target must match it).
_PENDING_INDEX = sa.text("status = 'pending'")
_INVITER = users.alias("inviter")  # built once: an alias copies its table's columns


def open_for_statement(
    tenant_id: UUID, keys: Iterable[str], *, postgres: bool
) -> tuple[sa.Select[Any], dict[str, Any]]:
    """The pending invitations made in a tenant for these email keys, locked; with the values
    to execute it with.

    On PostgreSQL the keys are one array, and each is looked up by itself (LATERAL): one probe
    of the partial index on (tenant, email key) a key, whatever the plan. As `email_key IN
    (...)`, a generic plan made while the table looked small (a prepared statement's sixth run
    on) probes by the tenant alone and filters every pending invitation there by email: 2 ms
    at 1,200 of them, growing with each. SQLite plans again with the values bound. The
    PostgreSQL statement is built once (building it, a lateral join, cost a bulk invitation
    more than the rest of its query's Python)."""
    if not postgres:
        statement = (
            sa.select(invitations)
            .where(
                invitations.c.tenant_id == tenant_id,
                invitations.c.email_key.in_(keys),
                _PENDING,
            )
            .with_for_update()
        )
        return statement, {}
    return _OPEN_FOR_POSTGRES, {"tenant_id": tenant_id, "keys": list(keys)}


_TENANT_ID_TYPE = invitations.c.tenant_id.type


def _open_for_postgres() -> sa.Select[Any]:
    wanted = (
        sa.func.unnest(sa.bindparam("keys", type_=postgresql.ARRAY(sa.String)))
        .table_valued("email_key")
        .render_derived(name="wanted")
    )
    found = (
        sa.select(invitations)
        .where(
            invitations.c.tenant_id == sa.bindparam("tenant_id", type_=_TENANT_ID_TYPE),
            invitations.c.email_key == wanted.c.email_key,
            _PENDING,
        )
        .with_for_update()
        .lateral("found")
    )
    return sa.select(*found.c).select_from(wanted.join(found, sa.true()))


_OPEN_FOR_POSTGRES = _open_for_postgres()


def _invitation(row: Row[Any] | Any, offers: Sequence[Offer]) -> Invitation:
    return Invitation(
        id=row.id,
        root_id=row.root_id,
        tenant_id=row.tenant_id,
        email=row.email,
        status=InvitationStatus(row.status),
        invited_by=row.invited_by,
        expires_in_days=row.expires_in_days,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        accepted_at=row.accepted_at,
        accepted_user_id=row.accepted_user_id,
        revoked_at=row.revoked_at,
        sent_count=row.sent_count,
        last_sent_at=row.last_sent_at,
        offers=tuple(offers),
    )


class InvitationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- reading -------------------------------------------------------------------------

    async def _offers(self, invitation_ids: Iterable[UUID]) -> dict[UUID, list[Offer]]:
        ids = list(set(invitation_ids))
        found: dict[UUID, list[Offer]] = {i: [] for i in ids}
        if not ids:
            return found
        rows = await self.session.execute(
            sa.select(
                invitation_grants.c.invitation_id,
                invitation_grants.c.tenant_id,
                invitation_grants.c.include_descendants,
                invitation_grants.c.expires_at,
                roles.c.key,
            )
            .join(
                invitation_grant_roles, invitation_grant_roles.c.grant_id == invitation_grants.c.id
            )
            .join(roles, roles.c.id == invitation_grant_roles.c.role_id)
            .where(invitation_grants.c.invitation_id.in_(ids))
        )
        keys: dict[tuple[UUID, UUID], set[str]] = defaultdict(set)
        include: dict[tuple[UUID, UUID], bool] = {}
        ends: dict[tuple[UUID, UUID], datetime | None] = {}
        for row in rows:
            pair = (row.invitation_id, row.tenant_id)
            keys[pair].add(row.key)
            include[pair] = row.include_descendants
            ends[pair] = row.expires_at
        for (invitation_id, tenant_id), role_keys in sorted(
            keys.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))
        ):
            found[invitation_id].append(
                Offer(
                    tenant_id=tenant_id,
                    roles=frozenset(role_keys),
                    include_descendants=include[(invitation_id, tenant_id)],
                    expires_at=ends[(invitation_id, tenant_id)],
                )
            )
        return found

    async def _build(self, rows: Sequence[Row[Any]]) -> list[Invitation]:
        offers = await self._offers(row.id for row in rows)
        return [_invitation(row, offers[row.id]) for row in rows]

    async def made_in(
        self, tenant_id: UUID, ids: Iterable[UUID], *, for_update: bool = False
    ) -> dict[UUID, Invitation]:
        """Those of ids that were made in this tenant: elsewhere they do not exist (seed 001)."""
        wanted = set(ids)
        if not wanted:
            return {}
        statement = sa.select(invitations).where(
            invitations.c.tenant_id == tenant_id, invitations.c.id.in_(wanted)
        )
        if for_update:
            statement = statement.with_for_update()
        rows = (await self.session.execute(statement)).all()
        return {invitation.id: invitation for invitation in await self._build(rows)}

    async def open_for(self, tenant_id: UUID, emails: Iterable[str]) -> dict[str, Invitation]:
        """Stored-pending invitations made in this tenant for these emails, by email key."""
        keys = {email_key(email) for email in emails}
        if not keys:
            return {}
        statement, values = open_for_statement(
            tenant_id, keys, postgres=is_postgresql(self.session)
        )
        rows = (await self.session.execute(statement, values)).all()
        return {invitation.email_key: invitation for invitation in await self._build(rows)}

    async def by_digest(self, token_digest: str) -> Invited | None:
        """The invitation a link leads to, with the inviting (live) tenant and the inviter."""
        inviter = _INVITER
        row = (
            await self.session.execute(
                sa.select(
                    invitations,
                    tenants.c.name.label("tenant_name"),
                    inviter.c.first_name.label("inviter_first_name"),
                    inviter.c.last_name.label("inviter_last_name"),
                    inviter.c.email.label("inviter_email"),
                )
                .join(tenants, tenants.c.id == invitations.c.tenant_id)
                .outerjoin(inviter, inviter.c.id == invitations.c.invited_by)
                .where(invitations.c.token_hash == token_digest, tenants.c.deleted_at.is_(None))
            )
        ).first()
        if row is None:
            return None
        (invitation,) = await self._build([row])
        return Invited(
            invitation=invitation,
            tenant_name=row.tenant_name,
            inviter=Inviter(
                first_name=row.inviter_first_name,
                last_name=row.inviter_last_name,
                email=row.inviter_email,
            )
            if row.inviter_email is not None
            else None,
        )

    async def list_made_in(
        self,
        tenant_id: UUID,
        *,
        status: InvitationStatus | None,
        q: str | None,
        now: datetime,
        sort: str,
        descending: bool,
        after: After | None,
        limit: int,
    ) -> Page[Invitation]:
        statement = sa.select(invitations).where(invitations.c.tenant_id == tenant_id)
        if status is InvitationStatus.PENDING:
            statement = statement.where(_PENDING, invitations.c.expires_at > now)
        elif status is InvitationStatus.EXPIRED:
            # Shown expired: closed as such, or pending past its expiry (no job marks those).
            statement = statement.where(
                sa.or_(
                    invitations.c.status == InvitationStatus.EXPIRED.value,
                    sa.and_(_PENDING, invitations.c.expires_at <= now),
                )
            )
        elif status is not None:
            statement = statement.where(invitations.c.status == status.value)
        if q:
            pattern = f"%{escape_like(email_key(q))}%"
            statement = statement.where(invitations.c.email_key.like(pattern, escape="\\"))
        page = await fetch_page(
            self.session,
            statement,
            key=INVITATION_SORTS[sort],
            id_column=invitations.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=lambda row: row,
        )
        return Page(await self._build(page.items), page.next_after)

    async def user_ids_by_email(self, emails: Iterable[str]) -> dict[str, UUID]:
        """Accounts that exist for these emails, anywhere in the deployment, by email key."""
        keys = {email_key(email) for email in emails}
        if not keys:
            return {}
        rows = await self.session.execute(
            sa.select(users.c.email_key, users.c.id).where(users.c.email_key.in_(keys))
        )
        return {row.email_key: row.id for row in rows}

    # --- writing -------------------------------------------------------------------------

    async def insert(
        self,
        created: Sequence[tuple[Invitation, str]],
        roles_by_key: Mapping[str, Role],
    ) -> None:
        """Insert invitations with their token digests and offers. The partial unique index on
        pending (tenant, email) decides races: a second pending invitation is refused."""
        if not created:
            return
        rows = [_values(inv) | {"token_hash": digest} for inv, digest in created]
        if is_postgresql(self.session):
            found = await self.session.execute(_insert_pending(tuple(rows[0])), many(rows))
        else:
            found = await self.session.execute(_INSERT_PENDING_SQLITE, rows)
        inserted = set(found.scalars())
        lost = [inv.email for inv, _ in created if inv.email_key not in inserted]
        if lost:
            raise InvitationExists(
                f"a pending invitation for {', '.join(lost)} was just made here; resend it instead"
            )
        await self._insert_offers([inv for inv, _ in created], roles_by_key)

    async def _insert_offers(
        self, created: Sequence[Invitation], roles_by_key: Mapping[str, Role]
    ) -> None:
        grant_rows: list[dict[str, Any]] = []
        role_rows: list[dict[str, Any]] = []
        for invitation in created:
            for offer in invitation.offers:
                grant_id = new_id()
                grant_rows.append(
                    {
                        "id": grant_id,
                        "invitation_id": invitation.id,
                        "tenant_id": offer.tenant_id,
                        "include_descendants": offer.include_descendants,
                        "expires_at": offer.expires_at,
                    }
                )
                role_rows += [
                    {"grant_id": grant_id, "role_id": roles_by_key[key].id}
                    for key in sorted(offer.roles)
                ]
        await insert_rows(self.session, invitation_grants, grant_rows)
        await insert_rows(self.session, invitation_grant_roles, role_rows)

    async def replace_offers(
        self, invitation: Invitation, roles_by_key: Mapping[str, Role]
    ) -> None:
        await self.session.execute(
            sa.delete(invitation_grants).where(invitation_grants.c.invitation_id == invitation.id)
        )
        await self._insert_offers([invitation], roles_by_key)
        await self.session.execute(
            sa.update(invitations)
            .where(invitations.c.id == invitation.id)
            .values(updated_at=invitation.updated_at)
        )

    async def close_expired(self, ids: Iterable[UUID], now: datetime) -> None:
        """Pending invitations past their expiry become expired, their links cleared."""
        wanted = list(ids)
        if wanted:
            await self.session.execute(
                sa.update(invitations)
                .where(invitations.c.id.in_(wanted), _PENDING)
                .values(status=InvitationStatus.EXPIRED.value, token_hash=None, updated_at=now)
            )

    async def resend(self, resent: Sequence[tuple[Invitation, str]]) -> None:
        """New links replace the old ones, which die with their digests: one statement."""
        await update_rows(
            self.session,
            invitations,
            [
                {
                    "id": invitation.id,
                    "status": invitation.status.value,
                    "token_hash": digest,
                    "expires_at": invitation.expires_at,
                    "updated_at": invitation.updated_at,
                    "sent_count": invitation.sent_count,
                    "last_sent_at": invitation.last_sent_at,
                }
                for invitation, digest in resent
            ],
        )

    async def revoke(self, revoked: Sequence[Invitation]) -> None:
        """Revoked invitations lose their links: one statement."""
        if revoked:
            await self.session.execute(
                sa.update(invitations)
                .where(invitations.c.id == sa.bindparam("invitation_id"))
                .values(
                    status=InvitationStatus.REVOKED.value,
                    token_hash=None,
                    revoked_at=sa.bindparam("revoked_at"),
                    updated_at=sa.bindparam("updated_at"),
                ),
                [
                    {
                        "invitation_id": invitation.id,
                        "revoked_at": invitation.revoked_at,
                        "updated_at": invitation.updated_at,
                    }
                    for invitation in revoked
                ],
            )

    async def claim(self, invitation_id: UUID, token_digest: str, now: datetime) -> bool:
        """Accept once: of any number of concurrent acceptances of one link, the row count of
        this conditional update lets exactly one through; the link dies with it."""
        result = await self.session.execute(
            sa.update(invitations)
            .where(
                invitations.c.id == invitation_id,
                _PENDING,
                invitations.c.token_hash == token_digest,
                invitations.c.expires_at > now,
            )
            .values(
                status=InvitationStatus.ACCEPTED.value,
                token_hash=None,
                accepted_at=now,
                updated_at=now,
            )
            .returning(invitations.c.id)
        )
        return result.first() is not None

    async def set_accepted_user(self, invitation_id: UUID, user_id: UUID) -> None:
        await self.session.execute(
            sa.update(invitations)
            .where(invitations.c.id == invitation_id)
            .values(accepted_user_id=user_id)
        )


@functools.cache
def _insert_pending(names: tuple[str, ...]) -> sa.Insert:
    """New invitations, one array per column (bulk.unnested); one the partial unique index on
    pending (tenant, email) refuses is skipped, and missing from the emails returned."""
    return (
        postgresql.insert(invitations)
        .from_select(list(names), unnested(invitations, names))
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "email_key"], index_where=_PENDING_INDEX
        )
        .returning(invitations.c.email_key)
    )


# SQLite: the rows as a list of parameters (SQLAlchemy's insertmanyvalues, bulk.insert_rows).
_INSERT_PENDING_SQLITE = (
    sqlite.insert(invitations)
    .on_conflict_do_nothing(index_elements=["tenant_id", "email_key"], index_where=_PENDING_INDEX)
    .returning(invitations.c.email_key)
)


def _values(invitation: Invitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "root_id": invitation.root_id,
        "tenant_id": invitation.tenant_id,
        "email": invitation.email,
        "email_key": invitation.email_key,
        "status": invitation.status.value,
        "invited_by": invitation.invited_by,
        "expires_in_days": invitation.expires_in_days,
        "created_at": invitation.created_at,
        "updated_at": invitation.updated_at,
        "expires_at": invitation.expires_at,
        "accepted_at": invitation.accepted_at,
        "accepted_user_id": invitation.accepted_user_id,
        "revoked_at": invitation.revoked_at,
        "sent_count": invitation.sent_count,
        "last_sent_at": invitation.last_sent_at,
    }
