"""The caller's own view: their credential, their person, where their reach starts, and the
tenants they reach, page by page.

`GET /v1/me` is one statement whatever the credential: the credential by its digest, its user,
their live grants with their tenants and roles, the number of tenants they reach and of their
unused recovery codes. Its cost does not grow with the tree: the tenants themselves are paged
(`reachable_page`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.access import Grant, Reach
from access_api.domain.api_keys import ApiKey
from access_api.domain.auth import Session
from access_api.domain.users import User
from access_api.repositories.api_keys import KEY_KEYS, key_user_is_member, to_api_key
from access_api.repositories.auth import session_columns, session_of
from access_api.repositories.fast import FastRead, Made
from access_api.repositories.orm import (
    api_keys,
    authorization_roles,
    authorizations,
    recovery_codes,
    roles,
    sessions,
    tenant_closure,
    tenants,
    users,
)
from access_api.repositories.pagination import After, Page, SortKey, fetch_page
from access_api.repositories.tenants import matching, to_tenant
from access_api.repositories.users import USER_KEYS, to_user

_USER_COLUMNS = tuple(users.c[key] for key in USER_KEYS)
_NOW: sa.BindParameter[datetime] = sa.bindparam("now", type_=authorizations.c.expires_at.type)


@dataclass(frozen=True, slots=True, kw_only=True)
class Myself:
    """What one statement finds for a credential (key or session: whichever was used)."""

    user: User
    reach: tuple[Reach, ...]
    tenants_reached: int
    recovery_codes_left: int
    key: ApiKey | None = None
    member: bool = False
    session: Session | None = None


def _codes_left(user_id: Any) -> sa.ScalarSelect[Any]:
    return (
        sa.select(sa.func.count())
        .select_from(recovery_codes)
        .where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
        .scalar_subquery()
    )


_GRANT = authorizations.alias("reach_grant")
_CLOSURE = tenant_closure.alias("reach_closure")
_TENANT = tenants.alias("reach_tenant")


def _reached(user_id: Any, root_id: Any | None) -> sa.Select[Any]:
    """The live tenants a user's live grants reach (in one tree, for a tree-bound credential):
    the tenant of each grant, and every tenant below an inheritable one."""
    statement = (
        sa.select(_TENANT.c.id, _TENANT.c.name)
        .select_from(
            _GRANT.join(
                _CLOSURE,
                sa.and_(
                    _CLOSURE.c.ancestor_id == _GRANT.c.tenant_id,
                    sa.or_(_CLOSURE.c.depth == 0, _GRANT.c.include_descendants),
                ),
            ).join(_TENANT, _TENANT.c.id == _CLOSURE.c.descendant_id)
        )
        .where(
            _GRANT.c.user_id == user_id,
            sa.or_(_GRANT.c.expires_at.is_(None), _GRANT.c.expires_at > _NOW),
            _TENANT.c.deleted_at.is_(None),
        )
    )
    if root_id is not None:
        statement = statement.where(_GRANT.c.root_id == root_id)
    return statement


def _within(limit: frozenset[UUID]) -> sa.ColumnElement[bool]:
    """At or below one of the tenants a scoped credential is limited to."""
    closure = tenant_closure.alias("limit_closure")
    return sa.exists().where(
        closure.c.descendant_id == _TENANT.c.id, closure.c.ancestor_id.in_(sorted(limit))
    )


def _uncovered(user_id: Any, root_id: Any | None, *columns: Any) -> sa.Select[Any]:
    """The user's live grants on live tenants (in one tree, for a tree-bound credential) that
    no other live grant reaching below it covers, as `columns`; `_REACHED` is how many live
    tenants each one reaches (its tenant, and with its descendants the live tenants below it,
    `tenants.live_descendants`). Grants held apart reach apart (one grant per tenant), so
    summing `_REACHED` counts each tenant once, reading as many rows as the user has grants,
    whatever the size of the tree."""
    covering = authorizations.alias("covering_grant")
    covering_tenant = tenants.alias("covering_tenant")
    between = tenant_closure.alias("covering_closure")
    covered = sa.exists().where(
        covering.c.user_id == _GRANT.c.user_id,
        covering.c.include_descendants,
        sa.or_(covering.c.expires_at.is_(None), covering.c.expires_at > _NOW),
        between.c.ancestor_id == covering.c.tenant_id,
        between.c.descendant_id == _GRANT.c.tenant_id,
        between.c.depth > 0,
        covering_tenant.c.id == covering.c.tenant_id,
        covering_tenant.c.deleted_at.is_(None),
    )
    statement = (
        sa.select(*columns)
        .select_from(_GRANT.join(_TENANT, _TENANT.c.id == _GRANT.c.tenant_id))
        .where(
            _GRANT.c.user_id == user_id,
            sa.or_(_GRANT.c.expires_at.is_(None), _GRANT.c.expires_at > _NOW),
            _TENANT.c.deleted_at.is_(None),
            ~covered,
        )
    )
    if root_id is not None:
        statement = statement.where(_GRANT.c.root_id == root_id)
    return statement


_REACHED = sa.case(
    (_GRANT.c.include_descendants, _TENANT.c.live_descendants + 1), else_=sa.literal(1)
)


def _count_reached(user_id: Any, root_id: Any | None) -> sa.ScalarSelect[Any]:
    """How many live tenants a user's live grants reach (in one tree, for a tree-bound
    credential), read from the grants alone (`_uncovered`)."""
    return _uncovered(
        user_id, root_id, sa.func.coalesce(sa.func.sum(_REACHED), 0)
    ).scalar_subquery()


_ROOT = tenants.alias("reach_root")


def _extent(user_id: Any, root_id: Any | None) -> sa.Select[Any]:
    """For each tree a user's live grants are in: how many live tenants they reach there, and
    how many live tenants the tree has (its root and those below it). As `_count_reached`,
    from the grants alone."""
    return (
        _uncovered(
            user_id,
            root_id,
            _GRANT.c.root_id,
            sa.func.sum(_REACHED).label("reached"),
            (sa.func.max(_ROOT.c.live_descendants) + 1).label("size"),
        )
        .join(_ROOT, _ROOT.c.id == _GRANT.c.root_id)
        .group_by(_GRANT.c.root_id)
    )


def _walked(user_id: Any, root_id: Any | None, tree: Any) -> sa.Select[Any]:
    """The live tenants of one tree that a user's live grants reach (as `_reached`), found by
    walking the tree's tenants in name order (ix_tenants_root_id_name_id) and keeping those a
    grant reaches: a page reads its own rows and the unreached ones between them, not every
    tenant reached."""
    reaches = (
        sa.select(sa.literal(1))
        .select_from(_GRANT.join(_CLOSURE, _CLOSURE.c.ancestor_id == _GRANT.c.tenant_id))
        .where(
            _CLOSURE.c.descendant_id == _TENANT.c.id,
            sa.or_(_CLOSURE.c.depth == 0, _GRANT.c.include_descendants),
            _GRANT.c.user_id == user_id,
            sa.or_(_GRANT.c.expires_at.is_(None), _GRANT.c.expires_at > _NOW),
        )
        # OFFSET keeps PostgreSQL from turning the test into a join over every tenant the
        # grants reach (which it would then sort): it stays a test of each walked row.
        .offset(0)
    )
    if root_id is not None:
        reaches = reaches.where(_GRANT.c.root_id == root_id)
    return sa.select(_TENANT.c.id, _TENANT.c.name).where(
        _TENANT.c.root_id == tree, _TENANT.c.deleted_at.is_(None), reaches.exists()
    )


# How many rows of a tree a walk may read for each row a page shows, before reading every
# tenant reached (and sorting them) costs less. A walked row costs its reach test as well
# (a closure row or three, each a grant probe): about three of a reached row, measured.
_WALK_COST = 3


def tree_to_walk(trees: Sequence[tuple[UUID, int, int]], page: int) -> UUID | None:
    """The tree to walk in name order for a page of `page` tenants, given (root, tenants
    reached in it, tenants in it) for each tree the user reaches into; None to read every
    tenant reached instead. A walk reads about page x size / reached rows of the tree (the
    reached ones are spread through it); reading every tenant reached reads `reached` rows.
    One tree only: a walk follows one tree's index."""
    if len(trees) != 1:
        return None
    root, reached, size = trees[0]
    return root if reached * reached >= _WALK_COST * page * size else None


