"""Who may do what where: grants, effective permissions, and the rules for changing access."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar
from uuid import UUID

from access_api.domain import policies
from access_api.domain.audit import Action, Actor, ActorKind, Changes
from access_api.domain.errors import (
    BulkRefused,
    CannotChangeOwnAccess,
    CannotDeleteSelf,
    DomainError,
    FieldError,
    Forbidden,
    ItemError,
    LastAdmin,
    NoAccess,
    NotFound,
    PrivilegeEscalation,
    TenantDisabled,
    UserOutsideScope,
    ValidationFailed,
)
from access_api.domain.permissions import ADMIN_ROLE
from access_api.domain.policies import Effective
from access_api.domain.tenants import Tenant

MAX_ROLES_PER_GRANT = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """The person behind a request and the credential they used. API keys and agents act in
    the one MSP tree they were issued in; a scoped key can do no more than its permissions."""

    user_id: UUID
    email: str
    credential: ActorKind
    credential_id: UUID
    root_id: UUID | None = None
    permission_limit: frozenset[str] | None = None
    tenant_limit: frozenset[UUID] | None = None
    ip: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, kind=self.credential)


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    id: UUID
    root_id: UUID
    key: str
    name: str
    permissions: frozenset[str]
    builtin: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """A user's roles on one tenant; with include_descendants they also reach every tenant
    below it, present and future."""

    user_id: UUID
    tenant_id: UUID
    roles: frozenset[str]
    include_descendants: bool
    expires_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class Held:
    """A grant seen from a tenant: depth is how far above that tenant it sits (0: on it)."""

    grant: Grant
    depth: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """What one user holds on one tenant."""

    reached: bool
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    inheritable: frozenset[str] = frozenset()


NO_STANDING = Standing(reached=False)


def permissions_of(role_keys: Iterable[str], roles: Mapping[str, Role]) -> frozenset[str]:
    found: set[str] = set()
    for key in role_keys:
        role = roles.get(key)
        if role is not None:
            found |= role.permissions
    return frozenset(found)


def roles_applying(held: Iterable[Held], now: datetime) -> frozenset[str]:
    """The roles a user holds on a tenant: granted on it, or inherited from above."""
    keys: set[str] = set()
    for item in held:
        if item.grant.live(now) and (item.depth == 0 or item.grant.include_descendants):
            keys |= item.grant.roles
    return frozenset(keys)


def standing(
    held: Iterable[Held],
    roles: Mapping[str, Role],
    now: datetime,
    limit: frozenset[str] | None = None,
) -> Standing:
    """Effective permissions on a tenant are the union of the roles granted on it and of the
    include_descendants grants on its ancestors; expired grants no longer count. A scoped
    credential (limit) can do no more than both allow."""
    reached = False
    role_keys: set[str] = set()
    inheritable_keys: set[str] = set()
    for item in held:
        if not item.grant.live(now):
            continue
        if item.depth == 0 or item.grant.include_descendants:
            reached = True
            role_keys |= item.grant.roles
        if item.grant.include_descendants:
            inheritable_keys |= item.grant.roles
    permissions = permissions_of(role_keys, roles)
    inheritable = permissions_of(inheritable_keys, roles)
    if limit is not None:
        permissions &= limit
        inheritable &= limit
    return Standing(
        reached=reached,
        roles=frozenset(role_keys),
        permissions=permissions,
        inheritable=inheritable,
    )


def below(held: Iterable[Held]) -> list[Held]:
    """The same grants seen from a new child of the tenant they were read for."""
    return [Held(item.grant, item.depth + 1) for item in held]


def standing_below(parent: Standing) -> Standing:
    """What one holds on a new child of a tenant: only what reaches below it."""
    return Standing(
        reached=bool(parent.inheritable),
        permissions=parent.inheritable,
        inheritable=parent.inheritable,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """A caller acting in one tenant's context ("dashboard")."""

    caller: Caller
    tenant: Tenant
    standing: Standing

    @property
    def permissions(self) -> frozenset[str]:
        return self.standing.permissions


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeFacts:
    """Everything the database knows about a caller and a tenant, read in one query."""

    tenant: Tenant | None
    chain_disabled: bool = False
    member: bool = False
    has_live_grant_in_tree: bool = False
    held: Sequence[Held] = ()
    roles: Mapping[str, Role] = field(default_factory=dict)
    policies: Sequence[tuple[UUID, policies.SecurityPolicy]] = ()
    has_second_factor: bool = False
    # The policy in force at the tenant, merged once when the facts are made: the same facts
    # serve a caller's calls in a tenant until they change (repositories/fast.py, Made).
    effective_policy: Effective = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "effective_policy", policies.effective(self.policies))


