"""The caller themselves: who they are, where they can act, their profile and password."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from access_api.domain import access, policies, users
from access_api.domain import errors as e
from access_api.domain.access import Caller
from access_api.domain.audit import Action, ActorKind
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.tenants import Tenant, TenantStatus
from access_api.domain.users import User
from access_api.use_cases import policies as policy_cases
from access_api.use_cases import recovery_codes
from access_api.use_cases.work import Work


@dataclass(frozen=True, slots=True, kw_only=True)
class Reachable:
    """A tenant the caller can act in, with what they hold there."""

    tenant: Tenant
    status: TenantStatus  # disabled when the tenant or one above it is disabled
    roles: list[str]
    permissions: list[str]
    blocked_by: list[str]  # what the tenant's security policy refuses the caller now


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    user: User
    tenants: list[Reachable]
    recovery_codes_left: int


async def _user(work: Work, caller: Caller, *, lock: bool = False) -> User:
    user = await (work.users.lock if lock else work.users.get)(caller.user_id)
    if user is None:
        raise e.Unauthenticated()
    return user


async def who_am_i(work: Work, caller: Caller) -> Profile:
    """The caller, and every tenant their grants (and their credential's limits) reach."""
    user = await _user(work, caller)
    reachable = []
    second_factor = policies.has_second_factor(user.two_factor)
    found = await work.grants.reachable(caller.user_id, caller.root_id)
    limit = caller.tenant_limit  # a key scoped to some tenants: those and below only
    above = await work.tenants.chains(t.id for t, *_ in found) if limit is not None else {}
    for tenant, disabled, held, roles, chain in found:
        standing = access.standing(held, roles, work.now, caller.permission_limit)
        if standing.reached and (limit is None or limit.intersection(above.get(tenant.id, ()))):
            reachable.append(
                Reachable(
                    tenant=tenant,
                    status=TenantStatus.DISABLED if disabled else tenant.status,
                    roles=sorted(standing.roles),
                    permissions=sorted(standing.permissions),
                    blocked_by=policies.blocked_by(
                        policies.effective(chain), has_second_factor=second_factor, ip=caller.ip
                    ),
                )
            )
    return Profile(
        user=user,
        tenants=reachable,
        recovery_codes_left=await recovery_codes.left(work, caller.user_id),
    )


async def update_profile(work: Work, caller: Caller, fields: Mapping[str, object]) -> User:
    """Edit one's own names and phone; the email stays."""
    current = await _user(work, caller, lock=True)
    updated, changes = users.update_profile(current, fields, work.now)
    if changes:
        await work.users.update_profile(updated)
        await work.record(
            caller.actor,
            Action.USER_UPDATED,
            tenant=None,
            target_id=caller.user_id,
            changes=changes,
        )
    return updated


async def change_password(work: Work, caller: Caller, current: str, new: str) -> None:
    """Prove the current password, choose a different one that passes the rules; every other
    session ends (this one stays, when the change is made from a session)."""
    user = await work.users.lock(caller.user_id)
    stored = await work.users.password_hash(caller.user_id)
    if user is None or not await work.passwords.verify(current, stored):
        raise ValidationFailed(
            [FieldError("current_password", "incorrect", "this is not your current password")]
        )
    users.check_password(
        new,
        email=user.email,
        field="new_password",
        min_length=await policy_cases.required_password_length(work, user.id),
    )
    if new == current:
        raise ValidationFailed(
            [FieldError("new_password", "unchanged", "choose a password you do not use now")]
        )
    await work.users.set_password_hash(user.id, await work.passwords.hash(new), work.now)
    keep = caller.credential_id if caller.credential is ActorKind.SESSION else None
    await work.sessions.end_all(user.id, work.now, keep=keep)
    await work.record(caller.actor, Action.USER_PASSWORD_CHANGED, tenant=None, target_id=user.id)
