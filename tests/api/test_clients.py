"""Client accounts over HTTP (seed 002): every rule, its refusal, and the stored state."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import sqlalchemy as sa

from access_api.repositories.orm import audit_events, authorizations, tenant_closure, tenants
from tests.api.conftest import Msp, World, assert_problem


async def _tenant_row(world: World, tenant_id: str | UUID) -> Any:
    (row,) = await world.rows(sa.select(tenants).where(tenants.c.id == UUID(str(tenant_id))))
    return row


class TestGetTenant:
    async def test_returns_the_tenant_with_an_etag(self, world: World, msp: Msp) -> None:
        response = await world.client.get(f"/v1/tenants/{msp.id}", headers=msp.admin.headers)
        assert response.status_code == 200
        assert response.json()["kind"] == "msp"
        assert response.json()["domain_prefix"] == msp.prefix
        assert response.headers["etag"].startswith('"')

    async def test_a_tenant_of_another_msp_is_absent(self, world: World, msp: Msp) -> None:
        other = await world.msp(name="Other MSP")
        response = await world.client.get(f"/v1/tenants/{other.id}", headers=msp.admin.headers)
        assert_problem(response, 404, "not_found")
        response = await world.client.get(f"/v1/tenants/{uuid4()}", headers=msp.admin.headers)
        assert_problem(response, 404, "not_found")

    async def test_a_tenant_above_the_callers_grants_is_absent(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        client_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        response = await world.client.get(f"/v1/tenants/{msp.id}", headers=client_admin.headers)
        assert_problem(response, 404, "not_found")
        response = await world.client.get(
            f"/v1/tenants/{client['id']}", headers=client_admin.headers
        )
        assert response.status_code == 200


class TestPatchTenant:
    async def test_edits_name_and_address_and_records_the_change(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin, name="Acme")
        response = await world.client.patch(
            f"/v1/tenants/{client['id']}",
            json={"name": "Acme Dental", "street_address": "1 Main St, Springfield"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        assert response.json()["name"] == "Acme Dental"
        row = await _tenant_row(world, client["id"])
        assert (row.name, row.street_address) == ("Acme Dental", "1 Main St, Springfield")
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "tenant.updated")
        )
        assert event.changes == {
            "name": {"before": "Acme", "after": "Acme Dental"},
            "street_address": {"before": None, "after": "1 Main St, Springfield"},
        }
        assert event.actor_user_id == msp.admin.user_id
        assert event.actor_kind == "session"

    async def test_kind_and_domain_prefix_cannot_change(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        before = await world.snapshot()
        for change in ({"kind": "multi_client"}, {"domain_prefix": "renamed"}):
            response = await world.client.patch(
                f"/v1/tenants/{client['id']}", json=change, headers=msp.admin.headers
            )
            assert_problem(response, 422, "tenant_immutable_field")
        assert await world.snapshot() == before
        # Sending back the unchanged values (a whole object round-trip) is harmless.
        response = await world.client.patch(
            f"/v1/tenants/{client['id']}",
            json={"kind": "client", "domain_prefix": client["domain_prefix"], "name": "New"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200

    async def test_unknown_fields_are_refused(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        before = await world.snapshot()
        response = await world.client.patch(
            f"/v1/tenants/{client['id']}",
            json={"name": "X", "parent_id": str(msp.id)},
            headers=msp.admin.headers,
        )
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["field"] == "parent_id"
        assert await world.snapshot() == before

    async def test_if_match_protects_against_lost_updates(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        read = await world.client.get(f"/v1/tenants/{client['id']}", headers=msp.admin.headers)
        etag = read.headers["etag"]
        first = await world.client.patch(
            f"/v1/tenants/{client['id']}",
            json={"name": "First"},
            headers={**msp.admin.headers, "If-Match": etag},
        )
        assert first.status_code == 200
        assert first.headers["etag"] != etag
        before = await world.snapshot()
        second = await world.client.patch(
            f"/v1/tenants/{client['id']}",
            json={"name": "Second"},
            headers={**msp.admin.headers, "If-Match": etag},
        )
        assert_problem(second, 412, "precondition_failed")
        assert await world.snapshot() == before
        third = await world.client.patch(
            f"/v1/tenants/{client['id']}",
            json={"name": "Third"},
            headers={**msp.admin.headers, "If-Match": first.headers["etag"]},
        )
        assert third.status_code == 200

    async def test_needs_clients_write(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        response = await world.client.patch(
            f"/v1/tenants/{msp.id}", json={"name": "Mine now"}, headers=reader.headers
        )
        assert_problem(response, 403, "forbidden")
        assert await world.snapshot() == before


class TestCreateClient:
    async def test_adds_a_client_with_its_closure_and_audit_event(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={
                "kind": "client",
                "name": "Acme Dental",
                "domain_prefix": "acme-dental",
                "street_address": "1 Main St",
            },
            headers=msp.admin.headers,
        )
        assert response.status_code == 201
        body = response.json()
        assert response.headers["location"] == f"/v1/tenants/{body['id']}"
        assert (body["kind"], body["parent_id"], body["status"]) == (
            "client",
            str(msp.id),
            "enabled",
        )
        row = await _tenant_row(world, body["id"])
        assert (row.root_id, row.parent_id, row.domain_prefix) == (msp.id, msp.id, "acme-dental")
        closure = {
            (r.ancestor_id, r.depth)
            for r in await world.rows(
                sa.select(tenant_closure).where(tenant_closure.c.descendant_id == UUID(body["id"]))
            )
        }
        assert closure == {(UUID(body["id"]), 0), (msp.id, 1)}
        assert await world.count(audit_events, audit_events.c.action == "tenant.created") == 2

    async def test_authorizes_users_at_once(self, world: World, msp: Msp) -> None:
        tech = await world.user(msp.id, [])
        viewer = await world.user(msp.id, [])
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={
                "kind": "multi_client",
                "name": "Contoso Group",
                "domain_prefix": "contoso",
                "authorizations": [
                    {"user_id": str(tech.user_id), "roles": ["admin"], "include_descendants": True},
                    {"user_id": str(viewer.user_id), "roles": ["read_only"]},
                ],
            },
            headers=msp.admin.headers,
        )
        assert response.status_code == 201, response.text
        grants = {
            (r.user_id, r.include_descendants)
            for r in await world.rows(
                sa.select(authorizations).where(
                    authorizations.c.tenant_id == UUID(response.json()["id"])
                )
            )
        }
        assert grants == {(tech.user_id, True), (viewer.user_id, False)}
        tenants_of_tech = await world.my_tenants(tech.headers)
        assert [t["name"] for t in tenants_of_tech] == ["Contoso Group"]

    async def test_a_client_cannot_have_children(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{client['id']}/clients",
            json={"kind": "client", "name": "Sub", "domain_prefix": "sub-client"},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "invalid_parent")
        assert await world.snapshot() == before

    async def test_a_multi_client_lives_only_under_an_msp(self, world: World, msp: Msp) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{multi['id']}/clients",
            json={"kind": "multi_client", "name": "Nested", "domain_prefix": "nested"},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "invalid_parent")
        assert await world.snapshot() == before
        under_multi = await world.tenant(multi["id"], msp.admin)
        assert under_multi["parent_id"] == multi["id"]

    async def test_an_msp_cannot_be_created_as_a_client(self, world: World, msp: Msp) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={"kind": "msp", "name": "Rogue", "domain_prefix": "rogue"},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "validation_error")

    async def test_domain_prefix_taken_anywhere_in_the_deployment(
        self, world: World, msp: Msp
    ) -> None:
        await world.tenant(msp.id, msp.admin, prefix="acme")
        other = await world.msp(name="Other MSP")
        before = await world.snapshot()
        for who, parent in ((msp.admin, msp.id), (other.admin, other.id)):
            response = await world.client.post(
                f"/v1/tenants/{parent}/clients",
                json={"kind": "client", "name": "Acme again", "domain_prefix": "acme"},
                headers=who.headers,
            )
            assert_problem(response, 409, "domain_prefix_taken")
        assert await world.snapshot() == before

    async def test_a_deleted_clients_prefix_is_free_again_at_once(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin, prefix="reused")
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/delete",
            json={"ids": [client["id"]], "confirm": "delete"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        again = await world.tenant(msp.id, msp.admin, prefix="reused")
        assert again["id"] != client["id"]

    async def test_domain_prefix_must_be_a_lowercase_dns_label(
        self, world: World, msp: Msp
    ) -> None:
        before = await world.snapshot()
        for prefix in ("ab", "-acme", "acme-", "Acme", "acme_dental", "a" * 64, "acmé"):
            response = await world.client.post(
                f"/v1/tenants/{msp.id}/clients",
                json={"kind": "client", "name": "Acme", "domain_prefix": prefix},
                headers=msp.admin.headers,
            )
            body = assert_problem(response, 422, "validation_error")
            assert body["errors"][0]["field"] == "domain_prefix", prefix
        assert await world.snapshot() == before

    async def test_cannot_grant_roles_beyond_ones_own(self, world: World, msp: Msp) -> None:
        # An admin of the root only (not of what lies below) holds nothing on a new client.
        narrow = await world.user(msp.id, [(msp.id, ["admin"], False)])
        target = await world.user(msp.id, [])
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={
                "kind": "client",
                "name": "Acme",
                "domain_prefix": "acme-esc",
                "authorizations": [{"user_id": str(target.user_id), "roles": ["admin"]}],
            },
            headers=narrow.headers,
        )
        body = assert_problem(response, 403, "privilege_escalation")
        assert body["errors"][0]["id"] == str(target.user_id)
        assert await world.snapshot() == before

    async def test_cannot_authorize_oneself(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={
                "kind": "client",
                "name": "Acme",
                "domain_prefix": "acme-self",
                "authorizations": [{"user_id": str(msp.admin.user_id), "roles": ["admin"]}],
            },
            headers=msp.admin.headers,
        )
        assert_problem(response, 403, "cannot_change_own_access")
        assert await world.snapshot() == before

    async def test_authorizing_a_stranger_or_unknown_role_is_refused_whole(
        self, world: World, msp: Msp
    ) -> None:
        member = await world.user(msp.id, [])
        stranger = await world.user((await world.msp(name="Elsewhere")).id, [])
        before = await world.snapshot()

        async def create(member_roles: list[str]) -> httpx.Response:
            return await world.client.post(
                f"/v1/tenants/{msp.id}/clients",
                json={
                    "kind": "client",
                    "name": "Acme",
                    "domain_prefix": "acme-bulk",
                    "authorizations": [
                        {"user_id": str(stranger.user_id), "roles": ["admin"]},
                        {"user_id": str(member.user_id), "roles": member_roles},
                    ],
                },
                headers=msp.admin.headers,
            )

        # An unknown role is a bad field of the body (issue 10): 422 naming it.
        body = assert_problem(await create(["superuser"]), 422, "validation_error")
        assert [(e["field"], e["code"]) for e in body["errors"]] == [
            ("authorizations.1.roles", "unknown_role")
        ]
        response = await create(["read_only"])
        body = assert_problem(response, 404, "not_found")
        assert {e["id"] for e in body["errors"]} == {str(stranger.user_id)}
        assert await world.snapshot() == before

    async def test_needs_clients_write_and_for_grants_authorizations_write(
        self, world: World, msp: Msp
    ) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={"kind": "client", "name": "Acme", "domain_prefix": "acme-ro"},
            headers=reader.headers,
        )
        assert_problem(response, 403, "forbidden")
        assert await world.snapshot() == before


class TestListClients:
    async def test_lists_children_filters_and_sorts(self, world: World, msp: Msp) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Contoso Group")
        await world.tenant(multi["id"], msp.admin, name="Contoso East", prefix="contoso-east")
        await world.tenant(msp.id, msp.admin, name="Acme Dental", prefix="acme-dental")
        zeta = await world.tenant(msp.id, msp.admin, name="Zeta Law", prefix="zeta-law")
        await world.client.post(
            f"/v1/tenants/{msp.id}/clients/disable",
            json={"ids": [zeta["id"]]},
            headers=msp.admin.headers,
        )

        async def names(**params: str) -> list[str]:
            response = await world.client.get(
                f"/v1/tenants/{msp.id}/clients", params=params, headers=msp.admin.headers
            )
            assert response.status_code == 200, response.text
            return [t["name"] for t in response.json()["items"]]

        assert await names() == ["Acme Dental", "Contoso Group", "Zeta Law"]
        assert await names(descendants="true") == [
            "Acme Dental",
            "Contoso East",
            "Contoso Group",
            "Zeta Law",
        ]
        assert await names(sort="-name") == ["Zeta Law", "Contoso Group", "Acme Dental"]
        assert await names(kind="multi_client") == ["Contoso Group"]
        assert await names(status="disabled") == ["Zeta Law"]
        assert await names(q="CONTOSO", descendants="true") == ["Contoso East", "Contoso Group"]
        assert await names(q="dental") == ["Acme Dental"]
        assert await names(q="%") == []

    async def test_pages_with_a_cursor_stable_under_inserts(self, world: World, msp: Msp) -> None:
        for letter in "abcde":
            await world.tenant(
                msp.id, msp.admin, name=f"Client {letter}", prefix=f"client-{letter}"
            )
        url = f"/v1/tenants/{msp.id}/clients"
        first = (await world.client.get(url, params={"limit": 2}, headers=msp.admin.headers)).json()
        assert [t["name"] for t in first["items"]] == ["Client a", "Client b"]
        # A client inserted before the cursor does not shift the next page.
        await world.tenant(msp.id, msp.admin, name="Client 0", prefix="client-0")
        second = (
            await world.client.get(
                url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=msp.admin.headers
            )
        ).json()
        assert [t["name"] for t in second["items"]] == ["Client c", "Client d"]
        third = (
            await world.client.get(
                url, params={"limit": 2, "cursor": second["next_cursor"]}, headers=msp.admin.headers
            )
        ).json()
        assert [t["name"] for t in third["items"]] == ["Client e"]
        assert third["next_cursor"] is None

    async def test_sorts_nullable_columns_with_nulls_last_across_pages(
        self, world: World, msp: Msp
    ) -> None:
        for name, address in (("A", None), ("B", "2 Elm"), ("C", None), ("D", "1 Oak")):
            client = await world.tenant(msp.id, msp.admin, name=name)
            if address:
                await world.client.patch(
                    f"/v1/tenants/{client['id']}",
                    json={"street_address": address},
                    headers=msp.admin.headers,
                )
        for sort, expected in (
            ("street_address", ["D", "B", "A", "C"]),
            ("-street_address", ["C", "A", "B", "D"]),
        ):
            seen: list[str] = []
            cursor: str | None = None
            while True:
                params: dict[str, str | int] = {"limit": 1, "sort": sort}
                if cursor:
                    params["cursor"] = cursor
                page = (
                    await world.client.get(
                        f"/v1/tenants/{msp.id}/clients", params=params, headers=msp.admin.headers
                    )
                ).json()
                seen += [t["name"] for t in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == expected, sort

    async def test_bad_cursor_sort_or_limit_is_a_validation_error(
        self, world: World, msp: Msp
    ) -> None:
        await world.tenant(msp.id, msp.admin)
        await world.tenant(msp.id, msp.admin)
        url = f"/v1/tenants/{msp.id}/clients"
        page = (await world.client.get(url, params={"limit": 1}, headers=msp.admin.headers)).json()
        for params, field in (
            ({"cursor": "garbage"}, "cursor"),
            ({"cursor": page["next_cursor"][:-2] + "AA"}, "cursor"),
            ({"cursor": page["next_cursor"], "sort": "-name"}, "cursor"),
            ({"sort": "password"}, "query.sort"),
            ({"limit": 0}, "query.limit"),
            ({"limit": 201}, "query.limit"),
        ):
            response = await world.client.get(url, params=params, headers=msp.admin.headers)
            body = assert_problem(response, 422, "validation_error")
            assert body["errors"][0]["field"] == field, params


class TestDisableAndEnable:
    async def test_a_disabled_client_and_everything_below_refuse_every_call(
        self, world: World, msp: Msp
    ) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        client = await world.tenant(multi["id"], msp.admin)
        local_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/disable",
            json={"ids": [multi["id"]]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        assert response.json()["items"][0]["status"] == "disabled"
        assert (await _tenant_row(world, multi["id"])).status == "disabled"
        for who in (msp.admin, local_admin):
            for path in (f"/v1/tenants/{multi['id']}", f"/v1/tenants/{client['id']}/clients"):
                if who is local_admin and multi["id"] in path:
                    continue  # outside the local admin's reach: absent, not disabled
                assert_problem(
                    await world.client.get(path, headers=who.headers), 403, "tenant_disabled"
                )
        mine = await world.my_tenants(local_admin.headers)
        assert mine[0]["status"] == "disabled"
        # The MSP itself still works, and can enable the account again.
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/enable",
            json={"ids": [multi["id"]]},
            headers=msp.admin.headers,
        )
        assert response.json()["items"][0]["status"] == "enabled"
        assert (
            await world.client.get(f"/v1/tenants/{client['id']}", headers=local_admin.headers)
        ).status_code == 200
        actions = [
            r.action
            for r in await world.rows(
                sa.select(audit_events.c.action)
                .where(audit_events.c.target_id == UUID(multi["id"]))
                .order_by(audit_events.c.id)
            )
        ]
        assert actions == ["tenant.created", "tenant.disabled", "tenant.enabled"]

    async def test_bulk_is_atomic_and_names_every_unknown_id(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        foreign = await world.msp(name="Foreign")
        missing = uuid4()
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/disable",
            json={"ids": [client["id"], str(missing), str(foreign.id), str(msp.id)]},
            headers=msp.admin.headers,
        )
        # The root itself is named for what it is (issue 10): it cannot be disabled.
        body = assert_problem(response, 422, "bulk_refused")
        assert {(e["id"], e["code"]) for e in body["errors"]} == {
            (str(missing), "not_found"),
            (str(foreign.id), "not_found"),
            (str(msp.id), "cannot_disable_root"),
        }
        assert await world.snapshot() == before

    async def test_needs_clients_status(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/disable",
            json={"ids": [client["id"]]},
            headers=reader.headers,
        )
        assert_problem(response, 403, "forbidden")


class TestDeleteClients:
    async def test_needs_the_word_delete(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        before = await world.snapshot()
        for body in ({"ids": [client["id"]]}, {"ids": [client["id"]], "confirm": "yes"}):
            response = await world.client.post(
                f"/v1/tenants/{msp.id}/clients/delete", json=body, headers=msp.admin.headers
            )
            assert_problem(response, 422, "confirmation_required")
        assert await world.snapshot() == before

    async def test_an_account_with_children_needs_cascade(self, world: World, msp: Msp) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        child = await world.tenant(multi["id"], msp.admin)
        tech = await world.user(msp.id, [(child["id"], ["admin"], False)])
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/delete",
            json={"ids": [multi["id"]], "confirm": "delete"},
            headers=msp.admin.headers,
        )
        body = assert_problem(response, 409, "has_children")
        assert body["errors"] == [
            {"id": multi["id"], "code": "has_children", "message": body["errors"][0]["message"]}
        ]
        assert await world.snapshot() == before

        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/delete",
            json={"ids": [multi["id"]], "confirm": "delete", "cascade": True},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        assert set(response.json()["deleted"]) == {multi["id"], child["id"]}
        for tenant_id in (multi["id"], child["id"]):
            assert (await _tenant_row(world, tenant_id)).deleted_at is not None
        assert await world.count(authorizations, authorizations.c.user_id == tech.user_id) == 0
        assert_problem(
            await world.client.get(f"/v1/tenants/{child['id']}", headers=msp.admin.headers),
            404,
            "not_found",
        )
        listed = (
            await world.client.get(
                f"/v1/tenants/{msp.id}/clients",
                params={"descendants": "true"},
                headers=msp.admin.headers,
            )
        ).json()
        assert listed["items"] == []

    async def test_unknown_ids_refuse_the_whole_request(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/delete",
            json={"ids": [client["id"], str(uuid4())], "confirm": "delete"},
            headers=msp.admin.headers,
        )
        assert_problem(response, 404, "not_found")
        assert await world.snapshot() == before

    async def test_needs_clients_delete(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/delete",
            json={"ids": [client["id"]], "confirm": "delete"},
            headers=reader.headers,
        )
        assert_problem(response, 403, "forbidden")


class TestReach:
    async def test_inherited_grants_reach_future_children(self, world: World, msp: Msp) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        manager = await world.user(msp.id, [(multi["id"], ["admin"], True)])
        later = await world.tenant(multi["id"], msp.admin)
        response = await world.client.get(f"/v1/tenants/{later['id']}", headers=manager.headers)
        assert response.status_code == 200

    async def test_a_direct_grant_does_not_reach_below(self, world: World, msp: Msp) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        child = await world.tenant(multi["id"], msp.admin)
        local = await world.user(msp.id, [(multi["id"], ["admin"], False)])
        assert (
            await world.client.get(f"/v1/tenants/{multi['id']}", headers=local.headers)
        ).status_code == 200
        assert_problem(
            await world.client.get(f"/v1/tenants/{child['id']}", headers=local.headers),
            404,
            "not_found",
        )