def resolve_scope(caller: Caller, facts: ScopeFacts, now: datetime) -> Scope:
    """Reach first, then status, then policy, then permission: a tenant outside the caller's
    reach is absent (404), never forbidden; a member with no role left has no access at all
    (seed 003); a disabled tenant and everything below it refuse every call made in their
    context; so does one whose security policy the caller does not meet (§5.2)."""
    tenant = facts.tenant
    if tenant is None or not facts.member:
        raise NotFound()
    if caller.root_id is not None and caller.root_id != tenant.root_id:
        raise NotFound()
    if not facts.has_live_grant_in_tree:
        raise NoAccess()
    held_standing = standing(facts.held, facts.roles, now, caller.permission_limit)
    if not held_standing.reached:
        raise NotFound()
    if facts.chain_disabled:
        raise TenantDisabled(f"{tenant.name} (or an account above it) is disabled")
    if facts.policies:
        policies.enforce(
            facts.effective_policy,
            has_second_factor=facts.has_second_factor,
            ip=caller.ip,
            where=tenant.name,
        )
    return Scope(caller=caller, tenant=tenant, standing=held_standing)


def ensure_within_limit(caller: Caller, chain: Sequence[UUID]) -> None:
    """A credential scoped to some tenants works in those and below them only; elsewhere the
    tenant is out of its reach (absent, not forbidden)."""
    if caller.tenant_limit is not None and not caller.tenant_limit.intersection(chain):
        raise NotFound()


@dataclass(frozen=True, slots=True, kw_only=True)
class Reach:
    """Where a user's access starts: a live grant, with the tenant it is on."""

    grant: Grant
    tenant: Tenant


def reach_within_limit(
    reach: Iterable[Reach], chains: Mapping[UUID, Sequence[UUID]], limit: frozenset[UUID] | None
) -> list[Reach]:
    """The grants a credential scoped to some tenants still draws on: those on a limit tenant
    or below one, and the inheritable ones above a limit tenant (chains: each tenant's
    ancestors, itself first)."""
    if limit is None:
        return list(reach)
    kept = []
    for item in reach:
        tenant_id = item.grant.tenant_id
        under = bool(limit.intersection(chains.get(tenant_id, ())))
        above = item.grant.include_descendants and any(
            tenant_id in chains.get(limited, ()) for limited in limit
        )
        if under or above:
            kept.append(item)
    return kept


def tenants_reached_within(
    reach: Iterable[Reach],
    chains: Mapping[UUID, Sequence[UUID]],
    limit: frozenset[UUID],
    live_below: Mapping[UUID, int],
) -> int:
    """How many live tenants a credential scoped to some tenants reaches, without reading
    them: each grant reaches, within each limit tenant's subtree, either a whole subtree
    (the limit tenant's, or the grant's own when it inherits and lies below it) or its tenant
    alone; a part inside another one's subtree is dropped, and what is left is disjoint.
    chains: each tenant's ancestors, itself first (the limit's and the grants' tenants);
    live_below: for each of those that is live, how many live tenants are below it."""
    subtrees: set[UUID] = set()
    alone: set[UUID] = set()
    for item in reach:
        at, inherits = item.grant.tenant_id, item.grant.include_descendants
        for limited in limit:
            if inherits and at in chains.get(limited, ()):
                subtrees.add(limited)  # the limit tenant is at or below an inheritable grant
            elif limited in chains.get(at, ()):
                (subtrees if inherits else alone).add(at)  # the grant is within the limit

    def inside(tenant: UUID, skip: int) -> bool:
        return any(above in subtrees for above in chains.get(tenant, ())[skip:])

    roots = {tenant for tenant in subtrees if not inside(tenant, 1)}
    singles = {tenant for tenant in alone if not inside(tenant, 0)}
    return sum(live_below[tenant] + 1 for tenant in roots if tenant in live_below) + sum(
        1 for tenant in singles if tenant in live_below
    )


def require(scope: Scope, permission: str) -> None:
    if permission not in scope.permissions:
        raise Forbidden(f"this action needs the {permission} permission on {scope.tenant.name}")


