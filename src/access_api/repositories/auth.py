"""Login sessions, found by the keyed digest of their bearer token."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.audit import AuditEvent
from access_api.domain.auth import Session
from access_api.domain.throttle import Bucket
from access_api.domain.users import User
from access_api.repositories.audit import AuditRepository, insert_one
from access_api.repositories.dialect import is_postgresql
from access_api.repositories.fast import FastRead, FastWrite
from access_api.repositories.orm import (
    passkeys,
    sessions,
    sso_connections,
    sso_domains,
    tenants,
    throttle_buckets,
    users,
)
from access_api.repositories.policies import timeout_cap
from access_api.repositories.users import to_user

_INSERT_SESSION = sa.insert(sessions).values(
    id=sa.bindparam("b_session_id", type_=sessions.c.id.type),
    user_id=sa.bindparam("b_user_id", type_=sessions.c.user_id.type),
    token_hash=sa.bindparam("b_token_hash", type_=sessions.c.token_hash.type),
    created_at=sa.bindparam("b_created_at", type_=sessions.c.created_at.type),
    last_seen_at=sa.bindparam("b_last_seen_at", type_=sessions.c.last_seen_at.type),
    ended_at=None,
    ip=sa.bindparam("b_ip", type_=sessions.c.ip.type),
    user_agent=sa.bindparam("b_user_agent", type_=sessions.c.user_agent.type),
)
_STAMP_LOGIN = (
    sa.update(users)
    .where(users.c.id == sa.bindparam("b_user_id", type_=users.c.id.type))
    .values(last_login_at=sa.bindparam("b_created_at", type_=users.c.last_login_at.type))
)
_INSERT_EVENT, _event_parameters = insert_one()
_OPEN_SESSION = FastWrite(
    _INSERT_SESSION.add_cte(
        sa.delete(throttle_buckets)
        # = ANY(array), not an expanding IN: the statement's text stays the same whatever the
        # number of keys, so it is never re-rendered per execution.
        .where(throttle_buckets.c.key == sa.any_(sa.bindparam("forget", type_=ARRAY(sa.String))))
        .cte("forgotten"),
        _STAMP_LOGIN.cte("stamped"),
        _INSERT_EVENT.cte("recorded"),
    )
)
"""Built once (only parameters change per login): PostgreSQL runs every part of a WITH
whether or not the main statement reads it."""


def session_columns(prefix: str) -> tuple[sa.ColumnElement[Any], ...]:
    """A session's columns in a statement that resolves it, labelled prefix + name, with the
    strictest session timeout where its user acts read beside it (`session_of` reads them)."""
    return (
        sessions.c.id.label(f"{prefix}id"),
        sessions.c.created_at.label(f"{prefix}created_at"),
        sessions.c.last_seen_at.label(f"{prefix}last_seen_at"),
        sessions.c.ended_at.label(f"{prefix}ended_at"),
        timeout_cap(users.c.id).label(f"{prefix}timeout_cap_minutes"),
    )


def session_of(row: Any, prefix: str, user_id: UUID) -> Session:
    mapping = row._mapping
    return Session(
        id=mapping[f"{prefix}id"],
        user_id=user_id,
        created_at=mapping[f"{prefix}created_at"],
        last_seen_at=mapping[f"{prefix}last_seen_at"],
        ended_at=mapping[f"{prefix}ended_at"],
        timeout_cap_minutes=mapping[f"{prefix}timeout_cap_minutes"],
    )


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open(
        self,
        login: Session,
        token_digest: str,
        *,
        ip: str | None,
        user_agent: str | None,
        forget: Collection[str] = (),
        event: AuditEvent,
    ) -> None:
        """Start a session: insert it, stamp the user's last login, delete the throttle
        buckets in `forget` (a successful login forgets its failures) and record its audit
        event. One statement on PostgreSQL; SQLite has no data-modifying WITH, so one each
        there. The caller keeps the event (Work.record_events(..., written=True))."""
        values = {
            "b_session_id": login.id,
            "b_user_id": login.user_id,
            "b_token_hash": token_digest,
            "b_created_at": login.created_at,
            "b_last_seen_at": login.last_seen_at,
            "b_ip": ip,
            "b_user_agent": (user_agent or "")[:300] or None,
        }
        if is_postgresql(self.session):
            await _OPEN_SESSION.run(
                self.session, {**values, **_event_parameters(event), "forget": list(forget)}
            )
            return
        if forget:
            await self.session.execute(
                sa.delete(throttle_buckets).where(throttle_buckets.c.key.in_(set(forget)))
            )
        await self.session.execute(_INSERT_SESSION, values)
        await self.session.execute(_STAMP_LOGIN, values)
        await AuditRepository(self.session).record([event])

    async def resolve(self, token_digest: str) -> tuple[Session, User] | None:
        row = (
            await self.session.execute(
                sa.select(users, *session_columns("session_"))
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.token_hash == token_digest)
            )
        ).first()
        if row is None:
            return None
        return session_of(row, "session_", row.id), to_user(row)

    async def touch(self, session_id: UUID, now: datetime) -> None:
        await self.session.execute(
            sa.update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now)
        )

    async def end(self, session_id: UUID, now: datetime) -> None:
        await self.session.execute(
            sa.update(sessions)
            .where(sessions.c.id == session_id, sessions.c.ended_at.is_(None))
            .values(ended_at=now)
        )

    async def end_all(self, user_id: UUID, now: datetime, *, keep: UUID | None = None) -> None:
        statement = (
            sa.update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
            .values(ended_at=now)
        )
        if keep is not None:
            statement = statement.where(sessions.c.id != keep)
        await self.session.execute(statement)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginFacts:
    """What a login needs to know before and after checking the password, read at once."""

    buckets: dict[str, Bucket]
    """The throttle buckets that exist among the ones asked for, by key."""
    sso_enforced: bool
    """A live SSO connection claims the email's domain and enforces sign-in through it."""
    user: User | None
    password_hash: str | None
    has_passkeys: bool
    timeout_cap_minutes: int | None


