"""Scoped API keys: `permissions` and `tenant_ids` on generate and regenerate; a key does no
more than both its scope and its user's current roles allow; asking for more is refused."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Login, Msp, World, assert_problem


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def generate(
    world: World, context: Any, user: Login, by: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await world.client.post(
        f"/v1/tenants/{context}/users/{user.user_id}/api-keys", json=body, headers=by
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


class TestScopedKeys:
    async def test_a_key_does_no_more_than_its_permissions_and_tenants(
        self, world: World, msp: Msp
    ) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        client = await world.tenant(multi["id"], msp.admin)
        other = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(msp.id, ["admin"], True)])
        made = await generate(
            world,
            msp.id,
            tech,
            tech.headers,
            permissions=["users.read", "tenants.read"],
            tenant_ids=[multi["id"]],
        )
        assert made["permissions"] == ["tenants.read", "users.read"]
        assert made["tenant_ids"] == [multi["id"]]
        listed = await world.client.get(
            f"/v1/tenants/{msp.id}/users/{tech.user_id}/api-keys", headers=tech.headers
        )
        assert listed.json()["items"][0]["permissions"] == ["tenants.read", "users.read"]
        key = bearer(made["key"])
        assert (
            await world.client.get(f"/v1/tenants/{client['id']}/users", headers=key)
        ).status_code == 200
        response = await world.client.post(
            f"/v1/tenants/{client['id']}/users/delete",
            json={"ids": [str(msp.admin.user_id)]},
            headers=key,
        )
        assert_problem(response, 403, "forbidden")
        for outside in (msp.id, other["id"]):
            response = await world.client.get(f"/v1/tenants/{outside}", headers=key)
            assert_problem(response, 404, "not_found")
        me = (await world.client.get("/v1/me", headers=key)).json()
        # Its reach starts at the root grant it draws on, and is cut to its tenants.
        assert [g["tenant"]["id"] for g in me["grants"]] == [str(msp.id)]
        assert me["counts"] == {"tenants": 2, "grants": 1}
        reached = {t["id"]: t for t in await world.my_tenants(key)}
        assert set(reached) == {multi["id"], client["id"]}
        assert [t["id"] for t in await world.my_tenants(key, q=other["name"])] == []
        assert reached[client["id"]]["permissions"] == ["tenants.read", "users.read"]

    async def test_no_more_than_its_users_current_roles(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(client["id"], ["admin"], False)])
        made = await generate(world, client["id"], tech, tech.headers, permissions=["users.export"])
        key = bearer(made["key"])
        export = f"/v1/tenants/{client['id']}/users/export"
        assert (await world.client.get(export, headers=key)).status_code == 200
        demoted = await world.client.put(
            f"/v1/tenants/{client['id']}/authorizations",
            json={"items": [{"user_id": str(tech.user_id), "roles": ["read_only"]}]},
            headers=msp.admin.headers,
        )
        assert demoted.status_code == 200, demoted.text
        assert_problem(await world.client.get(export, headers=key), 403, "forbidden")

    async def test_refusals_change_nothing(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        other = await world.tenant(msp.id, msp.admin)
        reader = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        path = f"/v1/tenants/{client['id']}/users/{reader.user_id}/api-keys"
        before = await world.snapshot(ignore={"sessions"})
        cases = [
            ({"permissions": ["users.delete"]}, 403, "privilege_escalation"),
            ({"permissions": ["users.explode"]}, 422, "validation_error"),
            ({"permissions": []}, 422, "validation_error"),
            ({"tenant_ids": [other["id"]]}, 404, "not_found"),
            ({"tenant_ids": [str(msp.id)]}, 404, "not_found"),
        ]
        for body, status, code in cases:
            response = await world.client.post(path, json=body, headers=reader.headers)
            assert_problem(response, status, code)
        assert await world.snapshot(ignore={"sessions"}) == before

    async def test_a_scoped_key_never_makes_a_wider_one(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(client["id"], ["admin"], False)])
        wide = await generate(world, client["id"], tech, tech.headers)
        narrow = await generate(
            world, client["id"], tech, tech.headers, permissions=["users.read", "tenants.read"]
        )
        key = bearer(narrow["key"])
        # with no scope asked for, a key made by a scoped key inherits its scope
        child = await generate(world, client["id"], tech, key)
        assert child["permissions"] == ["tenants.read", "users.read"]
        before = await world.snapshot(ignore={"sessions"})
        response = await world.client.post(
            f"/v1/tenants/{client['id']}/users/{tech.user_id}/api-keys",
            json={"permissions": ["users.delete"]},
            headers=key,
        )
        assert_problem(response, 403, "privilege_escalation")
        response = await world.client.post(
            f"/v1/tenants/{client['id']}/users/{tech.user_id}/api-keys/{wide['id']}/regenerate",
            headers=key,
        )
        assert_problem(response, 403, "privilege_escalation")
        assert await world.snapshot(ignore={"sessions"}) == before

    async def test_regenerate_can_narrow_the_scope(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(client["id"], ["admin"], False)])
        made = await generate(world, client["id"], tech, tech.headers)
        response = await world.client.post(
            f"/v1/tenants/{client['id']}/users/{tech.user_id}/api-keys/{made['id']}/regenerate",
            json={"permissions": ["tenants.read"]},
            headers=tech.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["permissions"] == ["tenants.read"]
        key = bearer(response.json()["key"])
        assert (
            await world.client.get(f"/v1/tenants/{client['id']}", headers=key)
        ).status_code == 200
        response = await world.client.get(f"/v1/tenants/{client['id']}/users", headers=key)
        assert_problem(response, 403, "forbidden")