# --- changing access ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantRequest:
    """A wish for one user's roles on one tenant; no roles means no access there."""

    user_id: UUID
    tenant_id: UUID
    roles: tuple[str, ...]
    include_descendants: bool
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantChange:
    """A grant appearing (before None), changing, or going away (after None)."""

    before: Grant | None
    after: Grant | None

    @property
    def grant(self) -> Grant:
        grant = self.after if self.after is not None else self.before
        if grant is None:
            raise ValueError("a grant change needs a before or an after")
        return grant

    @property
    def user_id(self) -> UUID:
        return self.grant.user_id

    @property
    def tenant_id(self) -> UUID:
        return self.grant.tenant_id

    @property
    def action(self) -> Action:
        """The audit action this change is recorded as."""
        if self.before is None:
            return Action.AUTHORIZATION_GRANTED
        if self.after is None:
            return Action.AUTHORIZATION_REMOVED
        return Action.AUTHORIZATION_CHANGED


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantContext:
    """The facts a grant change is judged against.

    reachable_tenants: tenants at or below the context, where the caller may change grants.
    visible_users: users the caller can see from the context (others are absent).
    caller_standing: the caller's own standing on each reachable tenant involved.
    current: existing grants on every (user, tenant) pair the change manages.
    roles: the tree's roles by key.
    root_id / root_admins: the tree's root and who holds admin there (read under lock).
    """

    caller: Caller
    reachable_tenants: frozenset[UUID]
    visible_users: frozenset[UUID]
    caller_standing: Mapping[UUID, Standing]
    current: Mapping[tuple[UUID, UUID], Grant]
    roles: Mapping[str, Role]
    root_id: UUID
    root_admins: frozenset[UUID]
    now: datetime


def plan_grants(
    requests: Sequence[GrantRequest],
    context: GrantContext,
    *,
    replace_within: Iterable[tuple[UUID, UUID]] = (),
    item: Literal["user", "tenant"] = "user",
    field: str = "items",
) -> list[GrantChange]:
    """Turn wishes into changes. Each requested (user, tenant) pair is set to exactly the
    requested roles; pairs in replace_within that are not requested lose their grant (replace
    semantics). Every item is judged and all refusals are reported together (atomic bulk):
    nobody changes their own access; only users and tenants within reach; nobody grants a
    role whose permissions they lack there (and, for include_descendants, lack below it); and
    the tree keeps at least one admin on its root. Refused items are named by user id, or by
    tenant id when one user's grants are set (item="tenant"); body fields under `field`."""
    _check_request_shape(requests)
    _check_expiry(requests, context.now)
    ensure_known_roles(
        [(f"{field}.{index}.roles", r.roles) for index, r in enumerate(requests)], context.roles
    )
    errors: list[ItemError] = []
    changes: list[GrantChange] = []
    requested = {(r.user_id, r.tenant_id) for r in requests}
    for request in requests:
        item_id = request.user_id if item == "user" else request.tenant_id
        try:
            change = _judge(request, context)
        except DomainError as refusal:
            errors.append(ItemError(item_id, refusal))
            continue
        if change is not None:
            changes.append(change)
    for user_id, tenant_id in replace_within:
        if (user_id, tenant_id) in requested:
            continue
        before = context.current.get((user_id, tenant_id))
        if before is None:
            continue
        if user_id == context.caller.user_id:
            errors.append(
                ItemError(user_id if item == "user" else tenant_id, CannotChangeOwnAccess())
            )
            continue
        changes.append(GrantChange(before=before, after=None))
    if errors:
        raise BulkRefused(errors)
    ensure_admin_remains(context.root_id, context.root_admins, changes)
    return changes


def ensure_known_roles(
    wanted: Iterable[tuple[str, Iterable[str]]], roles: Mapping[str, object]
) -> None:
    """A role key the tree does not define is a bad field in the body (422 naming it), not a
    missing resource: the account is there, the request names something that is not."""
    problems = [
        FieldError(field, "unknown_role", f"no role {', '.join(unknown)} in this organization")
        for field, keys in wanted
        if (unknown := sorted(key for key in keys if key not in roles))
    ]
    if problems:
        raise ValidationFailed(problems)


