"""SCIM 2.0 provisioning at /scim/v2/tenants/{t}/: our own tests, then the external
conformance checker (scim2-tester) against a live server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import httpx2
import pytest
import sqlalchemy as sa
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from access_api.repositories.orm import audit_events, scim_users, users
from tests.api.conftest import Login, Msp, World, assert_problem
from tests.live import live_client, live_msp
from tests.oidc.servers import serving

SCIM = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def api_key(world: World, tenant_id: UUID | str, who: Login) -> dict[str, str]:
    answer = await world.client.post(
        f"/v1/tenants/{tenant_id}/users/{who.user_id}/api-keys",
        json={"name": "scim"},
        headers=who.headers,
    )
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['key']}", "Content-Type": SCIM}


def scim_error(answer: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(SCIM)
    body = answer.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    if scim_type:
        assert body["scimType"] == scim_type
    assert body["detail"]


def new_user(name: str | None = None, **extra: Any) -> dict[str, Any]:
    name = name or f"u{secrets.token_hex(4)}@corp.example.com"
    return {
        "schemas": [USER],
        "userName": name,
        "externalId": f"ext-{name}",
        "name": {"givenName": "Pat", "familyName": "Doe"},
        "emails": [{"value": name, "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


class Scene:
    def __init__(self, world: World, msp: Msp, base: str, headers: dict[str, str]) -> None:
        self.world, self.msp, self.base, self.headers = world, msp, base, headers

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.world.client.post(self.base + path, json=body, headers=self.headers)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.world.client.get(self.base + path, params=params, headers=self.headers)

    async def put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.world.client.put(self.base + path, json=body, headers=self.headers)

    async def patch(self, path: str, *operations: dict[str, Any]) -> httpx.Response:
        body = {"schemas": [PATCH], "Operations": list(operations)}
        return await self.world.client.patch(self.base + path, json=body, headers=self.headers)

    async def delete(self, path: str) -> httpx.Response:
        return await self.world.client.delete(self.base + path, headers=self.headers)

    async def create(self, **extra: Any) -> dict[str, Any]:
        answer = await self.post("/Users", new_user(**extra))
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture
async def scene(world: World, msp: Msp) -> Scene:
    return Scene(world, msp, f"/scim/v2/tenants/{msp.id}", await api_key(world, msp.id, msp.admin))


class TestDiscovery:
    async def test_the_service_describes_itself(self, scene: Scene) -> None:
        config = await scene.get("/ServiceProviderConfig")
        assert config.status_code == 200
        assert config.headers["content-type"].startswith(SCIM)
        assert config.json()["patch"]["supported"] is True
        kinds = (await scene.get("/ResourceTypes")).json()
        assert {r["id"] for r in kinds["Resources"]} == {"User", "Group"}
        schemas = (await scene.get("/Schemas")).json()["Resources"]
        group = next(s for s in schemas if s["id"].endswith(":Group"))
        display = next(a for a in group["attributes"] if a["name"] == "displayName")
        assert {"admin", "read_only"} <= set(display["canonicalValues"])


class TestUsers:
    async def test_create_read_replace_patch_and_delete(self, scene: Scene) -> None:
        created = await scene.create()
        uid = created["id"]
        assert created["userName"].endswith("@corp.example.com")
        assert created["meta"]["resourceType"] == "User"
        got = await scene.get(f"/Users/{uid}")
        assert got.json()["name"] == {"givenName": "Pat", "familyName": "Doe"}
        body = new_user(created["userName"]) | {"name": {"givenName": "Pam", "familyName": "D"}}
        replaced = await scene.put(f"/Users/{uid}", body)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["name"]["givenName"] == "Pam"
        patched = await scene.patch(
            f"/Users/{uid}",
            {"op": "replace", "path": "name.familyName", "value": "Dee"},
            {"op": "add", "path": "externalId", "value": "new-ext"},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["name"]["familyName"] == "Dee"
        assert patched.json()["externalId"] == "new-ext"
        removed = await scene.patch(f"/Users/{uid}", {"op": "remove", "path": "externalId"})
        assert "externalId" not in removed.json()
        assert (await scene.delete(f"/Users/{uid}")).status_code == 204
        scim_error(await scene.get(f"/Users/{uid}"), 404)

    async def test_a_taken_user_name_is_a_uniqueness_error(self, scene: Scene) -> None:
        created = await scene.create()
        before = await scene.world.snapshot()
        again = await scene.post("/Users", new_user(created["userName"].upper()))
        scim_error(again, 409, "uniqueness")
        assert await scene.world.snapshot() == before

    async def test_the_email_cannot_change(self, scene: Scene) -> None:
        created = await scene.create()
        body = new_user(created["userName"])
        body["emails"] = [{"value": "other@corp.example.com", "primary": True}]
        before = await scene.world.snapshot()
        scim_error(await scene.put(f"/Users/{created['id']}", body), 400, "mutability")
        assert await scene.world.snapshot() == before

    async def test_a_user_without_an_email_gets_its_first_address_once(self, scene: Scene) -> None:
        created = await scene.create(name="no-email-here", emails=[])
        assert "emails" not in created
        body = new_user("no-email-here")
        body["emails"] = [{"value": "late@corp.example.com", "primary": True}]
        first = await scene.put(f"/Users/{created['id']}", body)
        assert first.status_code == 200, first.text
        assert first.json()["emails"] == [{"value": "late@corp.example.com"}]
        body["emails"] = [{"value": "later@corp.example.com", "primary": True}]
        scim_error(await scene.put(f"/Users/{created['id']}", body), 400, "mutability")

    async def test_bad_payloads_are_scim_errors(self, scene: Scene) -> None:
        before = await scene.world.snapshot()
        scim_error(await scene.post("/Users", {"schemas": [USER]}), 400)
        answer = await scene.world.client.post(
            scene.base + "/Users", content=b"{not json", headers=scene.headers
        )
        scim_error(answer, 400)
        scim_error(await scene.get("/Users", filter='userName eq "x" and'), 400, "invalidFilter")
        scim_error(await scene.get("/Users", filter='title eq "x"'), 400, "invalidFilter")
        scim_error(await scene.get("/Users/not-a-uuid"), 400)
        scim_error(await scene.get("/Nothing"), 404)
        assert await scene.world.snapshot() == before


class TestListing:
    async def test_filters(self, scene: Scene) -> None:
        a = await scene.create(name="alice.smith@corp.example.com")
        b = await scene.create(name="bob.smith@corp.example.com", active=False)
        c = await scene.create(name="carol@other.example.com")

        async def ids(expression: str) -> set[str]:
            answer = await scene.get("/Users", filter=expression)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["totalResults"] == len(body["Resources"])
            return {r["id"] for r in body["Resources"]}

        assert await ids('userName eq "ALICE.SMITH@corp.example.com"') == {a["id"]}
        assert await ids('emails.value co "smith"') == {a["id"], b["id"]}
        assert await ids('emails[value sw "carol"]') == {c["id"]}
        assert await ids('userName sw "bob" or userName sw "carol"') == {b["id"], c["id"]}
        assert await ids('userName co "smith" and active eq true') == {a["id"]}
        assert await ids(f'externalId eq "ext-{c["userName"]}"') == {c["id"]}
        assert await ids('name.givenName eq "pat" and not (active eq false)') == {a["id"], c["id"]}

    async def test_pages_by_start_index_and_count(self, scene: Scene) -> None:
        made = [(await scene.create())["id"] for _ in range(5)]
        seen: list[str] = []
        for start in (1, 3, 5):
            page = (await scene.get("/Users", startIndex=start, count=2)).json()
            assert page["totalResults"] == 5
            assert page["startIndex"] == start
            seen += [r["id"] for r in page["Resources"]]
        assert sorted(seen) == sorted(made)
        assert (await scene.get("/Users", count=0)).json()["Resources"] == []

    async def test_pages_by_cursor(self, scene: Scene) -> None:
        made = [(await scene.create())["id"] for _ in range(5)]
        seen: list[str] = []
        cursor = ""
        for _ in range(3):
            page = (await scene.get("/Users", cursor=cursor, count=2)).json()
            assert page["totalResults"] == 5
            seen += [r["id"] for r in page["Resources"]]
            cursor = page.get("nextCursor", "")
            if not cursor:
                break
        assert sorted(seen) == sorted(made)
        assert not cursor
        scim_error(await scene.get("/Users", cursor="nonsense"), 400, "invalidCursor")
        config = (await scene.get("/ServiceProviderConfig")).json()
        assert config["pagination"]["cursor"] is True

    async def test_attributes_and_excluded_attributes(self, scene: Scene) -> None:
        created = await scene.create()
        only = (await scene.get(f"/Users/{created['id']}", attributes="userName")).json()
        assert set(only) == {"schemas", "id", "userName"}
        without = (await scene.get("/Users", excludedAttributes="name,emails")).json()
        assert "name" not in without["Resources"][0]
        assert "userName" in without["Resources"][0]

    async def test_a_page_shows_each_user_as_scim2_models_renders_them(self, scene: Scene) -> None:
        """A page asked without attributes is rendered directly (scim/app.py `_user_body`),
        not through scim2-models: the same users as scim2-models renders them, alone and in
        a page asked with excludedAttributes (which goes through it), for users of every
        shape the service keeps."""
        shapes = [
            new_user(),
            {k: v for k, v in new_user(active=False).items() if k != "externalId"},
            {"schemas": [USER], "userName": f"no-mail-{secrets.token_hex(4)}"},
            {**new_user(), "name": {"givenName": "Zoë", "familyName": "Ünal-O'Brien"}},
            new_user(externalId='ext "quoted" ✓'),
        ]
        for body in shapes:
            answer = await scene.post("/Users", body)
            assert answer.status_code == 201, answer.text
        page = (await scene.get("/Users", count=10)).json()
        assert page["totalResults"] == len(shapes) == len(page["Resources"])
        through_the_library = (
            await scene.get("/Users", count=10, excludedAttributes="groups")
        ).json()
        assert page == through_the_library
        for resource in page["Resources"]:
            alone = await scene.get(f"/Users/{resource['id']}")
            assert resource == alone.json()
        shown = {r["userName"]: r for r in page["Resources"]}
        assert "emails" not in shown[shapes[2]["userName"]]
        assert "externalId" not in shown[shapes[1]["userName"]]
        assert shown[shapes[3]["userName"]]["name"]["givenName"] == "Zoë"


class TestSettings:
    async def test_provisioned_users_get_the_default_roles(self, scene: Scene) -> None:
        world, msp = scene.world, scene.msp
        client = await world.tenant(msp.id, msp.admin)
        put = await world.client.put(
            f"/v1/tenants/{client['id']}/scim",
            json={"default_roles": ["read_only"], "include_descendants": False},
            headers=msp.admin.headers,
        )
        assert put.status_code == 200, put.text
        assert put.json()["endpoint"].endswith(f"/scim/v2/tenants/{client['id']}")
        key = await api_key(world, msp.id, msp.admin)
        made = await world.client.post(
            f"/scim/v2/tenants/{client['id']}/Users", json=new_user(), headers=key
        )
        assert made.status_code == 201, made.text
        grants = await world.client.get(
            f"/v1/tenants/{client['id']}/users/{made.json()['id']}/authorizations",
            headers=msp.admin.headers,
        )
        assert [(g["tenant_id"], g["roles"]) for g in grants.json()["items"]] == [
            (client["id"], ["read_only"])
        ]

    async def test_unknown_roles_and_missing_permission_are_refused(
        self, world: World, msp: Msp
    ) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/scim",
            json={"default_roles": ["nope"]},
            headers=msp.admin.headers,
        )
        assert_problem(answer, 422, "validation_error")
        answer = await world.client.put(
            f"/v1/tenants/{msp.id}/scim", json={"default_roles": []}, headers=reader.headers
        )
        assert_problem(answer, 403, "forbidden")
        assert await world.snapshot() == before
        got = await world.client.get(f"/v1/tenants/{msp.id}/scim", headers=msp.admin.headers)
        assert got.json()["default_roles"] == []


class TestAuthentication:
    async def test_only_an_api_key_with_both_permissions_in_reach(
        self, world: World, msp: Msp
    ) -> None:
        base = f"/scim/v2/tenants/{msp.id}/Users"
        scim_error(await world.client.get(base), 401)
        scim_error(await world.client.get(base, headers=msp.admin.headers), 401)  # a session
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        scim_error(await world.client.get(base, headers=await api_key(world, msp.id, reader)), 403)
        other = await world.msp()
        stranger = await api_key(world, other.id, other.admin)
        before = await world.snapshot()
        scim_error(await world.client.get(base, headers=stranger), 404)
        scim_error(await world.client.post(base, json=new_user(), headers=stranger), 404)
        assert await world.snapshot() == before

    async def test_another_trees_key_cannot_reach_a_user(self, scene: Scene) -> None:
        created = await scene.create()
        other = await scene.world.msp()
        theirs = await api_key(scene.world, other.id, other.admin)
        mine = f"/scim/v2/tenants/{scene.msp.id}/Users/{created['id']}"
        scim_error(await scene.world.client.get(mine, headers=theirs), 404)
        scim_error(await scene.world.client.delete(mine, headers=theirs), 404)
        # Their own directory does not have our user either.
        yours = f"/scim/v2/tenants/{other.id}/Users/{created['id']}"
        scim_error(await scene.world.client.get(yours, headers=theirs), 404)
        listed = await scene.world.client.get(f"/scim/v2/tenants/{other.id}/Users", headers=theirs)
        assert listed.json()["totalResults"] == 0


class TestDeprovisioning:
    """active: false and DELETE end the user's access, sessions and keys in that tree at once,
    as POST …/users/delete does."""

    async def provisioned(self, scene: Scene) -> tuple[dict[str, Any], Login, dict[str, str]]:
        world, msp = scene.world, scene.msp
        created = await scene.create()
        grant = await world.client.put(
            f"/v1/tenants/{msp.id}/users/{created['id']}/authorizations",
            json={"items": [{"tenant_id": str(msp.id), "roles": ["admin"],
                             "include_descendants": True}]},
            headers=msp.admin.headers,
        )  # fmt: skip
        assert grant.status_code == 200, grant.text
        # The person sets a password (as through a reset), so they have a session of their own.
        hashed = await world.state.passwords.hash("pw-of-the-person-123")
        await world.connection.execute(
            sa.update(users).where(users.c.id == UUID(created["id"])).values(password_hash=hashed)
        )
        person = await world.login(created["userName"], "pw-of-the-person-123")
        key = await api_key(world, msp.id, person)
        assert (
            await world.client.get(f"/v1/tenants/{msp.id}", headers=person.headers)
        ).status_code == 200
        return created, person, key

    async def assert_cut_off(self, scene: Scene, person: Login, key: dict[str, str]) -> None:
        tenant = f"/v1/tenants/{scene.msp.id}"
        session = await scene.world.client.get(tenant, headers=person.headers)
        assert session.status_code in (403, 404), session.text
        assert_problem(await scene.world.client.get(tenant, headers=key), 401, "unauthenticated")

    async def test_active_false_ends_access_sessions_and_keys_at_once(self, scene: Scene) -> None:
        created, person, key = await self.provisioned(scene)
        answer = await scene.patch(
            f"/Users/{created['id']}", {"op": "replace", "path": "active", "value": False}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["active"] is False
        await self.assert_cut_off(scene, person, key)
        actions = await scene.world.rows(
            sa.select(audit_events.c.action).where(audit_events.c.target_id == UUID(created["id"]))
        )
        assert {"user.deleted", "scim_user.deactivated"} <= {a.action for a in actions}
        # Reactivating gives the defaults again (none here): still no access, still listed.
        again = await scene.patch(
            f"/Users/{created['id']}", {"op": "replace", "value": {"active": True}}
        )
        assert again.json()["active"] is True

    async def test_delete_ends_access_sessions_and_keys_at_once(self, scene: Scene) -> None:
        created, person, key = await self.provisioned(scene)
        assert (await scene.delete(f"/Users/{created['id']}")).status_code == 204
        await self.assert_cut_off(scene, person, key)
        assert await scene.world.count(scim_users) == 0

    async def test_a_user_with_no_access_here_is_deactivated_with_nothing_removed(
        self, world: World, msp: Msp
    ) -> None:
        # The SCIM key belongs to a second admin.
        second = await world.user(msp.id, [(msp.id, ["admin"], True)])
        scene = Scene(
            world, msp, f"/scim/v2/tenants/{msp.id}", await api_key(world, msp.id, second)
        )
        created = await scene.create()
        own = await scene.patch(
            f"/Users/{created['id']}", {"op": "replace", "path": "active", "value": False}
        )
        assert own.status_code == 200  # no roles here: nothing to remove


class TestGroups:
    async def test_a_group_is_a_role_on_the_tenant(self, scene: Scene) -> None:
        ann, bob = await scene.create(), await scene.create()
        groups = (await scene.get("/Groups")).json()["Resources"]
        read_only = next(g for g in groups if g["displayName"] == "read_only")
        answer = await scene.patch(
            f"/Groups/{read_only['id']}",
            {"op": "add", "path": "members", "value": [{"value": ann["id"]}, {"value": bob["id"]}]},
        )
        assert answer.status_code == 200, answer.text
        assert {m["value"] for m in answer.json()["members"]} == {ann["id"], bob["id"]}
        me = await scene.world.client.get(
            f"/v1/tenants/{scene.msp.id}/users/{ann['id']}/authorizations",
            headers=scene.msp.admin.headers,
        )
        assert me.json()["items"][0]["roles"] == ["read_only"]
        removed = await scene.patch(
            f"/Groups/{read_only['id']}",
            {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'},
        )
        assert [m["value"] for m in removed.json()["members"]] == [bob["id"]]
        put = await scene.put(
            f"/Groups/{read_only['id']}",
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
             "displayName": "read_only", "members": []},
        )  # fmt: skip
        assert put.json().get("members", []) == []

    async def test_a_group_must_name_a_role_of_the_tree(self, scene: Scene) -> None:
        before = await scene.world.snapshot()
        answer = await scene.post(
            "/Groups",
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales"},
        )
        scim_error(answer, 400, "invalidValue")
        assert await scene.world.snapshot() == before
        made = await scene.post(
            "/Groups",
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "admin"},
        )
        assert made.status_code == 201, made.text


# --- the external conformance checker, against a live server ------------------------------


@pytest.fixture
async def live(live_database: str) -> AsyncIterator[tuple[str, UUID, str]]:
    """A committed MSP and an admin API key, and a server process over that database."""
    async with live_client(live_database) as client:
        msp_id, headers = await live_msp(client, f"scim-{secrets.token_hex(3)}")
        me = (await client.get("/v1/me", headers=headers)).json()
        made = await client.post(
            f"/v1/tenants/{msp_id}/users/{me['id']}/api-keys",
            json={"name": "scim"},
            headers=headers,
        )
        key = made.json()["key"]
    with serving(live_database) as url:
        yield url, msp_id, key


def test_scim2_tester_finds_no_error(live: tuple[str, UUID, str]) -> None:
    url, msp_id, key = live
    with httpx2.Client(
        base_url=f"{url}/scim/v2/tenants/{msp_id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as http:
        client = SyncSCIMClient(http)
        results = check_server(client, resource_types=["User"])
    bad = [
        (r.title, r.status.name, r.reason)
        for r in results
        if r.status in (Status.ERROR, Status.CRITICAL)
    ]
    assert results
    assert bad == [], "\n".join(map(str, bad))
