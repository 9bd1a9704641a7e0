"""Security policy per tenant (SPEC §5.2): read what a tenant sets and what is in force there,
set it, and the password length a person's policies demand."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from access_api.domain import errors as e
from access_api.domain import policies
from access_api.domain.access import Scope
from access_api.domain.audit import Action
from access_api.domain.permissions import Permission
from access_api.domain.policies import Effective, SecurityPolicy
from access_api.use_cases.work import Work


async def get(work: Work, scope: Scope) -> SecurityPolicy:
    """What the tenant itself sets (null fields inherit)."""
    return await work.policies.get(scope.tenant.id)


async def effective(work: Work, scope: Scope) -> Effective:
    """The policy in force at the tenant: its chain merged, strictest wins."""
    return policies.effective(await work.policies.chain(scope.tenant.id))


async def put(
    work: Work,
    scope: Scope,
    *,
    require_two_factor: bool | None,
    allowed_ip_ranges: Sequence[str] | None,
    max_session_timeout_minutes: int | None,
    password_min_length: int | None,
) -> SecurityPolicy:
    """Replace what the tenant sets. The change is judged as the tree is now (under its lock),
    and refused when it would shut out its own author here: their address outside the new
    ranges, or two-factor required while they have none."""
    policy = policies.check_policy(
        require_two_factor=require_two_factor,
        allowed_ip_ranges=allowed_ip_ranges,
        max_session_timeout_minutes=max_session_timeout_minutes,
        password_min_length=password_min_length,
    )
    scope = await work.lock_tree(scope, Permission.POLICIES_WRITE)
    tenant = scope.tenant
    chain = await work.policies.chain(tenant.id)
    above = [(tenant_id, level) for tenant_id, level in chain if tenant_id != tenant.id]
    author = await work.users.get(scope.caller.user_id)
    if author is None:
        raise e.Unauthenticated()
    policies.ensure_not_locked_out(
        policies.effective([*above, (tenant.id, policy)]),
        has_second_factor=policies.has_second_factor(author.two_factor),
        ip=scope.caller.ip,
    )
    before = await work.policies.get(tenant.id)
    if policy != before:
        await work.policies.put(tenant.id, tenant.root_id, policy, work.now)
        await work.record(
            scope.caller.actor,
            Action.POLICY_UPDATED,
            tenant=tenant,
            target_id=tenant.id,
            changes=policies.changes(before, policy),
        )
    return policy


async def required_password_length(
    work: Work, user_id: UUID | None, offers: Iterable[tuple[UUID, bool]] = ()
) -> int:
    """The minimum length of a password the user sets now: the longest minimum in force at
    any tenant where they hold a grant, or are being given one ((tenant, include_descendants)
    offers, at invitation accept)."""
    return policies.required_password_length(
        await work.policies.password_minimums(user_id, list(offers))
    )