def _check_request_shape(requests: Sequence[GrantRequest]) -> None:
    seen: set[tuple[UUID, UUID]] = set()
    problems: list[FieldError] = []
    for index, request in enumerate(requests):
        pair = (request.user_id, request.tenant_id)
        if pair in seen:
            problems.append(
                FieldError(f"items.{index}", "duplicate", "the same user and account twice")
            )
        seen.add(pair)
        if len(request.roles) > MAX_ROLES_PER_GRANT:
            problems.append(
                FieldError(
                    f"items.{index}.roles", "too_many", f"at most {MAX_ROLES_PER_GRANT} roles"
                )
            )
    if problems:
        raise ValidationFailed(problems)


def _check_expiry(requests: Sequence[GrantRequest], now: datetime) -> None:
    """Time-limited access ends in the future: a grant that expired already is a mistake."""
    problems = [
        FieldError(f"items.{index}.expires_at", "in_the_past", "must be in the future")
        for index, request in enumerate(requests)
        if request.expires_at is not None and request.expires_at <= now
    ]
    if problems:
        raise ValidationFailed(problems)


def _judge(request: GrantRequest, context: GrantContext) -> GrantChange | None:
    if request.user_id == context.caller.user_id:
        raise CannotChangeOwnAccess()
    if request.user_id not in context.visible_users:
        raise NotFound(f"no user {request.user_id} here")
    if request.tenant_id not in context.reachable_tenants:
        raise NotFound(f"no account {request.tenant_id} here")
    before = context.current.get((request.user_id, request.tenant_id))
    after = (
        Grant(
            user_id=request.user_id,
            tenant_id=request.tenant_id,
            roles=frozenset(request.roles),
            include_descendants=request.include_descendants,
            expires_at=request.expires_at,
        )
        if request.roles
        else None
    )
    if after is not None:
        ensure_grantable(
            context.caller_standing.get(request.tenant_id, NO_STANDING),
            after,
            before,
            context.roles,
        )
    if before == after or (
        before is not None
        and after is not None
        and (before.roles, before.include_descendants, before.expires_at)
        == (after.roles, after.include_descendants, after.expires_at)
    ):
        return None
    return GrantChange(before=before, after=after)


def ensure_grantable(
    caller: Standing, after: Grant, before: Grant | None, roles: Mapping[str, Role]
) -> None:
    """You cannot grant what you do not hold: every permission of a newly given role must be
    yours on that tenant, and one that reaches every tenant below must be yours there too."""
    widened = before is None or (after.include_descendants and not before.include_descendants)
    added = after.roles if widened or before is None else after.roles - before.roles
    needed = permissions_of(added, roles)
    missing = needed - caller.permissions
    if after.include_descendants:
        missing |= needed - caller.inheritable
    if missing:
        raise PrivilegeEscalation(
            "you would grant permissions you do not hold on that account"
            + (" and every account below it" if after.include_descendants else "")
            + f": {', '.join(sorted(missing))}"
        )


