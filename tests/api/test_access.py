"""Access explained, and time-limited grants that stop counting at their expiry with no job."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from access_api.domain.access import Grant, GrantChange
from access_api.repositories.orm import authorizations
from access_api.use_cases import Work
from tests.api.conftest import Login, Msp, World, assert_problem, delivered
from tests.mail import SmtpServer, accept_token


async def grant(
    world: World,
    root_id: UUID,
    user: Login,
    tenant_id: Any,
    roles: Iterable[str],
    *,
    include_descendants: bool = False,
    expires_at: datetime | None = None,
) -> None:
    """Add a grant (with an expiry, which World.user does not set) through the repository."""
    async with world.state.database.session() as session:
        work = Work.over(session, world.state)
        await work.grants.apply(
            [
                GrantChange(
                    before=None,
                    after=Grant(
                        user_id=user.user_id,
                        tenant_id=UUID(str(tenant_id)),
                        roles=frozenset(roles),
                        include_descendants=include_descendants,
                        expires_at=expires_at,
                    ),
                )
            ],
            root_id=root_id,
            roles_by_key=await work.roles.of_tree(root_id),
            now=world.clock.now(),
        )
        await session.commit()


async def explained(
    world: World, context: Any, user: Login, by: Login
) -> dict[str, dict[str, Any]]:
    response = await world.client.get(
        f"/v1/tenants/{context}/users/{user.user_id}/access", headers=by.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == str(user.user_id)
    return {
        tenant["tenant_id"]: {
            "blocked_by": tenant["blocked_by"],
            "permissions": {p["permission"]: p for p in tenant["permissions"]},
        }
        for tenant in body["tenants"]
    }


class TestAccessExplained:
    async def test_names_every_grant_behind_each_permission(self, world: World, msp: Msp) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        client = await world.tenant(multi["id"], msp.admin)
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        until = world.clock.now() + timedelta(days=7)
        await grant(world, msp.id, tech, client["id"], ["admin"], expires_at=until)
        access = await explained(world, msp.id, tech, msp.admin)
        assert set(access) == {str(msp.id), multi["id"], client["id"]}
        on_root = access[str(msp.id)]["permissions"]
        assert set(on_root) == {p for p in on_root if p.endswith(".read")}
        assert on_root["users.read"]["granted_by"] == [
            {"tenant_id": str(msp.id), "role": "read_only", "via": "direct", "expires_at": None}
        ]
        on_client = access[client["id"]]["permissions"]
        assert on_client["users.read"]["granted_by"] == [
            {
                "tenant_id": client["id"],
                "role": "admin",
                "via": "direct",
                "expires_at": until.isoformat().replace("+00:00", "Z"),
            },
            {"tenant_id": str(msp.id), "role": "read_only", "via": "inherited", "expires_at": None},
        ]
        assert [s["role"] for s in on_client["users.delete"]["granted_by"]] == ["admin"]
        assert on_client["users.delete"]["blocked_by"] is None
        assert "users.delete" not in access[multi["id"]]["permissions"]

    async def test_from_a_client_only_that_client_and_below_is_explained(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        access = await explained(world, client["id"], tech, msp.admin)
        assert set(access) == {client["id"]}
        granted_by = access[client["id"]]["permissions"]["tenants.read"]["granted_by"]
        assert granted_by[0]["via"] == "inherited"

    async def test_a_disabled_tenant_blocks_every_permission_there(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(client["id"], ["admin"], False)])
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/disable",
            json={"ids": [client["id"]]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        access = await explained(world, msp.id, tech, msp.admin)
        assert access[client["id"]]["blocked_by"] == "tenant_disabled"
        blocked = {p["blocked_by"] for p in access[client["id"]]["permissions"].values()}
        assert blocked == {"tenant_disabled"}

    async def test_refusals_change_nothing(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        above = await world.user(msp.id, [(msp.id, ["read_only"], False)])
        other = await world.msp()
        role = await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={"key": "viewer", "name": "Viewer", "permissions": ["tenants.read"]},
            headers=msp.admin.headers,
        )
        assert role.status_code == 201, role.text
        viewer = await world.user(msp.id, [(client["id"], ["viewer"], False)])
        before = await world.snapshot(ignore={"sessions"})
        cases = [
            # a user the context cannot see is absent, and so is one of another tree
            (client["id"], above.user_id, msp.admin, 404, "not_found"),
            (msp.id, other.admin.user_id, msp.admin, 404, "not_found"),
            (msp.id, UUID(int=7), msp.admin, 404, "not_found"),
            # users.read is needed
            (client["id"], above.user_id, viewer, 403, "forbidden"),
            # another tree's admin does not reach this one
            (client["id"], viewer.user_id, other.admin, 404, "not_found"),
        ]
        for context, user_id, by, status, code in cases:
            response = await world.client.get(
                f"/v1/tenants/{context}/users/{user_id}/access", headers=by.headers
            )
            assert_problem(response, status, code)
        assert await world.snapshot(ignore={"sessions"}) == before


class TestTimeLimitedGrant:
    async def test_stops_working_at_its_expiry_with_no_job(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        temp = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        until = world.clock.now() + timedelta(minutes=30)
        await grant(
            world, msp.id, temp, msp.id, ["admin"], include_descendants=True, expires_at=until
        )
        export = f"/v1/tenants/{client['id']}/users/export"
        assert (await world.client.get(export, headers=temp.headers)).status_code == 200
        world.clock.advance(timedelta(minutes=29))
        assert (await world.client.get(export, headers=temp.headers)).status_code == 200
        world.clock.advance(timedelta(minutes=1))
        assert_problem(await world.client.get(export, headers=temp.headers), 403, "forbidden")
        # the root was reached only through the expired grant: absent now
        response = await world.client.get(f"/v1/tenants/{msp.id}", headers=temp.headers)
        assert_problem(response, 404, "not_found")
        access = await explained(world, msp.id, temp, msp.admin)
        assert set(access) == {client["id"]}
        assert "users.export" not in access[client["id"]]["permissions"]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class TestExpiringAuthorizations:
    async def test_the_tenant_view_sets_and_lists_an_expiry(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        temp = await world.user(msp.id, [])
        until = world.clock.now() + timedelta(hours=2)
        path = f"/v1/tenants/{client['id']}/authorizations"
        response = await world.client.put(
            path,
            json={
                "items": [
                    {"user_id": str(temp.user_id), "roles": ["admin"], "expires_at": _iso(until)}
                ]
            },
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        listed = (await world.client.get(path, headers=msp.admin.headers)).json()["items"]
        assert [(i["user"]["id"], i["expires_at"]) for i in listed] == [
            (str(temp.user_id), _iso(until))
        ]
        temp = await world.login(temp.email)
        assert (
            await world.client.get(f"/v1/tenants/{client['id']}", headers=temp.headers)
        ).status_code == 200
        world.clock.advance(timedelta(hours=2))
        temp = await world.login(temp.email)
        response = await world.client.get(f"/v1/tenants/{client['id']}", headers=temp.headers)
        assert_problem(response, 403, "no_access")

    async def test_the_user_view_sets_and_lists_an_expiry(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        temp = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        until = world.clock.now() + timedelta(days=30)
        path = f"/v1/tenants/{msp.id}/users/{temp.user_id}/authorizations"
        response = await world.client.put(
            path,
            json={
                "items": [
                    {"tenant_id": client["id"], "roles": ["admin"], "expires_at": _iso(until)}
                ]
            },
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        shown = (await world.client.get(path, headers=msp.admin.headers)).json()
        assert [(g["tenant_id"], g["expires_at"]) for g in shown["items"]] == [
            (client["id"], _iso(until))
        ]

    async def test_an_expiry_in_the_past_is_refused_in_both_views(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        temp = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        past = _iso(world.clock.now() - timedelta(seconds=1))
        before = await world.snapshot(ignore={"sessions"})
        response = await world.client.put(
            f"/v1/tenants/{client['id']}/authorizations",
            json={
                "items": [{"user_id": str(temp.user_id), "roles": ["admin"], "expires_at": past}]
            },
            headers=msp.admin.headers,
        )
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["code"] == "in_the_past"
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/users/{temp.user_id}/authorizations",
            json={"items": [{"tenant_id": client["id"], "roles": ["admin"], "expires_at": past}]},
            headers=msp.admin.headers,
        )
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["code"] == "in_the_past"
        response = await world.client.put(
            f"/v1/tenants/{client['id']}/authorizations",
            json={
                "items": [
                    {
                        "user_id": str(temp.user_id),
                        "roles": ["admin"],
                        "expires_at": "2030-01-01T00:00:00",
                    }
                ]
            },
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "validation_error")  # a time without a zone is ambiguous
        assert await world.snapshot(ignore={"sessions"}) == before

    async def test_the_last_admin_rule_ignores_admins_whose_grant_expires(
        self, world: World, msp: Msp
    ) -> None:
        helper = await world.user(msp.id, [])
        await grant(
            world,
            msp.id,
            helper,
            msp.id,
            ["admin"],
            include_descendants=True,
            expires_at=world.clock.now() + timedelta(days=1),
        )
        helper = await world.login(helper.email)
        before = await world.snapshot(ignore={"sessions"})
        # removing the only admin who stays
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={"items": [{"user_id": str(msp.admin.user_id), "roles": []}]},
            headers=helper.headers,
        )
        assert_problem(response, 409, "last_admin")
        # or making their admin grant expire
        response = await world.client.put(
            f"/v1/tenants/{msp.id}/authorizations",
            json={
                "items": [
                    {
                        "user_id": str(msp.admin.user_id),
                        "roles": ["admin"],
                        "include_descendants": True,
                        "expires_at": _iso(world.clock.now() + timedelta(days=365)),
                    }
                ]
            },
            headers=helper.headers,
        )
        assert_problem(response, 409, "last_admin")
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/delete",
            json={"ids": [str(msp.admin.user_id)]},
            headers=helper.headers,
        )
        assert response.status_code == 409, response.text
        assert response.json()["code"] in {"last_admin", "bulk_refused"}
        assert await world.snapshot(ignore={"sessions"}) == before


class TestExpiringInvitations:
    async def test_an_offer_with_an_expiry_gives_time_limited_access(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        until = world.clock.now() + timedelta(minutes=45)
        offer = {"tenant_id": client["id"], "roles": ["admin"], "expires_at": _iso(until)}
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={"emails": ["temp@example.com"], "authorizations": [offer]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 201, response.text
        (item,) = response.json()["items"]
        assert item["invitation"]["authorizations"][0]["expires_at"] == _iso(until)
        mail = (await delivered(world, smtp))["temp@example.com"]
        accepted = await world.client.post(
            "/v1/invitations/accept",
            json={
                "token": accept_token(mail),
                "first_name": "Tem",
                "last_name": "Porary",
                "password": "a long and fresh passphrase",
            },
        )
        assert accepted.status_code == 201, accepted.text
        (row,) = await world.rows(
            sa.select(authorizations.c.expires_at).where(
                authorizations.c.tenant_id == UUID(client["id"])
            )
        )
        assert row.expires_at == until
        token = {"Authorization": f"Bearer {accepted.json()['access_token']}"}
        assert (
            await world.client.get(f"/v1/tenants/{client['id']}", headers=token)
        ).status_code == 200
        world.clock.advance(timedelta(minutes=45))
        response = await world.client.get(f"/v1/tenants/{client['id']}", headers=token)
        assert_problem(response, 403, "no_access")

    async def test_an_existing_member_gets_the_offer_at_once_with_its_end(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        member = await world.user(msp.id, [(msp.id, ["read_only"], False)])
        until = world.clock.now() + timedelta(days=3)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={
                "emails": [member.email],
                "authorizations": [
                    {"tenant_id": client["id"], "roles": ["admin"], "expires_at": _iso(until)}
                ],
            },
            headers=msp.admin.headers,
        )
        assert response.status_code == 201, response.text
        (row,) = await world.rows(
            sa.select(authorizations.c.expires_at).where(
                authorizations.c.tenant_id == UUID(client["id"]),
                authorizations.c.user_id == member.user_id,
            )
        )
        assert row.expires_at == until

    async def test_an_offer_ending_in_the_past_is_refused(self, world: World, msp: Msp) -> None:
        before = await world.snapshot(ignore={"sessions"})
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={
                "emails": ["late@example.com"],
                "authorizations": [{"roles": ["admin"], "expires_at": _iso(world.clock.now())}],
            },
            headers=msp.admin.headers,
        )
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["code"] == "in_the_past"
        assert await world.snapshot(ignore={"sessions"}) == before