_BUCKET_FIELDS = ("failures", "window_started_at", "locked_until", "lockouts", "last_failure_at")


def _login_facts_statement() -> sa.Select[Any]:
    """One row whether or not the email exists: a one-row anchor, the user joined to it, two
    throttle buckets joined by key, the rest as scalar subqueries. Built once; only its
    parameters change per login."""
    anchor = sa.select(sa.literal(1).label("one")).subquery("anchor")
    account = throttle_buckets.alias("account")
    address = throttle_buckets.alias("address")
    enforced = (
        sa.select(sso_connections.c.enforce)
        .select_from(
            sso_domains.join(
                sso_connections, sso_connections.c.id == sso_domains.c.connection_id
            ).join(tenants, tenants.c.id == sso_connections.c.tenant_id)
        )
        .where(sso_domains.c.domain == sa.bindparam("domain"), tenants.c.deleted_at.is_(None))
        .scalar_subquery()
    )
    has_passkeys = sa.exists().where(passkeys.c.user_id == users.c.id)
    return sa.select(
        users,
        *(account.c[name].label(f"account_{name}") for name in _BUCKET_FIELDS),
        *(address.c[name].label(f"address_{name}") for name in _BUCKET_FIELDS),
        enforced.label("sso_enforced"),
        has_passkeys.label("has_passkeys"),
        timeout_cap(users.c.id).label("timeout_cap_minutes"),
    ).select_from(
        anchor.outerjoin(users, users.c.email_key == sa.bindparam("email_key"))
        .outerjoin(account, account.c.key == sa.bindparam("account_key"))
        .outerjoin(address, address.c.key == sa.bindparam("address_key"))
    )


# On asyncpg directly where the session allows (repositories/fast.py): every login runs it.
_LOGIN_FACTS = FastRead(_login_facts_statement())


def _bucket(row: Any, prefix: str) -> Bucket | None:
    if getattr(row, f"{prefix}_failures") is None:
        return None
    return Bucket(**{name: getattr(row, f"{prefix}_{name}") for name in _BUCKET_FIELDS})


class LoginRepository:
    """A login's reads in one statement: the throttle buckets of the account and the address,
    the SSO claim on the email's domain, the user with their password hash, whether they have
    passkeys and the session timeout their policies cap."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def facts(
        self, *, email_key: str, domain: str, account_key: str, address_key: str
    ) -> LoginFacts:
        (row,) = await _LOGIN_FACTS.rows(
            self.session,
            {
                "email_key": email_key,
                "domain": domain,
                "account_key": account_key,
                "address_key": address_key,
            },
        )
        buckets = {
            key: bucket
            for key, bucket in (
                (account_key, _bucket(row, "account")),
                (address_key, _bucket(row, "address")),
            )
            if bucket is not None
        }
        found = row.id is not None
        return LoginFacts(
            buckets=buckets,
            sso_enforced=bool(row.sso_enforced),
            user=to_user(row) if found else None,
            password_hash=row.password_hash if found else None,
            has_passkeys=bool(row.has_passkeys) if found else False,
            timeout_cap_minutes=row.timeout_cap_minutes if found else None,
        )
