"""Security policies: one row per tenant that sets one, and the chains they form down the tree."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.policies import NO_POLICY, SecurityPolicy, networks_of
from access_api.repositories.orm import authorizations, security_policies, tenant_closure, tenants

# The policies along a tenant's chain, joined beside the facts of a request (scope, /v1/me):
# the closure rows of the tenant whose ancestor sets a policy, then that policy. Only levels
# that set something add rows, so a tree without policies reads exactly what it read before.
_chain = tenant_closure.alias("policy_chain")
_policy = security_policies.alias("policy")

CHAIN_COLUMNS = (
    _chain.c.depth.label("policy_depth"),
    _policy.c.tenant_id.label("policy_tenant_id"),
    _policy.c.require_two_factor.label("policy_require_two_factor"),
    _policy.c.allowed_ip_ranges.label("policy_allowed_ip_ranges"),
    _policy.c.max_session_timeout_minutes.label("policy_max_session_timeout_minutes"),
    _policy.c.password_min_length.label("policy_password_min_length"),
)


def join_chain(left: Any, tenant_id: sa.ColumnElement[UUID]) -> Any:
    """left, outer-joined with the policies set at tenant_id or above it."""
    return left.outerjoin(
        _chain,
        sa.and_(
            _chain.c.descendant_id == tenant_id,
            sa.exists().where(security_policies.c.tenant_id == _chain.c.ancestor_id),
        ),
    ).outerjoin(_policy, _policy.c.tenant_id == _chain.c.ancestor_id)


def chain_from(rows: Iterable[Any]) -> list[tuple[UUID, SecurityPolicy]]:
    """The policies of rows read with CHAIN_COLUMNS, root first."""
    found: dict[UUID, tuple[int, SecurityPolicy]] = {}
    for row in rows:
        if row.policy_tenant_id is not None and row.policy_tenant_id not in found:
            found[row.policy_tenant_id] = (
                row.policy_depth,
                SecurityPolicy(
                    require_two_factor=row.policy_require_two_factor,
                    allowed_ip_ranges=networks_of(row.policy_allowed_ip_ranges),
                    max_session_timeout_minutes=row.policy_max_session_timeout_minutes,
                    password_min_length=row.policy_password_min_length,
                ),
            )
    ordered = sorted(found.items(), key=lambda item: -item[1][0])
    return [(tenant_id, policy) for tenant_id, (_, policy) in ordered]


def _to_policy(row: Any) -> SecurityPolicy:
    return SecurityPolicy(
        require_two_factor=row.require_two_factor,
        allowed_ip_ranges=networks_of(row.allowed_ip_ranges),
        max_session_timeout_minutes=row.max_session_timeout_minutes,
        password_min_length=row.password_min_length,
    )


def where_acting(
    user_id: Any, column: sa.ColumnElement[Any], selected: sa.ColumnElement[Any] | None = None
) -> sa.Select[Any]:
    """A policy column's values in force where the user acts: set at a tenant where they hold a
    grant or above one (in force there), or below an include_descendants grant (they act
    there too). Driven from the user's grants and the policies of their trees, so it costs
    nothing where no policy is set, however large the tree."""
    above_grant = sa.exists().where(
        tenant_closure.c.ancestor_id == security_policies.c.tenant_id,
        tenant_closure.c.descendant_id == authorizations.c.tenant_id,
    )
    below_grant = sa.exists().where(
        tenant_closure.c.ancestor_id == authorizations.c.tenant_id,
        tenant_closure.c.descendant_id == security_policies.c.tenant_id,
    )
    live = sa.exists().where(
        tenants.c.id == security_policies.c.tenant_id, tenants.c.deleted_at.is_(None)
    )
    return (
        sa.select(column if selected is None else selected)
        .select_from(
            authorizations.join(
                security_policies, security_policies.c.root_id == authorizations.c.root_id
            )
        )
        .where(
            authorizations.c.user_id == user_id,
            column.is_not(None),
            sa.or_(above_grant, sa.and_(authorizations.c.include_descendants, below_grant)),
            live,
        )
    )


def timeout_cap(user_id: Any) -> sa.ScalarSelect[Any]:
    """The smallest max_session_timeout_minutes in force where the user acts (NULL: none);
    a column to read beside the session, so resolving a session stays one query."""
    column = security_policies.c.max_session_timeout_minutes
    return where_acting(user_id, column, sa.func.min(column)).scalar_subquery()


class PolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: UUID) -> SecurityPolicy:
        row = (
            await self.session.execute(
                sa.select(security_policies).where(security_policies.c.tenant_id == tenant_id)
            )
        ).first()
        return NO_POLICY if row is None else _to_policy(row)

    async def chain(self, tenant_id: UUID) -> list[tuple[UUID, SecurityPolicy]]:
        """The policies set at the tenant and above it, root first."""
        rows = await self.session.execute(
            sa.select(
                tenant_closure.c.depth.label("policy_depth"),
                security_policies.c.tenant_id.label("policy_tenant_id"),
                security_policies.c.require_two_factor.label("policy_require_two_factor"),
                security_policies.c.allowed_ip_ranges.label("policy_allowed_ip_ranges"),
                security_policies.c.max_session_timeout_minutes.label(
                    "policy_max_session_timeout_minutes"
                ),
                security_policies.c.password_min_length.label("policy_password_min_length"),
            )
            .join(tenant_closure, tenant_closure.c.ancestor_id == security_policies.c.tenant_id)
            .where(tenant_closure.c.descendant_id == tenant_id)
        )
        return chain_from(rows)

    async def put(
        self, tenant_id: UUID, root_id: UUID, policy: SecurityPolicy, now: datetime
    ) -> None:
        """Store what a tenant sets; a policy that sets nothing leaves no row."""
        values = policy.as_dict()
        exists = (
            await self.session.execute(
                sa.select(security_policies.c.tenant_id).where(
                    security_policies.c.tenant_id == tenant_id
                )
            )
        ).first() is not None
        if policy == NO_POLICY:
            if exists:
                await self.session.execute(
                    sa.delete(security_policies).where(security_policies.c.tenant_id == tenant_id)
                )
        elif exists:
            await self.session.execute(
                sa.update(security_policies)
                .where(security_policies.c.tenant_id == tenant_id)
                .values(**values, updated_at=now)
            )
        else:
            await self.session.execute(
                sa.insert(security_policies).values(
                    tenant_id=tenant_id, root_id=root_id, **values, created_at=now, updated_at=now
                )
            )

    async def timeout_cap(self, user_id: UUID) -> int | None:
        """The smallest session timeout in force where the user acts (login's expires_at)."""
        cap: int | None = (await self.session.execute(sa.select(timeout_cap(user_id)))).scalar()
        return cap

    async def password_minimums(
        self, user_id: UUID | None, offers: Sequence[tuple[UUID, bool]] = ()
    ) -> list[int]:
        """The password_min_length values in force where the user acts, or would act once
        given the offered grants ((tenant, include_descendants) pairs)."""
        column = security_policies.c.password_min_length
        found: list[int] = []
        if user_id is not None:
            found += (await self.session.execute(where_acting(user_id, column))).scalars()
        conditions: list[sa.ColumnElement[bool]] = []
        for tenant_id, include_descendants in offers:
            conditions.append(
                security_policies.c.tenant_id.in_(
                    sa.select(tenant_closure.c.ancestor_id).where(
                        tenant_closure.c.descendant_id == tenant_id
                    )
                )
            )
            if include_descendants:
                conditions.append(
                    security_policies.c.tenant_id.in_(
                        sa.select(tenant_closure.c.descendant_id).where(
                            tenant_closure.c.ancestor_id == tenant_id
                        )
                    )
                )
        if conditions:
            rows = await self.session.execute(
                sa.select(column)
                .join(tenants, tenants.c.id == security_policies.c.tenant_id)
                .where(tenants.c.deleted_at.is_(None), column.is_not(None), sa.or_(*conditions))
            )
            found += rows.scalars()
        return found
