"""Agents over HTTP (seed 004): provision, heartbeat, reregister, deregister, reprovision."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from access_api.repositories.orm import agents, audit_events, authorizations
from tests.api.conftest import Login, Msp, World, assert_problem


def agents_url(tenant_id: UUID | str, user_id: UUID | str) -> str:
    return f"/v1/tenants/{tenant_id}/users/{user_id}/agents"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def provision(
    world: World,
    by: Login,
    tenant_id: UUID | str,
    user_id: UUID | str,
    name: str = "Runner",
    *,
    works_in: UUID | str | None = None,
) -> dict[str, Any]:
    body = {"name": name} | ({"tenant_id": str(works_in)} if works_in else {})
    response = await world.client.post(
        agents_url(tenant_id, user_id), json=body, headers=by.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def act(
    world: World, by: Login, tenant_id: UUID | str, user_id: UUID | str, agent_id: str, verb: str
) -> Any:
    return await world.client.post(
        f"{agents_url(tenant_id, user_id)}/{agent_id}/{verb}", headers=by.headers
    )


async def agent_row(world: World, agent_id: str) -> Any:
    (row,) = await world.rows(sa.select(agents).where(agents.c.id == UUID(agent_id)))
    return row


async def heartbeat(world: World, token: str) -> Any:
    return await world.client.post("/v1/agent/heartbeat", headers=bearer(token))


class TestProvision:
    async def test_the_token_is_shown_once_and_stored_only_as_a_keyed_digest(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tester = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        body = await provision(world, msp.admin, client["id"], tester.user_id, "Lab runner")
        assert body["token"].startswith("aag_")
        assert (body["status"], body["name"], body["tenant_id"], body["user_id"]) == (
            "registered",
            "Lab runner",
            client["id"],
            str(tester.user_id),
        )
        assert body["last_seen_at"] is None
        row = await agent_row(world, body["id"])
        assert row.token_hash == world.state.keyring.digest(body["token"])
        assert (row.root_id, row.created_by) == (msp.id, msp.admin.user_id)
        assert all(body["token"] not in str(value) for value in row)
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "agent.provisioned")
        )
        assert event.changes["name"] == {"before": None, "after": "Lab runner"}
        assert body["token"] not in str(event.changes)

    async def test_a_user_can_have_several_agents_listed_with_their_status(
        self, world: World, msp: Msp
    ) -> None:
        tester = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        first = await provision(world, msp.admin, msp.id, tester.user_id, "First")
        world.clock.advance(timedelta(seconds=1))
        second = await provision(world, msp.admin, msp.id, tester.user_id, "Second")
        await act(world, msp.admin, msp.id, tester.user_id, first["id"], "deregister")
        listed = await world.client.get(
            agents_url(msp.id, tester.user_id), headers=msp.admin.headers
        )
        assert [(a["name"], a["status"]) for a in listed.json()["items"]] == [
            ("First", "deregistered"),
            ("Second", "registered"),
        ]
        assert all("token" not in a for a in listed.json()["items"])
        page = await world.client.get(
            agents_url(msp.id, tester.user_id),
            params={"sort": "-name", "limit": 1},
            headers=msp.admin.headers,
        )
        assert [a["id"] for a in page.json()["items"]] == [second["id"]]
        assert page.json()["next_cursor"] is not None

    async def test_needs_agents_manage(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        response = await world.client.post(
            agents_url(msp.id, reader.user_id), json={"name": "Mine"}, headers=reader.headers
        )
        assert_problem(response, 403, "forbidden")
        assert await world.snapshot() == before

    async def test_refuses_people_out_of_reach_and_bad_names(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        client_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        technician = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["admin"], False)]
        )
        other = await world.msp(name="Other MSP")
        before = await world.snapshot()
        response = await world.client.post(
            agents_url(client["id"], technician.user_id),
            json={"name": "Runner"},
            headers=client_admin.headers,
        )
        assert_problem(response, 403, "user_outside_scope")
        response = await world.client.post(
            agents_url(client["id"], uuid4()), json={"name": "Runner"}, headers=client_admin.headers
        )
        assert_problem(response, 404, "not_found")
        for tenant_id in (msp.id, other.id, uuid4()):  # above the context, elsewhere, nowhere
            response = await world.client.post(
                agents_url(client["id"], client_admin.user_id),
                json={"name": "Runner", "tenant_id": str(tenant_id)},
                headers=client_admin.headers,
            )
            assert_problem(response, 404, "not_found")
        for payload in ({"name": ""}, {"name": "   "}, {}, {"name": "x", "status": "registered"}):
            response = await world.client.post(
                agents_url(msp.id, msp.admin.user_id), json=payload, headers=msp.admin.headers
            )
            assert_problem(response, 422, "validation_error")
        assert await world.snapshot() == before


class TestHeartbeat:
    async def test_records_the_agents_last_sign_of_life(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tester = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        body = await provision(world, msp.admin, client["id"], tester.user_id)
        world.clock.advance(timedelta(minutes=5))
        response = await heartbeat(world, body["token"])
        assert response.status_code == 200
        assert response.json() == {
            "agent_id": body["id"],
            "status": "registered",
            "tenant_id": client["id"],
            "user_id": str(tester.user_id),
            "last_seen_at": "2026-11-22T09:05:00Z",
        }
        listed = await world.client.get(
            agents_url(client["id"], tester.user_id), headers=msp.admin.headers
        )
        assert listed.json()["items"][0]["last_seen_at"] == "2026-11-22T09:05:00Z"

    async def test_only_a_live_agent_token_is_accepted(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        assert_problem(await heartbeat(world, "aag_forged"), 401, "unauthenticated")
        assert_problem(await heartbeat(world, msp.admin.token), 401, "unauthenticated")
        missing = await world.client.post("/v1/agent/heartbeat")
        assert_problem(missing, 401, "unauthenticated")
        assert await world.snapshot() == before

    async def test_an_agent_token_serves_no_other_route(self, world: World, msp: Msp) -> None:
        body = await provision(world, msp.admin, msp.id, msp.admin.user_id)
        before = await world.snapshot()
        for method, url in (("GET", "/v1/me"), ("GET", f"/v1/tenants/{msp.id}")):
            response = await world.client.request(method, url, headers=bearer(body["token"]))
            assert_problem(response, 403, "forbidden")
        assert await world.snapshot() == before

    async def test_stops_when_its_user_loses_access_to_its_tenant(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tester = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        body = await provision(world, msp.admin, client["id"], tester.user_id)
        await world.connection.execute(
            sa.delete(authorizations).where(authorizations.c.user_id == tester.user_id)
        )
        before = await world.snapshot()
        assert_problem(await heartbeat(world, body["token"]), 401, "unauthenticated")
        assert await world.snapshot() == before

    async def test_meets_a_disabled_tenant(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tester = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        body = await provision(world, msp.admin, client["id"], tester.user_id)
        await world.client.post(
            f"/v1/tenants/{msp.id}/clients/disable",
            json={"ids": [client["id"]]},
            headers=msp.admin.headers,
        )
        before = await world.snapshot()
        assert_problem(await heartbeat(world, body["token"]), 403, "tenant_disabled")
        assert await world.snapshot() == before
        await world.client.post(
            f"/v1/tenants/{msp.id}/clients/enable",
            json={"ids": [client["id"]]},
            headers=msp.admin.headers,
        )
        assert (await heartbeat(world, body["token"])).status_code == 200


class TestTransitions:
    async def test_deregister_kills_the_token_and_repeating_it_changes_nothing(
        self, world: World, msp: Msp
    ) -> None:
        body = await provision(world, msp.admin, msp.id, msp.admin.user_id)
        response = await act(world, msp.admin, msp.id, msp.admin.user_id, body["id"], "deregister")
        assert response.status_code == 200
        assert response.json()["status"] == "deregistered"
        assert response.json()["token_issued_at"] is None
        assert "token" not in response.json()
        assert_problem(await heartbeat(world, body["token"]), 401, "unauthenticated")
        assert (await agent_row(world, body["id"])).token_hash is None
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "agent.deregistered")
        )
        assert event.changes == {"status": {"before": "registered", "after": "deregistered"}}
        before = await world.snapshot()
        again = await act(world, msp.admin, msp.id, msp.admin.user_id, body["id"], "deregister")
        assert again.status_code == 200
        assert again.json()["status"] == "deregistered"
        assert await world.snapshot() == before

    async def test_reregister_revives_with_a_new_token(self, world: World, msp: Msp) -> None:
        body = await provision(world, msp.admin, msp.id, msp.admin.user_id)
        await act(world, msp.admin, msp.id, msp.admin.user_id, body["id"], "deregister")
        world.clock.advance(timedelta(minutes=1))
        response = await act(world, msp.admin, msp.id, msp.admin.user_id, body["id"], "reregister")
        assert response.status_code == 200
        revived = response.json()
        assert (revived["status"], revived["token_issued_at"]) == (
            "registered",
            "2026-11-22T09:01:00Z",
        )
        assert revived["token"] != body["token"]
        assert (await heartbeat(world, revived["token"])).status_code == 200
        assert_problem(await heartbeat(world, body["token"]), 401, "unauthenticated")
        # On a registered agent it swaps the token too.
        again = await act(world, msp.admin, msp.id, msp.admin.user_id, body["id"], "reregister")
        assert_problem(await heartbeat(world, revived["token"]), 401, "unauthenticated")
        assert (await heartbeat(world, again.json()["token"])).status_code == 200
        assert await world.count(audit_events, audit_events.c.action == "agent.reregistered") == 2

    async def test_reprovision_replaces_a_registered_agents_token(
        self, world: World, msp: Msp
    ) -> None:
        body = await provision(world, msp.admin, msp.id, msp.admin.user_id)
        response = await act(world, msp.admin, msp.id, msp.admin.user_id, body["id"], "reprovision")
        assert response.status_code == 200
        assert response.json()["status"] == "registered"
        assert (await heartbeat(world, response.json()["token"])).status_code == 200
        assert_problem(await heartbeat(world, body["token"]), 401, "unauthenticated")
        assert await world.count(audit_events, audit_events.c.action == "agent.reprovisioned") == 1

    async def test_a_deregistered_agent_is_not_reprovisioned(self, world: World, msp: Msp) -> None:
        body = await provision(world, msp.admin, msp.id, msp.admin.user_id)
        await act(world, msp.admin, msp.id, msp.admin.user_id, body["id"], "deregister")
        before = await world.snapshot()
        response = await act(world, msp.admin, msp.id, msp.admin.user_id, body["id"], "reprovision")
        assert_problem(response, 409, "agent_deregistered")
        assert await world.snapshot() == before

    async def test_agents_out_of_reach_are_absent(self, world: World, msp: Msp) -> None:
        east = await world.tenant(msp.id, msp.admin)
        west = await world.tenant(msp.id, msp.admin)
        west_admin = await world.user(msp.id, [(west["id"], ["admin"], False)])
        tester = await world.user(
            msp.id, [(east["id"], ["read_only"], False), (west["id"], ["read_only"], False)]
        )
        other = await world.user(msp.id, [(east["id"], ["read_only"], False)])
        response = await world.client.post(
            agents_url(msp.id, tester.user_id),
            json={"name": "East runner", "tenant_id": east["id"]},
            headers=msp.admin.headers,
        )
        in_east = response.json()
        assert (response.status_code, in_east["tenant_id"]) == (201, east["id"])
        # The tester now works only in west: west's admin manages them, not east's agents.
        await world.connection.execute(
            sa.delete(authorizations).where(
                authorizations.c.user_id == tester.user_id,
                authorizations.c.tenant_id == UUID(east["id"]),
            )
        )
        before = await world.snapshot()
        # Provisioned in east: not reachable from west, nor under another user, nor unknown.
        for tenant_id, by, user_id, agent_id in (
            (west["id"], west_admin, tester.user_id, in_east["id"]),
            (east["id"], msp.admin, other.user_id, in_east["id"]),
            (msp.id, msp.admin, tester.user_id, str(uuid4())),
        ):
            response = await act(world, by, tenant_id, user_id, agent_id, "deregister")
            assert_problem(response, 404, "not_found")
        listed = await world.client.get(
            agents_url(west["id"], tester.user_id), headers=west_admin.headers
        )
        assert listed.json()["items"] == []
        assert await world.snapshot() == before
        # From the MSP, above both, it is there.
        response = await act(world, msp.admin, msp.id, tester.user_id, in_east["id"], "deregister")
        assert response.status_code == 200


class TestDeletionEndsAgents:
    async def test_deleting_a_user_in_a_client_ends_their_agents_there_only(
        self, world: World, msp: Msp
    ) -> None:
        east = await world.tenant(msp.id, msp.admin)
        west = await world.tenant(msp.id, msp.admin)
        tester = await world.user(
            msp.id, [(east["id"], ["read_only"], False), (west["id"], ["read_only"], False)]
        )
        in_east = await provision(world, msp.admin, msp.id, tester.user_id, works_in=east["id"])
        in_west = await provision(world, msp.admin, msp.id, tester.user_id, works_in=west["id"])
        admins = await provision(world, msp.admin, msp.id, msp.admin.user_id, works_in=east["id"])
        response = await world.client.post(
            f"/v1/tenants/{east['id']}/users/delete",
            json={"ids": [str(tester.user_id)]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        (row,) = await world.rows(sa.select(agents).where(agents.c.id == UUID(in_east["id"])))
        assert (row.status, row.token_hash) == ("deregistered", None)
        assert_problem(await heartbeat(world, in_east["token"]), 401, "unauthenticated")
        for alive in (in_west, admins):
            assert (await heartbeat(world, alive["token"])).status_code == 200

    async def test_deleting_a_client_ends_every_agent_in_it(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        agent = await provision(world, msp.admin, msp.id, msp.admin.user_id, works_in=client["id"])
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/delete",
            json={"ids": [client["id"]], "confirm": "delete"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        (row,) = await world.rows(sa.select(agents).where(agents.c.id == UUID(agent["id"])))
        assert row.status == "deregistered"
        assert_problem(await heartbeat(world, agent["token"]), 401, "unauthenticated")
