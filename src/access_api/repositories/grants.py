"""Grants: who holds which roles on which tenant, and the facts every permission decision
is made from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.access import Caller, Grant, GrantChange, Held, Role, ScopeFacts
from access_api.domain.permissions import ADMIN_ROLE
from access_api.domain.policies import SecurityPolicy, has_second_factor
from access_api.domain.tenants import Tenant
from access_api.domain.users import User
from access_api.ids import new_id
from access_api.repositories.bulk import insert_rows, update_rows
from access_api.repositories.members import live
from access_api.repositories.orm import (
    authorization_roles,
    authorizations,
    members,
    roles,
    tenant_closure,
    tenants,
    users,
)
from access_api.repositories.pagination import Page, SortKey, fetch_page
from access_api.repositories.policies import CHAIN_COLUMNS, chain_from, join_chain
from access_api.repositories.roles import ROLE_COLUMNS, roles_of_rows
from access_api.repositories.tenants import to_tenant
from access_api.repositories.users import to_user

# The two statements behind every request, built once: building a statement with aliases costs
# far more Python than running it (each alias copies its table's columns).
_target = tenants.alias("target")
_above = tenants.alias("above")
_chain = tenant_closure.alias("chain")
_grant = authorizations.alias("g")
_closure_above = tenant_closure.alias("closure_above")


def scope_facts_statement(user_id: Any = None) -> sa.Select[Any]:
    """The facts of one caller in one tenant (the statement behind every scoped request);
    user_id: an expression for the caller (a bound parameter unless given)."""
    if user_id is None:
        user_id = sa.bindparam("user_id")
    tenant_id: sa.BindParameter[UUID] = sa.bindparam("tenant_id")
    held = (
        sa.select(
            _chain.c.depth.label("depth"),
            _grant.c.tenant_id.label("grant_tenant_id"),
            _grant.c.include_descendants,
            _grant.c.expires_at,
            *ROLE_COLUMNS,
        )
        .select_from(
            _chain.join(
                _grant,
                sa.and_(_grant.c.tenant_id == _chain.c.ancestor_id, _grant.c.user_id == user_id),
            )
            .join(authorization_roles, authorization_roles.c.authorization_id == _grant.c.id)
            .join(roles, roles.c.id == authorization_roles.c.role_id)
        )
        .where(
            _chain.c.descendant_id == tenant_id,
            sa.or_(_chain.c.depth == 0, _grant.c.include_descendants),
        )
        .subquery("held")
    )
    disabled = (
        sa.exists()
        .where(
            tenant_closure.c.descendant_id == _target.c.id,
            _above.c.id == tenant_closure.c.ancestor_id,
            _above.c.status == "disabled",
        )
        .label("chain_disabled")
    )
    member = (
        sa.exists()
        .where(members.c.root_id == _target.c.root_id, members.c.user_id == user_id)
        .label("member")
    )
    live_grant = (
        sa.exists()
        .where(
            authorizations.c.root_id == _target.c.root_id,
            authorizations.c.user_id == user_id,
            live(sa.bindparam("now", type_=authorizations.c.expires_at.type)),
        )
        .label("live_grant")
    )
    two_factor = (
        sa.select(users.c.two_factor).where(users.c.id == user_id).scalar_subquery()
    ).label("caller_two_factor")
    return (
        sa.select(_target, disabled, member, live_grant, two_factor, held, *CHAIN_COLUMNS)
        .select_from(join_chain(_target.outerjoin(held, sa.true()), _target.c.id))
        .where(_target.c.id == tenant_id, _target.c.deleted_at.is_(None))
    )


def _reachable_statement(closure: Any = tenant_closure) -> sa.Select[Any]:
    """Every live tenant a user's grants reach, with what `GrantRepository.reachable` gives of
    each; closure: the closure rows to reach through (all of them, or some tenants')."""
    disabled = (
        sa.exists()
        .where(
            _closure_above.c.descendant_id == tenants.c.id,
            _above.c.id == _closure_above.c.ancestor_id,
            _above.c.status == "disabled",
        )
        .label("chain_disabled")
    )
    return (
        sa.select(
            tenants,
            disabled,
            closure.c.depth,
            authorizations.c.tenant_id.label("grant_tenant_id"),
            authorizations.c.include_descendants,
            authorizations.c.expires_at,
            *ROLE_COLUMNS,
            *CHAIN_COLUMNS,
        )
        .select_from(
            join_chain(
                authorizations.join(
                    closure,
                    sa.and_(
                        closure.c.ancestor_id == authorizations.c.tenant_id,
                        sa.or_(closure.c.depth == 0, authorizations.c.include_descendants),
                    ),
                )
                .join(tenants, tenants.c.id == closure.c.descendant_id)
                .join(
                    authorization_roles,
                    authorization_roles.c.authorization_id == authorizations.c.id,
                )
                .join(roles, roles.c.id == authorization_roles.c.role_id),
                tenants.c.id,
            )
        )
        .where(authorizations.c.user_id == sa.bindparam("user_id"), tenants.c.deleted_at.is_(None))
        .order_by(tenants.c.root_id, tenants.c.name, tenants.c.id)
    )


_SCOPE_FACTS = scope_facts_statement()
_REACHABLE = _reachable_statement()
_REACHABLE_IN_TREE = _REACHABLE.where(authorizations.c.root_id == sa.bindparam("root_id"))
# Some tenants' (a page of GET /v1/me/tenants): from their own closure rows, read first. Joined
# freely, PostgreSQL starts from the user's grant instead, its closure rows by ancestor (it
# takes an ancestor for a handful of them: 10,000 below an MSP's root), and filters those by
# the page: 8 ms for a page of 100 with the ids written in, 30 ms as parameters. OFFSET keeps
# the page's rows a subquery of their own (about three per tenant, by ix_..._descendant_id).
_PAGE_CLOSURE = (
    sa.select(tenant_closure)
    .where(tenant_closure.c.descendant_id.in_(sa.bindparam("ids", expanding=True)))
    .offset(0)
    .subquery("page_closure")
)
_REACHABLE_AMONG = _reachable_statement(_PAGE_CLOSURE)
_REACHABLE_AMONG_IN_TREE = _REACHABLE_AMONG.where(
    authorizations.c.root_id == sa.bindparam("root_id")
)


def scope_facts_of(user_id: UUID, rows: Sequence[Row[Any]]) -> ScopeFacts:
    """The rows of scope_facts_statement as facts (no row, or no tenant: out of reach)."""
    if not rows or rows[0].id is None:
        return ScopeFacts(tenant=None)
    first = rows[0]
    return ScopeFacts(
        tenant=to_tenant(first),
        chain_disabled=bool(first.chain_disabled),
        member=bool(first.member),
        has_live_grant_in_tree=bool(first.live_grant),
        # Immutable: the facts of the same rows are shared by the calls that read them
        # (scoped.py remembers them).
        held=tuple(_held(user_id, rows)),
        roles=MappingProxyType(roles_of_rows(rows)),
        policies=tuple(chain_from(rows)),
        has_second_factor=has_second_factor(first.caller_two_factor),
    )


class GrantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def scope_facts(self, caller: Caller, tenant_id: UUID, now: datetime) -> ScopeFacts:
        """Everything needed to judge a call in a tenant's context, in one query whatever the
        depth: the tenant, whether it or an ancestor is disabled, the caller's membership of
        its tree, and the caller's grants on the tenant and its ancestors with their roles."""
        rows = (
            await self.session.execute(
                _SCOPE_FACTS, {"user_id": caller.user_id, "tenant_id": tenant_id, "now": now}
            )
        ).all()
        return scope_facts_of(caller.user_id, rows)

    async def held_on(self, user_id: UUID, tenant_ids: Iterable[UUID]) -> dict[UUID, list[Held]]:
        """A user's grants that could apply on each tenant (on it, or inheritable from above)."""
        ids = list(set(tenant_ids))
        found: dict[UUID, list[Held]] = {tenant_id: [] for tenant_id in ids}
        if not ids:
            return found
        rows = await self.session.execute(
            sa.select(
                tenant_closure.c.descendant_id,
                tenant_closure.c.depth,
                authorizations.c.id,
                authorizations.c.tenant_id,
                authorizations.c.include_descendants,
                authorizations.c.expires_at,
                roles.c.key,
            )
            .select_from(
                tenant_closure.join(
                    authorizations,
                    sa.and_(
                        authorizations.c.tenant_id == tenant_closure.c.ancestor_id,
                        authorizations.c.user_id == user_id,
                    ),
                )
                .join(
                    authorization_roles,
                    authorization_roles.c.authorization_id == authorizations.c.id,
                )
                .join(roles, roles.c.id == authorization_roles.c.role_id)
            )
            .where(tenant_closure.c.descendant_id.in_(ids))
        )
        keys: dict[tuple[UUID, UUID], set[str]] = defaultdict(set)
        shape: dict[tuple[UUID, UUID], Any] = {}
        for row in rows:
            pair = (row.descendant_id, row.id)
            keys[pair].add(row.key)
            shape[pair] = row
        for (tenant_id, grant_id), first in shape.items():
            grant = Grant(
                user_id=user_id,
                tenant_id=first.tenant_id,
                roles=frozenset(keys[(tenant_id, grant_id)]),
                include_descendants=first.include_descendants,
                expires_at=first.expires_at,
            )
            found[tenant_id].append(Held(grant, first.depth))
        return found

    async def reachable(
        self, user_id: UUID, root_id: UUID | None, tenant_ids: Sequence[UUID] | None = None
    ) -> list[tuple[Tenant, bool, list[Held], dict[str, Role], list[tuple[UUID, SecurityPolicy]]]]:
        """Every live tenant a user's grants touch (their own, and all below an inheritable
        one), each with whether it is disabled from above, the grants that apply, their
        roles, and the security policies along its chain; in one query. Limited to one tree
        for tree-bound credentials, and to some tenants when tenant_ids are given."""
        parameters: dict[str, Any] = {"user_id": user_id, "root_id": root_id}
        if tenant_ids is None:
            statement = _REACHABLE if root_id is None else _REACHABLE_IN_TREE
        else:
            statement = _REACHABLE_AMONG if root_id is None else _REACHABLE_AMONG_IN_TREE
            parameters["ids"] = list(tenant_ids)
        if root_id is None:
            del parameters["root_id"]
        result = await self.session.execute(statement, parameters)
        by_tenant: dict[UUID, list[Row[Any]]] = {}
        for row in result:
            by_tenant.setdefault(row.id, []).append(row)
        return [
            (
                to_tenant(group[0]),
                bool(group[0].chain_disabled),
                _held(user_id, group),
                roles_of_rows(group),
                chain_from(group),
            )
            for group in by_tenant.values()
        ]

    async def held_by(self, tenant_id: UUID, user_ids: Iterable[UUID]) -> dict[UUID, list[Held]]:
        """Several users' grants that could apply on one tenant (role keys only)."""
        ids = set(user_ids)
        if not ids:
            return {}
        rows = await self.session.execute(
            sa.select(
                authorizations.c.user_id,
                tenant_closure.c.depth,
                authorizations.c.tenant_id.label("grant_tenant_id"),
                authorizations.c.include_descendants,
                authorizations.c.expires_at,
                roles.c.key.label("role_key"),
            )
            .select_from(
                tenant_closure.join(
                    authorizations, authorizations.c.tenant_id == tenant_closure.c.ancestor_id
                )
                .join(
                    authorization_roles,
                    authorization_roles.c.authorization_id == authorizations.c.id,
                )
                .join(roles, roles.c.id == authorization_roles.c.role_id)
            )
            .where(
                tenant_closure.c.descendant_id == tenant_id,
                authorizations.c.user_id.in_(ids),
                sa.or_(tenant_closure.c.depth == 0, authorizations.c.include_descendants),
            )
        )
        by_user: dict[UUID, list[Any]] = defaultdict(list)
        for row in rows:
            by_user[row.user_id].append(row)
        return {user_id: _held(user_id, group) for user_id, group in by_user.items()}

    async def grants_at_or_below(
        self, context_id: UUID, user_ids: Iterable[UUID]
    ) -> dict[UUID, list[Grant]]:
        """Each user's grants on the context tenant and every tenant below it."""
        ids = set(user_ids)
        found: dict[UUID, list[Grant]] = {user_id: [] for user_id in ids}
        if not ids:
            return found
        below = sa.select(tenant_closure.c.descendant_id).where(
            tenant_closure.c.ancestor_id == context_id
        )
        rows = await self.session.execute(
            self._grant_rows().where(
                authorizations.c.user_id.in_(ids), authorizations.c.tenant_id.in_(below)
            )
        )
        for grant in _grants_from(rows.all()).values():
            found[grant.user_id].append(grant)
        return found

    async def list_grants_on(
        self, tenant_id: UUID, *, after: tuple[Any, UUID] | None, limit: int
    ) -> Page[tuple[User, Grant]]:
        """Who is authorized on a tenant (grants made on it), by email."""
        statement = (
            sa.select(users, authorizations.c.include_descendants, authorizations.c.expires_at)
            .join(authorizations, authorizations.c.user_id == users.c.id)
            .where(authorizations.c.tenant_id == tenant_id)
        )
        page = await fetch_page(
            self.session,
            statement,
            key=SortKey(users.c.email_key),
            id_column=users.c.id,
            descending=False,
            after=after,
            limit=limit,
            build=lambda row: row,
        )
        current = await self.grants((row.id, tenant_id) for row in page.items)
        return Page(
            [(to_user(row), current[(row.id, tenant_id)]) for row in page.items],
            page.next_after,
        )

    async def grant_chains(self, user_id: UUID, now: datetime) -> list[list[UUID]]:
        """For each live grant of the user, in every tree of the deployment: its tenant and
        that tenant's ancestors (a person is one person across trees)."""
        rows = await self.session.execute(
            sa.select(authorizations.c.tenant_id, tenant_closure.c.ancestor_id)
            .join(tenant_closure, tenant_closure.c.descendant_id == authorizations.c.tenant_id)
            .where(authorizations.c.user_id == user_id, live(now))
        )
        chains: dict[UUID, list[UUID]] = defaultdict(list)
        for row in rows:
            chains[row.tenant_id].append(row.ancestor_id)
        return list(chains.values())

    async def root_admins(self, root_id: UUID, now: datetime) -> frozenset[UUID]:
        rows = await self.session.execute(
            sa.select(authorizations.c.user_id)
            .join(
                authorization_roles,
                authorization_roles.c.authorization_id == authorizations.c.id,
            )
            .join(roles, roles.c.id == authorization_roles.c.role_id)
            .where(
                authorizations.c.tenant_id == root_id,
                roles.c.key == ADMIN_ROLE,
                # The last-admin rule counts only admins who stay: not grants that expire.
                authorizations.c.expires_at.is_(None),
            )
        )
        return frozenset(rows.scalars())

    async def grants(self, pairs: Iterable[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], Grant]:
        """Existing grants for (user, tenant) pairs."""
        wanted = set(pairs)
        if not wanted:
            return {}
        users = {user_id for user_id, _ in wanted}
        rows = await self.session.execute(
            self._grant_rows().where(authorizations.c.user_id.in_(users))
        )
        found = _grants_from(rows.all())
        return {pair: grant for pair, grant in found.items() if pair in wanted}

    async def grants_of(self, user_id: UUID, root_id: UUID) -> list[Grant]:
        rows = await self.session.execute(
            self._grant_rows().where(
                authorizations.c.user_id == user_id, authorizations.c.root_id == root_id
            )
        )
        return list(_grants_from(rows.all()).values())

    async def grants_on(self, tenant_id: UUID) -> list[Grant]:
        rows = await self.session.execute(
            self._grant_rows().where(authorizations.c.tenant_id == tenant_id)
        )
        return list(_grants_from(rows.all()).values())

    @staticmethod
    def _grant_rows() -> sa.Select[Any]:
        return (
            sa.select(
                authorizations.c.user_id,
                authorizations.c.tenant_id,
                authorizations.c.include_descendants,
                authorizations.c.expires_at,
                roles.c.key,
            )
            .select_from(authorizations)
            .outerjoin(
                authorization_roles,
                authorization_roles.c.authorization_id == authorizations.c.id,
            )
            .outerjoin(roles, roles.c.id == authorization_roles.c.role_id)
        )

    async def apply(
        self,
        changes: Sequence[GrantChange],
        *,
        root_id: UUID,
        roles_by_key: Mapping[str, Role],
        now: datetime,
    ) -> None:
        """Write a plan of grant changes, a grant's role set replaced whole, in at most six
        statements whatever the plan's size: find the rows, drop the role links of every
        changed grant, delete the removed grants, insert the new ones, update the kept ones,
        link the roles."""
        if not changes:
            return
        existing = await self._ids_of({(c.user_id, c.tenant_id) for c in changes})
        touched = [existing[pair] for pair in existing]
        removed = [
            existing[(c.user_id, c.tenant_id)]
            for c in changes
            if c.after is None and (c.user_id, c.tenant_id) in existing
        ]
        new: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        for change in changes:
            after = change.after
            if after is None:
                continue
            grant_id = existing.get((change.user_id, change.tenant_id))
            shape = {"include_descendants": after.include_descendants,
                     "expires_at": after.expires_at, "updated_at": now}  # fmt: skip
            if grant_id is None:
                grant_id = new_id()
                new.append({"id": grant_id, "root_id": root_id, "user_id": after.user_id,
                            "tenant_id": after.tenant_id, "created_at": now, **shape})  # fmt: skip
            else:
                kept.append({"id": grant_id, **shape})
            links += [
                {"authorization_id": grant_id, "role_id": roles_by_key[key].id}
                for key in sorted(after.roles)
            ]
        if touched:
            await self.session.execute(
                sa.delete(authorization_roles).where(
                    authorization_roles.c.authorization_id.in_(touched)
                )
            )
        if removed:
            await self.session.execute(
                sa.delete(authorizations).where(authorizations.c.id.in_(removed))
            )
        await insert_rows(self.session, authorizations, new)
        await update_rows(self.session, authorizations, kept)
        await insert_rows(self.session, authorization_roles, links)

    async def _ids_of(self, pairs: set[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], UUID]:
        """The row ids of the existing grants among (user, tenant) pairs, in one statement."""
        rows = await self.session.execute(
            sa.select(
                authorizations.c.id, authorizations.c.user_id, authorizations.c.tenant_id
            ).where(
                authorizations.c.user_id.in_({user_id for user_id, _ in pairs}),
                authorizations.c.tenant_id.in_({tenant_id for _, tenant_id in pairs}),
            )
        )
        return {
            (row.user_id, row.tenant_id): row.id
            for row in rows
            if (row.user_id, row.tenant_id) in pairs
        }


def _held(user_id: UUID, rows: Sequence[Any]) -> list[Held]:
    grouped: dict[tuple[UUID, int], list[Row[Any]]] = defaultdict(list)
    for row in rows:
        if row.grant_tenant_id is not None:
            grouped[(row.grant_tenant_id, row.depth)].append(row)
    return [
        Held(
            Grant(
                user_id=user_id,
                tenant_id=tenant_id,
                roles=frozenset(r.role_key for r in group),
                include_descendants=group[0].include_descendants,
                expires_at=group[0].expires_at,
            ),
            depth,
        )
        for (tenant_id, depth), group in grouped.items()
    ]


def _grants_from(rows: Sequence[Row[Any]]) -> dict[tuple[UUID, UUID], Grant]:
    keys: dict[tuple[UUID, UUID], set[str]] = defaultdict(set)
    shape: dict[tuple[UUID, UUID], Row[Any]] = {}
    for row in rows:
        pair = (row.user_id, row.tenant_id)
        shape[pair] = row
        if row.key is not None:
            keys[pair].add(row.key)
    return {
        pair: Grant(
            user_id=row.user_id,
            tenant_id=row.tenant_id,
            roles=frozenset(keys[pair]),
            include_descendants=row.include_descendants,
            expires_at=row.expires_at,
        )
        for pair, row in shape.items()
    }
