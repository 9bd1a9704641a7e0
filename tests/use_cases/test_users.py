"""use_cases.users.delete: the one removal that REST, SCIM and dry runs share."""

from __future__ import annotations

import pytest

from access_api.domain import errors as e
from access_api.domain.api_keys import ApiKey
from access_api.domain.audit import Action
from access_api.domain.permissions import Permission
from access_api.domain.tenants import TenantKind
from access_api.ids import new_id
from access_api.use_cases import tenants, users
from tests.use_cases.scene import NOW, Scene


class TestDelete:
    async def test_at_the_root_users_leave_the_organization_and_their_keys_die(
        self, scene: Scene
    ) -> None:
        root, admin = await scene.msp()
        ada = await scene.user(root, [(root.id, ["read_only"], True)])
        key = ApiKey(id=new_id(), root_id=root.id, user_id=ada.user_id, name="ci", prefix="aak_x",
                     created_by=ada.user_id, created_at=NOW, last_used_at=None, expires_at=None,
                     revoked_at=None)  # fmt: skip
        async with scene.work() as work:
            await work.api_keys.insert(key, "digest")
        scope = await scene.scope(admin, root.id, Permission.USERS_DELETE)
        async with scene.work() as work:
            removal = await users.delete(work, scope, [ada.user_id, ada.user_id])
            assert removal.deleted == [ada.user_id]
            assert [c.tenant_id for c in removal.grants_removed] == [root.id]
            assert removal.left_organization
            assert removal.without_access == [ada.user_id]
            assert removal.api_keys_revoked == [key.id]
            assert [event.action for event in work.events] == [
                Action.API_KEY_REVOKED, Action.USER_DELETED,
            ]  # fmt: skip
            assert not await work.members.members_among(root.id, [ada.user_id])

    async def test_below_the_root_only_the_grants_there_go(self, scene: Scene) -> None:
        root, admin = await scene.msp()
        writer = await scene.scope(admin, root.id, Permission.CLIENTS_WRITE)
        async with scene.work() as work:
            client = await tenants.create_client(
                work,
                writer,
                tenants.NewClient(kind=TenantKind.CLIENT, name="Acme", domain_prefix="acme-uc",
                                  street_address=None),
            )  # fmt: skip
        ada = await scene.user(
            root, [(root.id, ["read_only"], False), (client.id, ["admin"], False)]
        )
        scope = await scene.scope(admin, client.id, Permission.USERS_DELETE)
        async with scene.work() as work:
            removal = await users.delete(work, scope, [ada.user_id])
            assert [c.tenant_id for c in removal.grants_removed] == [client.id]
            assert not removal.left_organization
            assert removal.without_access == []  # the root grant remains
            assert await work.members.members_among(root.id, [ada.user_id]) == {ada.user_id}

    async def test_nobody_deletes_themselves(self, scene: Scene) -> None:
        root, admin = await scene.msp()
        scope = await scene.scope(admin, root.id, Permission.USERS_DELETE)
        async with scene.work() as work:
            with pytest.raises(e.BulkRefused) as refusal:
                await users.delete(work, scope, [admin.user_id])
        assert isinstance(refusal.value.errors[0].error, e.CannotDeleteSelf)
