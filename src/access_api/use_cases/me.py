"""The caller themselves: who they are, where they can act, their profile and password."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from access_api.auth import credentials
from access_api.auth.credentials import Authenticated
from access_api.domain import access, api_keys, policies, users
from access_api.domain import errors as e
from access_api.domain.access import Caller, Reach
from access_api.domain.audit import Action, ActorKind
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.tenants import Tenant, TenantStatus
from access_api.domain.users import User
from access_api.pagination import After, Page
from access_api.repositories.me import Myself
from access_api.use_cases import policies as policy_cases
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
    """The caller: their credential, their person, where their reach starts (their grants),
    and how many tenants they reach; never the tenants themselves, so it does not grow with
    the tree (those are paged: `tenants`)."""

    authenticated: Authenticated
    user: User
    grants: Sequence[Reach]
    tenants_reached: int
    recovery_codes_left: int


async def _user(work: Work, caller: Caller, *, lock: bool = False) -> User:
    user = await (work.users.lock if lock else work.users.get)(caller.user_id)
    if user is None:
        raise e.Unauthenticated()
    return user


async def _myself(work: Work, token: str | None) -> tuple[Myself, Authenticated]:
    kind, known = credentials.kind_of(token)
    digest = work.keyring.digest(known)
    if kind == credentials.SESSION_PREFIX:
        found = await work.myself.by_session(digest, work.now)
        if found is None or found.session is None:
            raise e.Unauthenticated("unknown or ended session")
        return found, await credentials.session_of(work, found.session, found.user)
    if kind == api_keys.PREFIX:
        found = await work.myself.by_api_key(digest, work.now)
        if found is None:
            api_keys.check_usable(None, member=False, now=work.now)
            raise e.Unauthenticated()
        return found, await credentials.api_key_of(
            work, found.key, found.user.email, member=found.member
        )
    # An agent's token: refused here, with the reason why.
    await credentials.authenticate(work, known)
    raise e.Unauthenticated()


async def who_am_i(work: Work, token: str | None) -> Profile:
    """The caller behind a credential, found with everything /v1/me shows in one statement
    (a key scoped to some tenants needs two more: its reach is cut to those)."""
    found, authenticated = await _myself(work, token)
    caller = authenticated.caller
    grants: Sequence[Reach] = found.reach
    reached = found.tenants_reached
    if caller.tenant_limit is not None:  # a key scoped to some tenants: those and below only
        involved = [*caller.tenant_limit, *(g.tenant.id for g in grants)]
        chains = await work.tenants.chains(involved)
        grants = access.reach_within_limit(grants, chains, caller.tenant_limit)
        reached = access.tenants_reached_within(
            grants, chains, caller.tenant_limit, await work.tenants.live_descendants(involved)
        )
    return Profile(
        authenticated=authenticated,
        user=found.user,
        grants=grants,
        tenants_reached=reached,
        recovery_codes_left=found.recovery_codes_left,
    )


async def tenants(
    work: Work, caller: Caller, *, q: str | None, after: After | None, limit: int
) -> Page[Reachable]:
    """The tenants the caller reaches, by name, a page at a time, each with their roles,
    permissions and what its security policy refuses them now."""
    page = await work.myself.reachable_page(
        caller.user_id,
        caller.root_id,
        limit_to=caller.tenant_limit,
        q=q,
        now=work.now,
        after=after,
        limit=limit,
    )
    if not page.items:
        return Page([], page.next_after)
    user = await _user(work, caller)
    second_factor = policies.has_second_factor(user.two_factor)
    found = await work.grants.reachable(caller.user_id, caller.root_id, page.items)
    by_id = {}
    for tenant, disabled, held, roles, chain in found:
        standing = access.standing(held, roles, work.now, caller.permission_limit)
        by_id[tenant.id] = Reachable(
            tenant=tenant,
            status=TenantStatus.DISABLED if disabled else tenant.status,
            roles=sorted(standing.roles),
            permissions=sorted(standing.permissions),
            blocked_by=policies.blocked_by(
                policies.effective(chain), has_second_factor=second_factor, ip=caller.ip
            ),
        )
    return Page([by_id[i] for i in page.items if i in by_id], page.next_after)


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
