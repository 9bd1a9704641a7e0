"""SCIM 2.0 provisioning at /scim/v2/tenants/{t}/: our own tests, then the external
conformance checker (scim2-tester) against a live server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from access_api.repositories.orm import scim_users
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

    async def test_bad_payloads_are_scim_errors(self, scene: Scene) -> None:
        before = await scene.world.snapshot()
        scim_error(await scene.post("/Users", {"schemas": [USER]}), 400)
        scim_error(await scene.post("/Users", new_user("no-email-here", emails=[])), 400)
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

    async def test_attributes_and_excluded_attributes(self, scene: Scene) -> None:
        created = await scene.create()
        only = (await scene.get(f"/Users/{created['id']}", attributes="userName")).json()
        assert set(only) == {"schemas", "id", "userName"}
        without = (await scene.get("/Users", excludedAttributes="name,emails")).json()
        assert "name" not in without["Resources"][0]
        assert "userName" in without["Resources"][0]