_USER = sa.bindparam("user_id", type_=authorizations.c.user_id.type)
_IN_TREE = sa.bindparam("root_id", type_=authorizations.c.root_id.type)
_TREE = sa.bindparam("tree", type_=tenants.c.root_id.type)
# Built once, for any credential (False) and for a tree-bound one (True): building them
# costs more Python than running them.
_EXTENT = {False: _extent(_USER, None), True: _extent(_USER, _IN_TREE)}
_WALKED = {False: _walked(_USER, None, _TREE), True: _walked(_USER, _IN_TREE, _TREE)}
_READ_WHOLE = {
    False: _reached(_USER, None).distinct(),
    True: _reached(_USER, _IN_TREE).distinct(),
}


def _grant_rows() -> sa.Subquery:
    """Every live grant with its tenant and one row per role (joined to the credential)."""
    grant = authorizations.alias("my_grant")
    tenant = tenants.alias("my_grant_tenant")
    return (
        sa.select(
            grant.c.id.label("grant_id"),
            grant.c.user_id.label("grant_user_id"),
            grant.c.root_id.label("grant_root_id"),
            grant.c.tenant_id.label("grant_tenant_id"),
            grant.c.include_descendants.label("grant_include_descendants"),
            grant.c.expires_at.label("grant_expires_at"),
            roles.c.key.label("grant_role"),
            *(column.label(f"gt_{column.key}") for column in tenant.c),
        )
        .select_from(
            grant.join(tenant, tenant.c.id == grant.c.tenant_id)
            .join(authorization_roles, authorization_roles.c.authorization_id == grant.c.id)
            .join(roles, roles.c.id == authorization_roles.c.role_id)
        )
        .where(
            tenant.c.deleted_at.is_(None),
            sa.or_(grant.c.expires_at.is_(None), grant.c.expires_at > _NOW),
        )
        .subquery("my_grants")
    )


