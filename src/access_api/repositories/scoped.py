"""A credential and its facts in one tenant, in one statement: the hot path of every call made
in a tenant's context (`/v1/tenants/{id}/…`).

The credential (by the digest of its secret) and its user make a CTE; the facts of the scope
(the tenant, its chain's status and policies, the caller's grants there with their roles) are
joined to it, the caller's id read from the CTE. No credential: no row; a credential but no
such tenant: one row whose facts are empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.access import ScopeFacts
from access_api.domain.api_keys import ApiKey
from access_api.domain.auth import Session
from access_api.domain.users import User
from access_api.repositories.api_keys import KEY_KEYS, key_user_is_member, to_api_key
from access_api.repositories.auth import session_columns, session_of
from access_api.repositories.fast import FastRead, Made
from access_api.repositories.grants import scope_facts_of, scope_facts_statement
from access_api.repositories.orm import api_keys, sessions, users
from access_api.repositories.users import USER_KEYS, to_user


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInTenant:
    key: ApiKey
    email: str
    member: bool
    facts: ScopeFacts


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInTenant:
    session: Session
    user: User
    facts: ScopeFacts


def _with_facts(credential: sa.CTE, user_id: sa.ColumnElement[Any]) -> sa.Select[Any]:
    caller = sa.select(user_id).scalar_subquery()
    facts = scope_facts_statement(caller).subquery("facts")
    return sa.select(credential, facts).select_from(credential.outerjoin(facts, sa.true()))


def _by_api_key() -> sa.Select[Any]:
    member = key_user_is_member().label("cred_member")
    credential = (
        sa.select(
            *(api_keys.c[key].label(f"cred_key_{key}") for key in KEY_KEYS),
            users.c.email.label("cred_email"),
            member,
        )
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.secret_hash == sa.bindparam("digest"))
        .cte("credential")
    )
    return _with_facts(credential, credential.c.cred_key_user_id)


def _by_session() -> sa.Select[Any]:
    credential = (
        sa.select(
            *session_columns("cred_session_"),
            *(users.c[key].label(f"cred_user_{key}") for key in USER_KEYS),
        )
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.token_hash == sa.bindparam("digest"))
        .cte("credential")
    )
    return _with_facts(credential, credential.c.cred_user_id)


def _prefixed(row: Row[Any], prefix: str, keys: tuple[str, ...]) -> SimpleNamespace:
    mapping = row._mapping
    return SimpleNamespace(**{key: mapping[f"{prefix}{key}"] for key in keys})


def _key_in_tenant(rows: Sequence[Row[Any]]) -> KeyInTenant | None:
    if not rows:
        return None
    key = to_api_key(_prefixed(rows[0], "cred_key_", KEY_KEYS))
    return KeyInTenant(
        key=key,
        email=rows[0].cred_email,
        member=bool(rows[0].cred_member),
        facts=scope_facts_of(key.user_id, rows),
    )


def _session_in_tenant(rows: Sequence[Row[Any]]) -> SessionInTenant | None:
    if not rows:
        return None
    first = rows[0]
    user = to_user(_prefixed(first, "cred_user_", USER_KEYS))
    return SessionInTenant(
        session=session_of(first, "cred_session_", user.id),
        user=user,
        facts=scope_facts_of(user.id, rows),
    )


# Built once: one of these runs on every call made in a tenant's context. What their rows make
# is remembered by the rows (fast.Made): a caller's next call in the same tenant reads the same
# rows, and turning them into a key, a session and the scope's facts again is most of what the
# decision costs in Python.
_BY_API_KEY = FastRead(_by_api_key())
_BY_SESSION = FastRead(_by_session())
_KEY_IN_TENANT = Made(_key_in_tenant)
_SESSION_IN_TENANT = Made(_session_in_tenant)


class ScopedRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_api_key(self, digest: str, tenant_id: Any, now: datetime) -> KeyInTenant | None:
        parameters = {"digest": digest, "tenant_id": tenant_id, "now": now}
        return await _BY_API_KEY.made(self.session, parameters, _KEY_IN_TENANT)

    async def by_session(
        self, digest: str, tenant_id: Any, now: datetime
    ) -> SessionInTenant | None:
        parameters = {"digest": digest, "tenant_id": tenant_id, "now": now}
        return await _BY_SESSION.made(self.session, parameters, _SESSION_IN_TENANT)
