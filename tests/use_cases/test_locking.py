"""Every change that locks a tree judges its caller again under the lock: a request that
began while its caller had access is not applied once that access is gone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import pytest

from access_api.domain import errors as e
from access_api.domain.access import GrantChange, Scope
from access_api.domain.permissions import Permission
from access_api.domain.tenants import TenantKind
from access_api.use_cases import Work, authorizations, invitations, tenants, users
from tests.use_cases.scene import Scene


@dataclass
class Facts:
    client_id: UUID
    user_id: UUID
    invitation_id: UUID


Change = Callable[[Work, Scope, Facts], Awaitable[object]]


def offer() -> list[invitations.Wanted]:
    return [invitations.Wanted(tenant_id=None, roles=("read_only",), include_descendants=False)]


CHANGES: dict[str, tuple[str, Change]] = {
    "tenants.update": (
        Permission.CLIENTS_WRITE,
        lambda w, s, f: tenants.update(w, s, {"name": "Renamed"}, expect=lambda _: None),
    ),
    "tenants.create_client": (
        Permission.CLIENTS_WRITE,
        lambda w, s, f: tenants.create_client(
            w,
            s,
            tenants.NewClient(
                kind=TenantKind.CLIENT, name="Late", domain_prefix="late", street_address=None
            ),
        ),
    ),
    "tenants.delete": (
        Permission.CLIENTS_DELETE,
        lambda w, s, f: tenants.delete(w, s, [f.client_id], confirm="delete", cascade=False),
    ),
    "authorizations.set_on_tenant": (
        Permission.AUTHORIZATIONS_WRITE,
        lambda w, s, f: authorizations.set_on_tenant(
            w,
            s,
            [
                authorizations.Wanted(
                    user_id=f.user_id, tenant_id=s.tenant.id, roles=(), include_descendants=False
                )
            ],
        ),
    ),
    "authorizations.set_for_user": (
        Permission.AUTHORIZATIONS_WRITE,
        lambda w, s, f: authorizations.set_for_user(w, s, f.user_id, []),
    ),
    "users.delete": (Permission.USERS_DELETE, lambda w, s, f: users.delete(w, s, [f.user_id])),
    "invitations.invite": (
        Permission.INVITATIONS_WRITE,
        lambda w, s, f: invitations.invite(w, s, ["late@example.com"], offer(), 7),
    ),
    "invitations.edit": (
        Permission.INVITATIONS_WRITE,
        lambda w, s, f: invitations.edit(
            w, s, f.invitation_id, offer(), email=None, expect=lambda _: None
        ),
    ),
    "invitations.resend": (
        Permission.INVITATIONS_WRITE,
        lambda w, s, f: invitations.resend(w, s, [f.invitation_id]),
    ),
}


@pytest.mark.parametrize("name", CHANGES)
async def test_a_caller_who_lost_access_meanwhile_is_refused(scene: Scene, name: str) -> None:
    permission, change = CHANGES[name]
    root, admin = await scene.msp()
    bob = await scene.user(root, [(root.id, ["admin"], True)])
    ada = await scene.user(root, [(root.id, ["read_only"], True)])
    writer = await scene.scope(admin, root.id, Permission.CLIENTS_WRITE)
    async with scene.work() as work:
        client = await tenants.create_client(
            work,
            writer,
            tenants.NewClient(kind=TenantKind.CLIENT, name="Acme", domain_prefix=f"acme-{name[:4]}",
                              street_address=None),
        )  # fmt: skip
        (made,) = await invitations.invite(work, writer, ["ada.pending@example.com"], offer(), 7)
    assert made.invitation is not None
    facts = Facts(client_id=client.id, user_id=ada.user_id, invitation_id=made.invitation.id)
    stale = await scene.scope(bob, root.id, permission)  # judged when the request began
    async with scene.work() as work:
        held = await work.grants.grants([(bob.user_id, root.id)])
        await work.grants.apply(
            [GrantChange(before=held[(bob.user_id, root.id)], after=None)],
            root_id=root.id,
            roles_by_key={},
            now=work.now,
        )
    async with scene.work() as work:
        with pytest.raises(e.NoAccess):
            await change(work, stale, facts)
        assert work.events == []