def _by_api_key() -> sa.Select[Any]:
    key_columns = [api_keys.c[key].label(f"key_{key}") for key in KEY_KEYS]
    member = key_user_is_member().label("member")
    credential = (
        sa.select(
            *key_columns,
            *_USER_COLUMNS,
            member,
            _codes_left(users.c.id).label("codes_left"),
            _count_reached(users.c.id, api_keys.c.root_id).label("tenants_reached"),
        )
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.secret_hash == sa.bindparam("digest"))
        .cte("credential")
        .prefix_with("MATERIALIZED")  # its counts are computed once, not once per grant row
    )
    return _with_grants(
        credential, lambda grants: grants.c.grant_root_id == credential.c.key_root_id
    )


def _by_session() -> sa.Select[Any]:
    credential = (
        sa.select(
            *session_columns("session_"),
            *_USER_COLUMNS,
            _codes_left(users.c.id).label("codes_left"),
            _count_reached(users.c.id, None).label("tenants_reached"),
        )
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.token_hash == sa.bindparam("digest"))
        .cte("credential")
        .prefix_with("MATERIALIZED")
    )
    return _with_grants(credential, lambda _: sa.true())


def _with_grants(
    credential: sa.CTE, in_tree: Callable[[sa.Subquery], sa.ColumnElement[bool]]
) -> sa.Select[Any]:
    """The credential's row joined to its user's live grants, one row per grant and role
    (one row with no grant when there is none); in_tree: which grants the credential uses."""
    grants = _grant_rows()
    return (
        sa.select(credential, grants)
        .select_from(
            credential.outerjoin(
                grants, sa.and_(grants.c.grant_user_id == credential.c.id, in_tree(grants))
            )
        )
        .order_by(grants.c.gt_name, grants.c.grant_tenant_id)
    )


