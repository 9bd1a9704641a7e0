"""Authorizations (seeds 000, 002, 003): both views, replace semantics, and every refusal."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa

from access_api.domain.permissions import Permission
from access_api.repositories.orm import audit_events, authorizations
from tests.api.conftest import Msp, World, assert_problem


async def _grants_of(world: World, user_id: UUID) -> dict[UUID, bool]:
    rows = await world.rows(
        sa.select(authorizations.c.tenant_id, authorizations.c.include_descendants).where(
            authorizations.c.user_id == user_id
        )
    )
    return {r.tenant_id: r.include_descendants for r in rows}


class TestTenantView:
    async def test_lists_who_is_authorized_on_the_tenant(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local = await world.user(msp.id, [(client["id"], ["admin", "read_only"], False)])
        response = await world.client.get(
            f"/v1/tenants/{client['id']}/authorizations", headers=msp.admin.headers
        )
        assert response.status_code == 200
        (item,) = response.json()["items"]
        assert item["user"]["id"] == str(local.user_id)
        assert item["roles"] == ["admin", "read_only"]

    async def test_sets_roles_for_several_users_at_once(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin, kind="multi_client")
        ann = await world.user(msp.id, [])
        bob = await world.user(msp.id, [(client["id"], ["admin"], False)])
        response = await world.client.put(
            f"/v1/tenants/{client['id']}/authorizations",
            json={
                "items": [
                    {"user_id": str(ann.user_id), "roles": ["read_only"],
                     "include_descendants": True},
                    {"user_id": str(bob.user_id), "roles": []},
                ]
            },
            headers=msp.admin.headers,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        assert [i["user"]["id"] for i in response.json()["items"]] == [str(ann.user_id)]
        assert await _grants_of(world, ann.user_id) == {UUID(client["id"]): True}
        assert await _grants_of(world, bob.user_id) == {}
        actions = {
            r.action
            for r in await world.rows(
                sa.select(audit_events.c.action).where(audit_events.c.action.like("authorization%"))
            )
        }
        assert actions == {"authorization.granted", "authorization.removed"}
        # include_descendants reaches a client created later (seed 002).
        later = await world.tenant(client["id"], msp.admin)
        assert (
            await world.client.get(f"/v1/tenants/{later['id']}", headers=ann.headers)
        ).status_code == 200

    async def test_a_user_whose_last_role_goes_has_no_access_then_gets_one_back(
        self, world: World, msp: Msp
    ) -> None:
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        url = f"/v1/tenants/{msp.id}/authorizations"
        await world.client.put(
            url,
            json={"items": [{"user_id": str(tech.user_id), "roles": []}]},
            headers=msp.admin.headers,
        )
        assert_problem(
            await world.client.get(f"/v1/tenants/{msp.id}", headers=tech.headers), 403, "no_access"
        )
        assert await world.my_tenants(tech.headers) == []
        me = (await world.client.get("/v1/me", headers=tech.headers)).json()
        assert (me["grants"], me["counts"]) == ([], {"tenants": 0, "grants": 0})
        back = await world.client.put(
            url,
            json={"items": [{"user_id": str(tech.user_id), "roles": ["read_only"]}]},
            headers=msp.admin.headers,
        )
        assert back.status_code == 200
        assert (
            await world.client.get(f"/v1/tenants/{msp.id}", headers=tech.headers)
        ).status_code == 200

    async def test_nobody_changes_their_own_access(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={"items": [{"user_id": str(msp.admin.user_id), "roles": ["read_only"]}]},
            headers=msp.admin.headers,
        )
        assert_problem(response, 403, "cannot_change_own_access")
        assert await world.snapshot() == before

    async def test_nobody_grants_permissions_they_lack(self, world: World, msp: Msp) -> None:
        await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={
                "key": "granter",
                "name": "Granter",
                "permissions": ["tenants.read", "users.read", "authorizations.write"],
            },
            headers=msp.admin.headers,
        )
        granter = await world.user(msp.id, [(msp.id, ["granter", "read_only"], True)])
        target = await world.user(msp.id, [])
        before = await world.snapshot()
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={"items": [{"user_id": str(target.user_id), "roles": ["admin"]}]},
            headers=granter.headers,
        )
        problem = assert_problem(response, 403, "privilege_escalation")
        assert "clients.write" in problem["errors"][0]["message"]
        assert await world.snapshot() == before
        allowed = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={"items": [{"user_id": str(target.user_id), "roles": ["read_only"]}]},
            headers=granter.headers,
        )
        assert allowed.status_code == 200

    async def test_a_local_admin_cannot_reach_below_with_include_descendants(
        self, world: World, msp: Msp
    ) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        local = await world.user(msp.id, [(multi["id"], ["admin"], False)])
        target = await world.user(msp.id, [(multi["id"], ["read_only"], False)])
        before = await world.snapshot()
        response = await world.client.put(
            f"/v1/tenants/{multi['id']}/authorizations",
            json={
                "items": [
                    {"user_id": str(target.user_id), "roles": ["admin"],
                     "include_descendants": True}
                ]
            },
            headers=local.headers,
        )  # fmt: skip
        assert_problem(response, 403, "privilege_escalation")
        assert await world.snapshot() == before

    async def test_demoting_the_last_admin_is_refused(self, world: World, msp: Msp) -> None:
        await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={
                "key": "access_manager",
                "name": "Access manager",
                "permissions": ["tenants.read", "users.read", "authorizations.write"],
            },
            headers=msp.admin.headers,
        )
        manager = await world.user(msp.id, [(msp.id, ["access_manager"], True)])
        before = await world.snapshot()
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={"items": [{"user_id": str(msp.admin.user_id), "roles": []}]},
            headers=manager.headers,
        )
        assert_problem(response, 409, "last_admin")
        assert await world.snapshot() == before

    async def test_unknown_users_and_roles_refuse_the_whole_request(
        self, world: World, msp: Msp
    ) -> None:
        ann = await world.user(msp.id, [])
        stranger = await world.user((await world.msp(name="Other")).id, [])
        before = await world.snapshot()
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={
                "items": [
                    {"user_id": str(ann.user_id), "roles": ["superuser"]},
                    {"user_id": str(stranger.user_id), "roles": ["read_only"]},
                ]
            },
            headers=msp.admin.headers,
        )
        # An unknown role is a bad field of the body (issue 10): 422 naming it.
        problem = assert_problem(response, 422, "validation_error")
        assert [(e["field"], e["code"]) for e in problem["errors"]] == [
            ("items.0.roles", "unknown_role")
        ]
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={
                "items": [
                    {"user_id": str(ann.user_id), "roles": ["read_only"]},
                    {"user_id": str(stranger.user_id), "roles": ["read_only"]},
                ]
            },
            headers=msp.admin.headers,
        )
        problem = assert_problem(response, 404, "not_found")
        assert {e["id"] for e in problem["errors"]} == {str(stranger.user_id)}
        assert await world.snapshot() == before

    async def test_needs_authorizations_write(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        target = await world.user(msp.id, [])
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={"items": [{"user_id": str(target.user_id), "roles": ["read_only"]}]},
            headers=reader.headers,
        )
        assert_problem(response, 403, "forbidden")


class TestUserView:
    async def test_same_role_on_many_clients_or_one_each_replacing_the_rest(
        self, world: World, msp: Msp
    ) -> None:
        a = await world.tenant(msp.id, msp.admin)
        b = await world.tenant(msp.id, msp.admin)
        c = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(c["id"], ["admin"], False)])
        url = f"/v1/tenants/{msp.id}/users/{tech.user_id}/authorizations"
        response = await world.client.put(
            url,
            json={
                "items": [
                    {"tenant_id": a["id"], "roles": ["read_only"]},
                    {"tenant_id": b["id"], "roles": ["admin"]},
                ]
            },
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        assert await _grants_of(world, tech.user_id) == {
            UUID(a["id"]): False,
            UUID(b["id"]): False,
        }  # c was not listed: replaced away
        body = (await world.client.get(url, headers=msp.admin.headers)).json()
        assert {(i["tenant_id"], tuple(i["roles"])) for i in body["items"]} == {
            (a["id"], ("read_only",)),
            (b["id"], ("admin",)),
        }

    async def test_from_a_client_only_grants_there_and_below_are_replaced(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local = await world.user(msp.id, [(client["id"], ["admin"], False)])
        tech = await world.user(
            msp.id, [(msp.id, ["read_only"], True), (client["id"], ["admin"], False)]
        )
        response = await world.client.put(
            f"/v1/tenants/{client['id']}/users/{tech.user_id}/authorizations",
            json={"items": []},
            headers=local.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["inherited_roles"] == ["read_only"]
        assert await _grants_of(world, tech.user_id) == {msp.id: True}

    async def test_tenants_outside_reach_and_self_are_refused(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        other = await world.tenant(msp.id, msp.admin)
        local = await world.user(msp.id, [(client["id"], ["admin"], False)])
        colleague = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        before = await world.snapshot()
        response = await world.client.put(
            f"/v1/tenants/{client['id']}/users/{colleague.user_id}/authorizations",
            json={"items": [{"tenant_id": other["id"], "roles": ["read_only"]}]},
            headers=local.headers,
        )
        problem = assert_problem(response, 404, "not_found")
        assert problem["errors"][0]["id"] == other["id"]
        own = await world.client.put(
            f"/v1/tenants/{client['id']}/users/{local.user_id}/authorizations",
            json={"items": [{"tenant_id": client["id"], "roles": ["read_only"]}]},
            headers=local.headers,
        )
        assert_problem(own, 403, "cannot_change_own_access")
        assert await world.snapshot() == before


class TestRoles:
    async def test_lists_builtin_and_custom_roles_and_the_catalog(
        self, world: World, msp: Msp
    ) -> None:
        permissions = (await world.client.get("/v1/permissions", headers=msp.admin.headers)).json()
        assert len(permissions) == len(Permission)
        assert {"key": "users.export", "description": "Export users as CSV"} in permissions
        roles = (
            await world.client.get(f"/v1/tenants/{msp.id}/roles", headers=msp.admin.headers)
        ).json()["items"]
        assert [(r["key"], r["builtin"]) for r in roles] == [("admin", True), ("read_only", True)]
        assert roles[1]["permissions"] == [
            "audit.read",
            "invitations.read",
            "tenants.read",
            "users.read",
        ]

    async def test_custom_role_lifecycle(self, world: World, msp: Msp) -> None:
        url = f"/v1/tenants/{msp.id}/roles"
        created = await world.client.post(
            url,
            json={"key": "helpdesk", "name": "Helpdesk", "permissions": ["users.read"]},
            headers=msp.admin.headers,
        )
        assert created.status_code == 201
        assert created.headers["location"].endswith("/roles/helpdesk")
        patched = await world.client.patch(
            f"{url}/helpdesk",
            json={"permissions": ["users.read", "two_factor.reset"]},
            headers=msp.admin.headers,
        )
        assert patched.json()["permissions"] == ["two_factor.reset", "users.read"]
        tech = await world.user(msp.id, [(msp.id, ["helpdesk"], True)])
        before = await world.snapshot()
        in_use = await world.client.delete(f"{url}/helpdesk", headers=msp.admin.headers)
        assert_problem(in_use, 409, "role_in_use")
        assert await world.snapshot() == before
        await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={"items": [{"user_id": str(tech.user_id), "roles": []}]},
            headers=msp.admin.headers,
        )
        assert (
            await world.client.delete(f"{url}/helpdesk", headers=msp.admin.headers)
        ).status_code == 204
        assert_problem(
            await world.client.get(f"{url}/helpdesk", headers=msp.admin.headers), 404, "not_found"
        )

    async def test_builtin_roles_cannot_change(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        for response in (
            await world.client.patch(
                f"/v1/tenants/{msp.id}/roles/read_only",
                json={"permissions": ["users.write"]},
                headers=msp.admin.headers,
            ),
            await world.client.delete(
                f"/v1/tenants/{msp.id}/roles/admin", headers=msp.admin.headers
            ),
        ):
            assert_problem(response, 403, "role_immutable")
        assert await world.snapshot() == before

    async def test_keys_are_unique_slugs_and_permissions_come_from_the_catalog(
        self, world: World, msp: Msp
    ) -> None:
        url = f"/v1/tenants/{msp.id}/roles"
        before = await world.snapshot()
        taken = await world.client.post(
            url, json={"key": "admin", "name": "Mine", "permissions": []}, headers=msp.admin.headers
        )
        assert_problem(taken, 409, "role_key_taken")
        bad_key = await world.client.post(
            url, json={"key": "Bad Key", "name": "X", "permissions": []}, headers=msp.admin.headers
        )
        assert_problem(bad_key, 422, "validation_error")
        unknown = await world.client.post(
            url,
            json={"key": "odd", "name": "X", "permissions": ["root.everything"]},
            headers=msp.admin.headers,
        )
        problem = assert_problem(unknown, 422, "validation_error")
        assert problem["errors"][0]["code"] == "unknown_permission"
        assert await world.snapshot() == before

    async def test_roles_are_defined_at_the_msp_by_someone_holding_their_permissions(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        before = await world.snapshot()
        from_client = await world.client.post(
            f"/v1/tenants/{client['id']}/roles",
            json={"key": "sneaky", "name": "Sneaky", "permissions": ["users.read"]},
            headers=local_admin.headers,
        )
        assert_problem(from_client, 403, "forbidden")
        await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={
                "key": "role_author",
                "name": "Roles",
                "permissions": ["tenants.read", "roles.write"],
            },
            headers=msp.admin.headers,
        )
        author = await world.user(msp.id, [(msp.id, ["role_author"], True)])
        before = await world.snapshot()
        escalating = await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={"key": "boss", "name": "Boss", "permissions": ["users.delete"]},
            headers=author.headers,
        )
        assert_problem(escalating, 403, "privilege_escalation")
        assert await world.snapshot() == before


class TestSeed004QualityManagerWithAdminAsSecondaryRole:
    """Avo Assure: "Only users with the Quality Manager role and Admin as a secondary role can
    update user details." Two custom roles express it: the Quality Manager role sees users, the
    secondary admin role adds the right to edit them, and only holders of both may edit."""

    async def test_only_a_quality_manager_with_admin_as_secondary_role_edits_users(
        self, world: World, msp: Msp
    ) -> None:
        url = f"/v1/tenants/{msp.id}/roles"
        for key, name, permissions in (
            ("quality_manager", "Quality Manager", ["tenants.read", "users.read", "agents.manage"]),
            ("secondary_admin", "Admin (secondary)", ["users.write"]),
        ):
            response = await world.client.post(
                url, json={"key": key, "name": name, "permissions": permissions},
                headers=msp.admin.headers,
            )  # fmt: skip
            assert response.status_code == 201, response.text
        qm_only = await world.user(msp.id, [(msp.id, ["quality_manager"], True)])
        qm_admin = await world.user(
            msp.id, [(msp.id, ["quality_manager", "secondary_admin"], True)]
        )
        tester = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        edit = f"/v1/tenants/{msp.id}/users/{tester.user_id}"
        before = await world.snapshot()
        refused = await world.client.patch(edit, json={"first_name": "X"}, headers=qm_only.headers)
        assert_problem(refused, 403, "forbidden")
        assert await world.snapshot() == before
        allowed = await world.client.patch(edit, json={"first_name": "Y"}, headers=qm_admin.headers)
        assert allowed.status_code == 200
        assert allowed.json()["first_name"] == "Y"


class TestAuditTrail:
    async def test_lists_changes_of_the_tenant_and_below_with_filters(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin, name="Acme")
        local = await world.user(msp.id, [(client["id"], ["admin"], False)])
        await world.client.patch(
            f"/v1/tenants/{client['id']}", json={"name": "Acme 2"}, headers=local.headers
        )
        await world.client.patch(
            f"/v1/tenants/{msp.id}", json={"name": "MSP 2"}, headers=msp.admin.headers
        )
        at_root = (
            await world.client.get(f"/v1/tenants/{msp.id}/audit-events", headers=msp.admin.headers)
        ).json()["items"]
        actions = [e["action"] for e in at_root]
        assert actions[:2] == ["tenant.updated", "tenant.updated"]  # newest first
        assert "tenant.created" in actions
        at_client = (
            await world.client.get(
                f"/v1/tenants/{client['id']}/audit-events",
                params={"action": "tenant.updated"},
                headers=local.headers,
            )
        ).json()["items"]
        (event,) = at_client  # the MSP's own rename is not the client's business
        assert event["changes"] == {"name": {"before": "Acme", "after": "Acme 2"}}
        assert event["actor"] == {"user_id": str(local.user_id), "kind": "session"}
        assert event["request_id"]
        by_actor = (
            await world.client.get(
                f"/v1/tenants/{msp.id}/audit-events",
                params={"actor_id": str(local.user_id)},
                headers=msp.admin.headers,
            )
        ).json()["items"]
        assert [e["action"] for e in by_actor] == ["tenant.updated"]

    async def test_needs_audit_read_and_pages(self, world: World, msp: Msp) -> None:
        for _ in range(3):
            await world.tenant(msp.id, msp.admin)
        first = (
            await world.client.get(
                f"/v1/tenants/{msp.id}/audit-events", params={"limit": 2}, headers=msp.admin.headers
            )
        ).json()
        second = (
            await world.client.get(
                f"/v1/tenants/{msp.id}/audit-events",
                params={"limit": 2, "cursor": first["next_cursor"]},
                headers=msp.admin.headers,
            )
        ).json()
        ids = [e["id"] for e in first["items"] + second["items"]]
        assert len(set(ids)) == 4
        await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={"key": "no_audit", "name": "No audit", "permissions": ["tenants.read"]},
            headers=msp.admin.headers,
        )
        blind = await world.user(msp.id, [(msp.id, ["no_audit"], True)])
        assert_problem(
            await world.client.get(f"/v1/tenants/{msp.id}/audit-events", headers=blind.headers),
            403,
            "forbidden",
        )

    async def test_events_never_hold_secrets(self, world: World, msp: Msp) -> None:
        await world.client.post(
            "/v1/me/password",
            json={
                "current_password": msp.admin.password,
                "new_password": "brand new secret phrase",
            },
            headers=msp.admin.headers,
        )
        text = " ".join(str(r.changes) for r in await world.rows(sa.select(audit_events.c.changes)))
        assert "brand new secret phrase" not in text
        assert msp.admin.password not in text
        assert "$argon2" not in text
        assert "aas_" not in text
