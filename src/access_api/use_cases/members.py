"""Members of a tree: the one way a person joins an organization (an accepted invitation,
the bootstrap's first admin, the test fixtures)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from access_api.domain import access, invitations
from access_api.domain import errors as e
from access_api.domain.access import GrantChange
from access_api.domain.audit import Action, Actor
from access_api.domain.invitations import Offer
from access_api.domain.tenants import Tenant
from access_api.domain.users import User
from access_api.use_cases.work import Work


@dataclass(frozen=True, slots=True, kw_only=True)
class Joined:
    """A person who became a member: created now or already a user, and the grants made."""

    user: User
    created: bool
    grant_changes: list[GrantChange]


async def join(
    work: Work,
    actor: Actor,
    *,
    root_id: UUID,
    user: User,
    password_hash: str | None,
    offers: Sequence[Offer],
    tenant: Tenant,
) -> Joined:
    """Make a person a member of the tree with the offered roles added to what they hold
    (never replacing it). With a password hash, the person is new and is created first; an
    account with the same email created meanwhile refuses with Conflict (nothing written).
    The caller holds the tree lock. Each grant made is recorded against `tenant`."""
    created = password_hash is not None
    if password_hash is not None and not await work.users.insert(user, password_hash):
        raise e.Conflict(
            "an account for this email was created a moment ago; accept again with its password"
        )
    await work.members.add_member(root_id, user.id, work.now)
    current = await work.grants.grants((user.id, offer.tenant_id) for offer in offers)
    changes = invitations.union_changes(user.id, offers, current, work.now)
    roles = await work.roles.of_tree(root_id) if changes else {}
    await work.grants.apply(changes, root_id=root_id, roles_by_key=roles, now=work.now)
    for change in changes:
        await work.record(
            actor,
            Action.AUTHORIZATION_GRANTED,
            tenant=tenant,
            target_id=user.id,
            changes=access.grant_changes(change),
        )
    return Joined(user=user, created=created, grant_changes=changes)