# Built once: GET /v1/me runs one of these on every call.
_BY_API_KEY = FastRead(_by_api_key())
_BY_SESSION = FastRead(_by_session())


# Each field of a key and of a grant's tenant, by the label the statement gives its column.
_KEY_LABELS = tuple((key, f"key_{key}") for key in KEY_KEYS)
_TENANT_LABELS = tuple((column.key, f"gt_{column.key}") for column in tenants.c)


def _key_of(row: Row[Any]) -> ApiKey:
    mapping = row._mapping
    return to_api_key(SimpleNamespace(**{key: mapping[label] for key, label in _KEY_LABELS}))


def _reach_of(rows: Sequence[Row[Any]]) -> tuple[Reach, ...]:
    found: dict[UUID, tuple[Row[Any], set[str]]] = {}
    for row in rows:
        if row.grant_id is None:
            continue
        found.setdefault(row.grant_id, (row, set()))[1].add(row.grant_role)
    return tuple(
        Reach(
            grant=Grant(
                user_id=row.grant_user_id,
                tenant_id=row.grant_tenant_id,
                roles=frozenset(keys),
                include_descendants=bool(row.grant_include_descendants),
                expires_at=row.grant_expires_at,
            ),
            tenant=to_tenant(
                SimpleNamespace(**{key: row._mapping[label] for key, label in _TENANT_LABELS})
            ),
        )
        for row, keys in found.values()
    )


def _myself_of(credential: Callable[[Any], dict[str, Any]]) -> Made[Myself | None]:
    """What the rows of one of these statements make, remembered by the rows (fast.Made): a
    credential's next call reads the same rows while nothing about it changed."""

    def make(rows: Sequence[Row[Any]]) -> Myself | None:
        if not rows:
            return None
        first = rows[0]
        return Myself(
            user=to_user(first),
            reach=_reach_of(rows),
            tenants_reached=int(first.tenants_reached),
            recovery_codes_left=int(first.codes_left),
            **credential(first),
        )

    return Made(make)


_MYSELF_BY_KEY = _myself_of(lambda first: {"key": _key_of(first), "member": first.member})
_MYSELF_BY_SESSION = _myself_of(lambda first: {"session": session_of(first, "session_", first.id)})


class MeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_api_key(self, digest: str, now: datetime) -> Myself | None:
        return await _BY_API_KEY.made(self.session, {"digest": digest, "now": now}, _MYSELF_BY_KEY)

    async def by_session(self, digest: str, now: datetime) -> Myself | None:
        return await _BY_SESSION.made(
            self.session, {"digest": digest, "now": now}, _MYSELF_BY_SESSION
        )

    async def reachable_page(
        self,
        user_id: UUID,
        root_id: UUID | None,
        *,
        limit_to: frozenset[UUID] | None,
        q: str | None,
        now: datetime,
        after: After | None,
        limit: int,
    ) -> Page[UUID]:
        """The ids of the tenants a user reaches, by name, one keyset page at a time. Where
        they are most of a tree (an MSP's admin), by walking the tree in name order
        (`tree_to_walk`); otherwise by reading them all, then sorting."""
        parameters: dict[str, Any] = {"user_id": user_id, "now": now}
        in_tree = root_id is not None
        if in_tree:
            parameters["root_id"] = root_id
        tree = None
        if limit_to is None:  # a scoped key's reach is cut further: none of these counts
            trees = await self.session.execute(_EXTENT[in_tree], parameters)
            found = [(row.root_id, int(row.reached), int(row.size)) for row in trees]
            tree = tree_to_walk(found, limit + 1)
        if tree is not None:
            statement = _WALKED[in_tree]
            parameters["tree"] = tree
        else:
            statement = _READ_WHOLE[in_tree]
        if limit_to is not None:
            statement = statement.where(_within(limit_to))
        if q:
            statement = statement.where(matching(q, _TENANT))
        return await fetch_page(
            self.session,
            statement,
            key=SortKey(_TENANT.c.name),
            id_column=_TENANT.c.id,
            descending=False,
            after=after,
            limit=limit,
            build=lambda row: row.id,
            parameters=parameters,
        )
