"""Built-in roles follow the code: a permission added to the catalog reaches existing trees."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from access_api.domain import permissions
from access_api.repositories.orm import roles
from tests.api.conftest import Msp, World


class TestBuiltinRolesFollowTheCatalog:
    async def test_an_existing_trees_admin_holds_a_permission_added_later(
        self, world: World, msp: Msp, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The tree exists (and stored its roles) before the catalog grows.
        added = "widgets.read"
        monkeypatch.setattr(permissions, "ALL_PERMISSIONS", permissions.ALL_PERMISSIONS | {added})
        monkeypatch.setattr(permissions, "READ_PERMISSIONS", permissions.READ_PERMISSIONS | {added})

        mine = await world.my_tenants(msp.admin.headers)
        root = next(t for t in mine if t["id"] == str(msp.id))
        assert added in root["permissions"]

        listed = (
            await world.client.get(f"/v1/tenants/{msp.id}/roles", headers=msp.admin.headers)
        ).json()["items"]
        by_key = {role["key"]: role for role in listed}
        assert added in by_key["admin"]["permissions"]
        assert added in by_key["read_only"]["permissions"]

        # Nothing was rewritten: the permissions are derived when read.
        stored = await world.rows(
            sa.select(roles.c.permissions).where(
                roles.c.root_id == msp.id, roles.c.key == permissions.ADMIN_ROLE
            )
        )
        assert added not in stored[0].permissions

    async def test_a_custom_role_keeps_exactly_what_it_stores(
        self, world: World, msp: Msp, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        created = await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={"key": "auditor", "name": "Auditor", "permissions": ["audit.read"]},
            headers=msp.admin.headers,
        )
        assert created.status_code == 201, created.text
        monkeypatch.setattr(
            permissions, "ALL_PERMISSIONS", permissions.ALL_PERMISSIONS | {"widgets.read"}
        )
        role = (
            await world.client.get(f"/v1/tenants/{msp.id}/roles/auditor", headers=msp.admin.headers)
        ).json()
        assert role["permissions"] == ["audit.read"]
