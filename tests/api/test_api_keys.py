"""User API keys over HTTP (seed 000): generate, use, regenerate, revoke, bulk revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from access_api.domain.audit import SYSTEM
from access_api.domain.invitations import Offer
from access_api.repositories.orm import api_keys, audit_events, authorizations, members
from access_api.use_cases import Work
from access_api.use_cases import members as member_cases
from tests.api.conftest import Login, Msp, World, assert_problem


def keys_url(tenant_id: UUID | str, user_id: UUID | str) -> str:
    return f"/v1/tenants/{tenant_id}/users/{user_id}/api-keys"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def generate(
    world: World, by: Login, tenant_id: UUID | str, user_id: UUID | str, **body: Any
) -> dict[str, Any]:
    response = await world.client.post(keys_url(tenant_id, user_id), json=body, headers=by.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def key_row(world: World, key_id: str | UUID) -> Any:
    (row,) = await world.rows(sa.select(api_keys).where(api_keys.c.id == UUID(str(key_id))))
    return row


async def join_tree(world: World, user_id: UUID, root_id: UUID, roles: list[str]) -> None:
    """Make an existing user a member of another MSP tree, with roles on its root."""
    async with world.state.database.session() as session:
        work = Work.over(session, world.state)
        user, tenant = await work.users.get(user_id), await work.tenants.get(root_id)
        assert user is not None
        assert tenant is not None
        offer = Offer(tenant_id=root_id, roles=frozenset(roles), include_descendants=True)
        await member_cases.join(
            work,
            SYSTEM,
            root_id=root_id,
            user=user,
            password_hash=None,
            offers=[offer],
            tenant=tenant,
        )
        await session.commit()


class TestGenerate:
    async def test_the_secret_is_shown_once_and_stored_only_as_a_keyed_digest(
        self, world: World, msp: Msp
    ) -> None:
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        body = await generate(world, msp.admin, msp.id, tech.user_id, name="LabTech sync")
        secret = body["key"]
        assert secret.startswith("aak_")
        assert body["prefix"] == secret[:12]
        assert (body["name"], body["user_id"]) == ("LabTech sync", str(tech.user_id))
        assert (body["last_used_at"], body["expires_at"], body["revoked_at"]) == (None, None, None)
        row = await key_row(world, body["id"])
        assert row.secret_hash == world.state.keyring.digest(secret)
        assert (row.root_id, row.user_id, row.created_by) == (
            msp.id,
            tech.user_id,
            msp.admin.user_id,
        )
        assert all(secret not in str(value) for value in row)
        listed = await world.client.get(keys_url(msp.id, tech.user_id), headers=msp.admin.headers)
        assert [item["id"] for item in listed.json()["items"]] == [body["id"]]
        assert "key" not in listed.json()["items"][0]
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "api_key.created")
        )
        assert event.target_id == UUID(body["id"])
        assert event.changes["name"] == {"before": None, "after": "LabTech sync"}
        assert secret not in str(event.changes)
        assert row.secret_hash not in str(event.changes)

    async def test_a_name_is_optional_and_an_expiry_must_lie_ahead(
        self, world: World, msp: Msp
    ) -> None:
        body = await generate(world, msp.admin, msp.id, msp.admin.user_id)
        assert body["name"] == "API key"
        before = await world.snapshot()
        for payload, field in (
            ({"expires_at": "2026-11-22T08:59:00Z"}, "expires_at"),
            ({"expires_at": "2026-12-01T00:00:00"}, "expires_at"),  # no time zone
            ({"name": "   "}, "name"),
            ({"name": "x", "owner_user_id": str(msp.admin.user_id)}, "owner_user_id"),
        ):
            response = await world.client.post(
                keys_url(msp.id, msp.admin.user_id), json=payload, headers=msp.admin.headers
            )
            problem = assert_problem(response, 422, "validation_error")
            assert problem["errors"][0]["field"] == field, payload
        assert await world.snapshot() == before

    async def test_users_manage_their_own_keys_without_the_permission(
        self, world: World, msp: Msp
    ) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        body = await generate(world, reader, msp.id, reader.user_id, name="mine")
        response = await world.client.post(
            f"{keys_url(msp.id, reader.user_id)}/{body['id']}/regenerate", headers=reader.headers
        )
        assert response.status_code == 200
        response = await world.client.delete(
            f"{keys_url(msp.id, reader.user_id)}/{body['id']}", headers=reader.headers
        )
        assert response.status_code == 204

    async def test_someone_elses_keys_need_api_keys_manage(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        response = await world.client.post(
            keys_url(msp.id, msp.admin.user_id), json={}, headers=reader.headers
        )
        assert_problem(response, 403, "forbidden")
        response = await world.client.get(
            keys_url(msp.id, msp.admin.user_id), headers=reader.headers
        )
        assert_problem(response, 403, "forbidden")
        assert await world.snapshot() == before

    async def test_a_client_admin_cannot_key_an_msp_technician(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        client_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        # The technician works on the client too, but also at the MSP: out of the client's reach.
        technician = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["admin"], False)]
        )
        before = await world.snapshot()
        response = await world.client.post(
            keys_url(client["id"], technician.user_id), json={}, headers=client_admin.headers
        )
        assert_problem(response, 403, "user_outside_scope")
        assert await world.snapshot() == before
        staff = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        await generate(world, client_admin, client["id"], staff.user_id)

    async def test_users_out_of_sight_are_absent(self, world: World, msp: Msp) -> None:
        other = await world.msp(name="Other MSP")
        before = await world.snapshot()
        for user_id in (other.admin.user_id, uuid4()):
            response = await world.client.post(
                keys_url(msp.id, user_id), json={}, headers=msp.admin.headers
            )
            assert_problem(response, 404, "not_found")
        assert await world.snapshot() == before


class TestUsingAKey:
    async def test_a_key_acts_as_its_user_with_their_current_roles(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin, name="Acme")
        tech = await world.user(msp.id, [(client["id"], ["admin"], False)])
        body = await generate(
            world, tech, client["id"], tech.user_id, expires_at="2027-01-01T00:00:00Z"
        )
        me = await world.client.get("/v1/me", headers=bearer(body["key"]))
        assert me.status_code == 200
        assert me.json()["id"] == str(tech.user_id)
        assert me.json()["credential"] == {
            "kind": "api_key",
            "id": body["id"],
            "expires_at": "2027-01-01T00:00:00Z",
        }
        assert [g["tenant"]["name"] for g in me.json()["grants"]] == ["Acme"]
        key = bearer(body["key"])
        assert [t["name"] for t in await world.my_tenants(key)] == ["Acme"]
        patch = await world.client.patch(
            f"/v1/tenants/{client['id']}", json={"name": "Acme 2"}, headers=bearer(body["key"])
        )
        assert patch.status_code == 200
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "tenant.updated")
        )
        assert (event.actor_user_id, event.actor_kind) == (tech.user_id, "api_key")
        # Demoted: the key can read, no longer write.
        await world.connection.execute(
            sa.delete(authorizations).where(authorizations.c.user_id == tech.user_id)
        )
        demoted = await world.client.patch(
            f"/v1/tenants/{client['id']}", json={"name": "Acme 3"}, headers=bearer(body["key"])
        )
        assert_problem(demoted, 403, "no_access")

    async def test_last_used_at_is_written_at_most_once_a_minute(
        self, world: World, msp: Msp
    ) -> None:
        body = await generate(world, msp.admin, msp.id, msp.admin.user_id)
        start = world.clock.now()
        assert (await world.client.get("/v1/me", headers=bearer(body["key"]))).status_code == 200
        assert (await key_row(world, body["id"])).last_used_at == start
        world.clock.advance(timedelta(seconds=59))
        assert (await world.client.get("/v1/me", headers=bearer(body["key"]))).status_code == 200
        assert (await key_row(world, body["id"])).last_used_at == start
        world.clock.advance(timedelta(seconds=1))
        assert (await world.client.get("/v1/me", headers=bearer(body["key"]))).status_code == 200
        assert (await key_row(world, body["id"])).last_used_at == start + timedelta(seconds=60)
        listed = await world.client.get(
            keys_url(msp.id, msp.admin.user_id), headers=msp.admin.headers
        )
        assert listed.json()["items"][0]["last_used_at"] == "2026-11-22T09:01:00Z"

    async def test_an_expired_key_is_unauthenticated(self, world: World, msp: Msp) -> None:
        body = await generate(
            world, msp.admin, msp.id, msp.admin.user_id, expires_at="2026-11-22T10:00:00Z"
        )
        world.clock.advance(timedelta(minutes=59))
        assert (await world.client.get("/v1/me", headers=bearer(body["key"]))).status_code == 200
        world.clock.advance(timedelta(minutes=1))
        before = await world.snapshot()
        response = await world.client.get("/v1/me", headers=bearer(body["key"]))
        assert_problem(response, 401, "unauthenticated")
        assert await world.snapshot() == before

    async def test_a_key_stops_when_its_user_leaves_the_tree(self, world: World, msp: Msp) -> None:
        tech = await world.user(msp.id, [(msp.id, ["admin"], True)])
        body = await generate(world, msp.admin, msp.id, tech.user_id)
        assert (await world.client.get("/v1/me", headers=bearer(body["key"]))).status_code == 200
        # What deletion at the root does (seed 000): grants and membership end.
        await world.connection.execute(
            sa.delete(authorizations).where(authorizations.c.user_id == tech.user_id)
        )
        await world.connection.execute(sa.delete(members).where(members.c.user_id == tech.user_id))
        response = await world.client.get("/v1/me", headers=bearer(body["key"]))
        assert_problem(response, 401, "unauthenticated")

    async def test_a_key_meets_a_disabled_tenant_like_any_credential(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        body = await generate(world, msp.admin, msp.id, tech.user_id)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/disable",
            json={"ids": [client["id"]]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        response = await world.client.get(
            f"/v1/tenants/{client['id']}", headers=bearer(body["key"])
        )
        assert_problem(response, 403, "tenant_disabled")

    async def test_a_key_acts_only_in_the_tree_it_was_made_in(self, world: World, msp: Msp) -> None:
        other = await world.msp(name="Other MSP")
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        await join_tree(world, tech.user_id, other.id, ["read_only"])
        body = await generate(world, tech, msp.id, tech.user_id)
        assert (
            await world.client.get(f"/v1/tenants/{msp.id}", headers=bearer(body["key"]))
        ).status_code == 200
        response = await world.client.get(f"/v1/tenants/{other.id}", headers=bearer(body["key"]))
        assert_problem(response, 404, "not_found")
        mine = await world.my_tenants(bearer(body["key"]))
        assert [t["id"] for t in mine] == [str(msp.id)]
        # Nor is it listed, or managed, from the other tree.
        listed = await world.client.get(keys_url(other.id, tech.user_id), headers=tech.headers)
        assert listed.json()["items"] == []
        response = await world.client.delete(
            f"{keys_url(other.id, tech.user_id)}/{body['id']}", headers=tech.headers
        )
        assert_problem(response, 404, "not_found")

    async def test_forged_keys_are_unauthenticated(self, world: World) -> None:
        response = await world.client.get("/v1/me", headers=bearer("aak_forged"))
        assert_problem(response, 401, "unauthenticated")


class TestRegenerate:
    async def test_the_old_secret_dies_at_once_and_the_new_one_works(
        self, world: World, msp: Msp
    ) -> None:
        body = await generate(world, msp.admin, msp.id, msp.admin.user_id, name="sync")
        response = await world.client.post(
            f"{keys_url(msp.id, msp.admin.user_id)}/{body['id']}/regenerate",
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        renewed = response.json()
        assert (renewed["id"], renewed["name"]) == (body["id"], "sync")
        assert renewed["key"] != body["key"]
        assert renewed["prefix"] == renewed["key"][:12]
        assert_problem(
            await world.client.get("/v1/me", headers=bearer(body["key"])), 401, "unauthenticated"
        )
        assert (await world.client.get("/v1/me", headers=bearer(renewed["key"]))).status_code == 200
        row = await key_row(world, body["id"])
        assert (row.secret_hash, row.prefix) == (
            world.state.keyring.digest(renewed["key"]),
            renewed["prefix"],
        )
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "api_key.regenerated")
        )
        assert event.changes == {"prefix": {"before": body["prefix"], "after": renewed["prefix"]}}

    async def test_revoked_and_unknown_keys_are_absent_and_expired_ones_refused(
        self, world: World, msp: Msp
    ) -> None:
        url = keys_url(msp.id, msp.admin.user_id)
        revoked = await generate(world, msp.admin, msp.id, msp.admin.user_id)
        await world.client.delete(f"{url}/{revoked['id']}", headers=msp.admin.headers)
        expiring = await generate(
            world, msp.admin, msp.id, msp.admin.user_id, expires_at="2026-11-22T09:30:00Z"
        )
        world.clock.advance(timedelta(minutes=30))
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        for key_id in (revoked["id"], uuid4()):
            response = await world.client.post(
                f"{url}/{key_id}/regenerate", headers=msp.admin.headers
            )
            assert_problem(response, 404, "not_found")
        # A key is found only under its own user.
        response = await world.client.post(
            f"{keys_url(msp.id, tech.user_id)}/{expiring['id']}/regenerate",
            headers=msp.admin.headers,
        )
        assert_problem(response, 404, "not_found")
        response = await world.client.post(
            f"{url}/{expiring['id']}/regenerate", headers=msp.admin.headers
        )
        assert_problem(response, 409, "api_key_expired")
        assert await world.snapshot() == before


class TestRevoke:
    async def test_a_revoked_key_stops_at_once_and_leaves_the_list(
        self, world: World, msp: Msp
    ) -> None:
        kept = await generate(world, msp.admin, msp.id, msp.admin.user_id, name="kept")
        gone = await generate(world, msp.admin, msp.id, msp.admin.user_id, name="gone")
        url = keys_url(msp.id, msp.admin.user_id)
        response = await world.client.delete(f"{url}/{gone['id']}", headers=msp.admin.headers)
        assert response.status_code == 204
        assert_problem(
            await world.client.get("/v1/me", headers=bearer(gone["key"])), 401, "unauthenticated"
        )
        assert (await world.client.get("/v1/me", headers=bearer(kept["key"]))).status_code == 200
        listed = await world.client.get(url, headers=msp.admin.headers)
        assert [item["name"] for item in listed.json()["items"]] == ["kept"]
        assert (await key_row(world, gone["id"])).revoked_at == world.clock.now()
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "api_key.revoked")
        )
        assert event.target_id == UUID(gone["id"])
        before = await world.snapshot()
        again = await world.client.delete(f"{url}/{gone['id']}", headers=msp.admin.headers)
        assert_problem(again, 404, "not_found")
        assert await world.snapshot() == before


class TestBulkRevoke:
    async def test_revokes_every_key_of_the_listed_users_only(self, world: World, msp: Msp) -> None:
        first = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        second = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        bystander = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        keys = [
            await generate(world, msp.admin, msp.id, user.user_id)
            for user in (first, first, second, bystander)
        ]
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/api-keys/revoke",
            json={"user_ids": [str(first.user_id), str(second.user_id), str(first.user_id)]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        assert {item["id"] for item in response.json()["items"]} == {k["id"] for k in keys[:3]}
        for key in keys[:3]:
            assert_problem(
                await world.client.get("/v1/me", headers=bearer(key["key"])), 401, "unauthenticated"
            )
        assert (await world.client.get("/v1/me", headers=bearer(keys[3]["key"]))).status_code == 200
        assert await world.count(audit_events, audit_events.c.action == "api_key.revoked") == 3

    async def test_is_atomic_and_names_every_refused_user(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        client_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        staff = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        technician = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["admin"], False)]
        )
        await generate(world, client_admin, client["id"], staff.user_id)
        stranger = uuid4()
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{client['id']}/api-keys/revoke",
            json={"user_ids": [str(staff.user_id), str(technician.user_id), str(stranger)]},
            headers=client_admin.headers,
        )
        body = assert_problem(response, 422, "bulk_refused")
        assert {(item["id"], item["code"]) for item in body["errors"]} == {
            (str(technician.user_id), "user_outside_scope"),
            (str(stranger), "not_found"),
        }
        assert await world.snapshot() == before

    async def test_needs_api_keys_manage(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        await generate(world, reader, msp.id, reader.user_id)
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/api-keys/revoke",
            json={"user_ids": [str(reader.user_id)]},
            headers=reader.headers,
        )
        assert_problem(response, 403, "forbidden")
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/api-keys/revoke",
            json={"user_ids": []},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "validation_error")
        assert await world.snapshot() == before


class TestList:
    async def test_pages_through_keys_in_a_chosen_order(self, world: World, msp: Msp) -> None:
        for name in ("charlie", "alpha", "bravo"):
            await generate(world, msp.admin, msp.id, msp.admin.user_id, name=name)
            world.clock.advance(timedelta(seconds=1))
        url = keys_url(msp.id, msp.admin.user_id)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"sort": "name", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await world.client.get(url, params=params, headers=msp.admin.headers)).json()
            seen += [item["name"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["alpha", "bravo", "charlie"]
        newest = await world.client.get(url, headers=msp.admin.headers)
        assert [item["name"] for item in newest.json()["items"]] == ["bravo", "alpha", "charlie"]


class TestUserDeletionEndsKeys:
    async def test_deleting_a_user_at_the_root_revokes_their_keys_in_that_tree_only(
        self, world: World, msp: Msp
    ) -> None:
        other = await world.msp(name="Other MSP")
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        await join_tree(world, tech.user_id, other.id, ["read_only"])
        here = await generate(world, tech, msp.id, tech.user_id)
        there = await generate(world, tech, other.id, tech.user_id)
        kept = await generate(world, msp.admin, msp.id, msp.admin.user_id)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/delete",
            json={"ids": [str(tech.user_id)]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        (row,) = await world.rows(sa.select(api_keys).where(api_keys.c.id == UUID(here["id"])))
        assert row.revoked_at is not None
        assert_problem(
            await world.client.get("/v1/me", headers=bearer(here["key"])), 401, "unauthenticated"
        )
        for alive in (there, kept):
            assert (
                await world.client.get("/v1/me", headers=bearer(alive["key"]))
            ).status_code == 200
        actions = [
            r.action
            for r in await world.rows(
                sa.select(audit_events.c.action).where(audit_events.c.target_id == UUID(here["id"]))
            )
        ]
        assert "api_key.revoked" in actions

    async def test_deleting_a_user_from_a_client_keeps_their_keys(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["admin"], False)]
        )
        key = await generate(world, tech, msp.id, tech.user_id)
        await world.client.post(
            f"/v1/tenants/{client['id']}/users/delete",
            json={"ids": [str(tech.user_id)]},
            headers=msp.admin.headers,
        )
        me = await world.client.get("/v1/me", headers=bearer(key["key"]))
        assert me.status_code == 200
        assert [g["tenant"]["id"] for g in me.json()["grants"]] == [str(msp.id)]
        assert [t["id"] for t in await world.my_tenants(bearer(key["key"]))] == [str(msp.id)]