def grant_changes(change: GrantChange) -> Changes:
    """A grant change as audit before/after values."""
    before, after = change.before, change.after
    return {
        "tenant_id": {"before": str(change.tenant_id), "after": str(change.tenant_id)},
        "roles": {
            "before": sorted(before.roles) if before else [],
            "after": sorted(after.roles) if after else [],
        },
        "include_descendants": {
            "before": before.include_descendants if before else None,
            "after": after.include_descendants if after else None,
        },
        **(
            {
                "expires_at": {
                    "before": _iso(before.expires_at if before else None),
                    "after": _iso(after.expires_at if after else None),
                }
            }
            if (before and before.expires_at) or (after and after.expires_at)
            else {}
        ),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def root_admins_after(
    root_id: UUID, admins: frozenset[UUID], changes: Iterable[GrantChange]
) -> frozenset[UUID]:
    remaining = set(admins)
    for change in changes:
        if change.tenant_id != root_id:
            continue
        had = change.before is not None and ADMIN_ROLE in change.before.roles
        # An admin grant that will expire does not keep the tree administrable.
        has = (
            change.after is not None
            and ADMIN_ROLE in change.after.roles
            and change.after.expires_at is None
        )
        if had and not has:
            remaining.discard(change.user_id)
        elif has:
            remaining.add(change.user_id)
    return frozenset(remaining)


def ensure_admin_remains(
    root_id: UUID, admins: frozenset[UUID], changes: Iterable[GrantChange]
) -> None:
    """An MSP keeps at least one admin on its root: no deletion or demotion may remove the
    last, or nobody could administer the tree any more. The caller reads admins under a lock
    on the root, so two admins removing each other at once cannot both succeed."""
    if admins and not root_admins_after(root_id, admins, changes):
        raise LastAdmin()


def ensure_not_self(caller: Caller, user_id: UUID) -> None:
    """Nobody changes their own access: an admin could otherwise lock everyone out by accident."""
    if caller.user_id == user_id:
        raise CannotChangeOwnAccess()


def ensure_can_manage_person(
    caller: Caller, context_id: UUID, target_id: UUID, grant_chains: Iterable[Sequence[UUID]]
) -> None:
    """Anyone may manage their own person; anyone else's only from at or above all their access."""
    if caller.user_id != target_id:
        ensure_within(context_id, grant_chains)


def ensure_within(context_id: UUID, grant_chains: Iterable[Sequence[UUID]]) -> None:
    """Administration only runs downward: a person (profile, keys, agents, 2FA) may be managed
    from a tenant only when every grant they hold, in every tree of the deployment, sits at or
    below it: a person who also works in another MSP's tree is that MSP's person too, and
    nobody edits them from one tree alone. Each chain lists a grant's tenant and its
    ancestors."""
    for chain in grant_chains:
        if context_id not in chain:
            raise UserOutsideScope()


P = TypeVar("P")


def plan_person_targets(
    caller: Caller,
    context_id: UUID,
    user_ids: Sequence[UUID],
    *,
    visible: Mapping[UUID, P],
    grant_chains: Mapping[UUID, Sequence[Sequence[UUID]]],
    own: Callable[[], DomainError] | None,
    also: Callable[[P], None] | None = None,
) -> list[P]:
    """The people a bulk person-level action (password reset link, 2FA reset, ending
    sessions) reaches from a context: each visible from it and managed downward only; one's
    own id refused with `own()` when the action forbids it (else allowed: one's own person);
    `also` adds the action's own check. Atomic: every refused id is named, nothing happens."""
    errors: list[ItemError] = []
    targets: list[P] = []
    for user_id in dict.fromkeys(user_ids):
        person = visible.get(user_id)
        refusal: DomainError | None = None
        if own is not None and user_id == caller.user_id:
            refusal = own()
        elif person is None:
            refusal = NotFound(f"no user {user_id} here")
        else:
            try:
                if user_id != caller.user_id:
                    ensure_within(context_id, grant_chains.get(user_id, ()))
                if also is not None:
                    also(person)
            except DomainError as refused:
                refusal = refused
        if refusal is not None:
            errors.append(ItemError(user_id, refusal))
        elif person is not None:
            targets.append(person)
    if errors:
        raise BulkRefused(errors)
    return targets


def plan_removal(
    caller: Caller,
    user_ids: Sequence[UUID],
    *,
    context_id: UUID,
    root_id: UUID,
    visible: frozenset[UUID],
    grants_here: Mapping[UUID, Sequence[Grant]],
    root_admins: frozenset[UUID],
) -> list[GrantChange]:
    """Deleting users in a tenant removes all their grants on it and below (seed 000); at the
    root that removes them from the MSP and every client. Nobody deletes themselves; a user
    whose only access here comes from an account above cannot be deleted from here (their
    access is not this account's to take); and the root keeps an admin."""
    errors: list[ItemError] = []
    changes: list[GrantChange] = []
    for user_id in dict.fromkeys(user_ids):
        if user_id not in visible:
            errors.append(ItemError(user_id, NotFound(f"no user {user_id} here")))
        elif user_id == caller.user_id:
            errors.append(ItemError(user_id, CannotDeleteSelf()))
        elif not grants_here.get(user_id) and context_id != root_id:
            errors.append(
                ItemError(
                    user_id,
                    UserOutsideScope(
                        "their access here comes from an account above; remove it there"
                    ),
                )
            )
        else:
            changes += [GrantChange(before=g, after=None) for g in grants_here.get(user_id, ())]
    if errors:
        raise BulkRefused(errors)
    ensure_admin_remains(root_id, root_admins, changes)
    return changes


def removal_changes(removed: Sequence[GrantChange], left_organization: bool) -> Changes:
    """A user's deletion as audit before/after values: the grants removed, and membership."""
    return {
        "grants": {"before": [grant_changes(c)["roles"]["before"] for c in removed], "after": []},
        "tenants": {"before": [str(c.tenant_id) for c in removed], "after": []},
        "member": {"before": True, "after": not left_organization},
    }
