"""Users seen from a tenant (seeds 000, 003): list, view, edit, delete; the own profile."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from access_api.repositories.orm import audit_events, authorizations, members, sessions, users
from tests.api.conftest import PASSWORD, Login, Msp, World, assert_problem


async def _user_row(world: World, user_id: UUID) -> Any:
    (row,) = await world.rows(sa.select(users).where(users.c.id == user_id))
    return row


class TestListUsers:
    async def test_lists_users_with_access_here_or_below_with_roles_and_status(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        other = await world.tenant(msp.id, msp.admin)
        local = await world.user(msp.id, [(client["id"], ["admin"], False)], email="local@acme.com")
        await world.user(msp.id, [(other["id"], ["admin"], False)], email="other@zeta.com")
        await world.user(msp.id, [], email="roleless@acme.com")
        url_root = f"/v1/tenants/{msp.id}/users"
        at_root = (await world.client.get(url_root, headers=msp.admin.headers)).json()
        by_email = {u["email"]: u for u in at_root["items"]}
        assert set(by_email) == {
            msp.admin.email,
            "local@acme.com",
            "other@zeta.com",
            "roleless@acme.com",
        }
        assert by_email[msp.admin.email]["roles"] == ["admin"]
        assert by_email["local@acme.com"]["roles"] == []  # no role on the MSP itself
        assert by_email["local@acme.com"]["status"] == "active"
        assert by_email["roleless@acme.com"]["status"] == "no_access"

        at_client = (
            await world.client.get(f"/v1/tenants/{client['id']}/users", headers=local.headers)
        ).json()
        roles = {u["email"]: u["roles"] for u in at_client["items"]}
        # The MSP admin reaches the client through an inheritable grant; the other client's
        # user and the roleless member are not visible from here.
        assert roles == {msp.admin.email: ["admin"], "local@acme.com": ["admin"]}

    async def test_filters_and_sorts(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        await world.user(msp.id, [(client["id"], ["read_only"], False)], email="ann@acme.com")
        await world.user(msp.id, [(client["id"], ["admin"], False)], email="bob@acme.com")

        async def emails(**params: str) -> list[str]:
            response = await world.client.get(
                f"/v1/tenants/{msp.id}/users", params=params, headers=msp.admin.headers
            )
            assert response.status_code == 200, response.text
            return [u["email"] for u in response.json()["items"]]

        assert await emails(q="ACME") == ["ann@acme.com", "bob@acme.com"]
        assert await emails(q="acme", sort="-email") == ["bob@acme.com", "ann@acme.com"]
        assert await emails(role="read_only") == ["ann@acme.com"]
        assert await emails(role="admin") == [msp.admin.email, "bob@acme.com"]
        assert await emails(two_factor="totp") == []
        assert len(await emails(two_factor="disabled")) == 3
        first = (
            await world.client.get(
                f"/v1/tenants/{msp.id}/users",
                params={"limit": 2, "sort": "last_name"},
                headers=msp.admin.headers,
            )
        ).json()
        second = (
            await world.client.get(
                f"/v1/tenants/{msp.id}/users",
                params={"limit": 2, "sort": "last_name", "cursor": first["next_cursor"]},
                headers=msp.admin.headers,
            )
        ).json()
        seen = [u["last_name"] for u in first["items"] + second["items"]]
        assert seen == sorted(seen)
        assert len(seen) == 3
        assert second["next_cursor"] is None

    async def test_needs_users_read(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={"key": "viewer", "name": "Viewer", "permissions": ["tenants.read"]},
            headers=msp.admin.headers,
        )
        viewer = await world.user(msp.id, [(client["id"], ["viewer"], False)])
        response = await world.client.get(
            f"/v1/tenants/{client['id']}/users", headers=viewer.headers
        )
        assert_problem(response, 403, "forbidden")


class TestGetUser:
    async def test_returns_the_user_with_an_etag(self, world: World, msp: Msp) -> None:
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/users/{tech.user_id}", headers=msp.admin.headers
        )
        assert response.status_code == 200
        assert response.json()["roles"] == ["read_only"]
        assert response.headers["etag"]

    async def test_a_user_not_visible_from_here_is_absent(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        other = await world.tenant(msp.id, msp.admin)
        local = await world.user(msp.id, [(client["id"], ["admin"], False)])
        elsewhere = await world.user(msp.id, [(other["id"], ["admin"], False)])
        for user_id in (elsewhere.user_id, uuid4()):
            response = await world.client.get(
                f"/v1/tenants/{client['id']}/users/{user_id}", headers=local.headers
            )
            assert_problem(response, 404, "not_found")


class TestPatchUser:
    async def test_edits_profile_fields_and_records_them(self, world: World, msp: Msp) -> None:
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        response = await world.client.patch(
            f"/v1/tenants/{msp.id}/users/{tech.user_id}",
            json={
                "first_name": "Grace",
                "last_name": "Hopper",
                "phone": "+1 415 555 0123",
                "session_timeout_minutes": 15,
            },
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        row = await _user_row(world, tech.user_id)
        assert (row.first_name, row.last_name, row.phone, row.session_timeout_minutes) == (
            "Grace",
            "Hopper",
            "+14155550123",  # stored in E.164
            15,
        )
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "user.updated")
        )
        assert event.changes["session_timeout_minutes"] == {"before": 60, "after": 15}
        assert event.target_id == tech.user_id

    async def test_the_email_cannot_change(self, world: World, msp: Msp) -> None:
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        response = await world.client.patch(
            f"/v1/tenants/{msp.id}/users/{tech.user_id}",
            json={"email": "new@example.com"},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "email_immutable")
        assert await world.snapshot() == before
        same = await world.client.patch(
            f"/v1/tenants/{msp.id}/users/{tech.user_id}",
            json={"email": tech.email.upper(), "first_name": "Ok"},
            headers=msp.admin.headers,
        )
        assert same.status_code == 200

    async def test_out_of_range_timeout_and_unknown_fields_are_refused(
        self, world: World, msp: Msp
    ) -> None:
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        for body, field in (
            ({"session_timeout_minutes": 4}, "session_timeout_minutes"),
            ({"session_timeout_minutes": 1441}, "session_timeout_minutes"),
            ({"first_name": ""}, "first_name"),
            ({"owner_user_id": str(uuid4())}, "owner_user_id"),
        ):
            response = await world.client.patch(
                f"/v1/tenants/{msp.id}/users/{tech.user_id}", json=body, headers=msp.admin.headers
            )
            problem = assert_problem(response, 422, "validation_error")
            assert problem["errors"][0]["field"] == field
        assert await world.snapshot() == before

    async def test_a_client_admin_cannot_edit_an_msp_technician(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        technician = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["admin"], False)]
        )
        colleague = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        before = await world.snapshot()
        response = await world.client.patch(
            f"/v1/tenants/{client['id']}/users/{technician.user_id}",
            json={"first_name": "Hijacked"},
            headers=local_admin.headers,
        )
        assert_problem(response, 403, "user_outside_scope")
        assert await world.snapshot() == before
        ok = await world.client.patch(
            f"/v1/tenants/{client['id']}/users/{colleague.user_id}",
            json={"first_name": "Fine"},
            headers=local_admin.headers,
        )
        assert ok.status_code == 200
        from_msp = await world.client.patch(
            f"/v1/tenants/{msp.id}/users/{technician.user_id}",
            json={"first_name": "Fine"},
            headers=msp.admin.headers,
        )
        assert from_msp.status_code == 200

    async def test_if_match_refuses_a_stale_edit(self, world: World, msp: Msp) -> None:
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        url = f"/v1/tenants/{msp.id}/users/{tech.user_id}"
        etag = (await world.client.get(url, headers=msp.admin.headers)).headers["etag"]
        await world.client.patch(url, json={"first_name": "A"}, headers=msp.admin.headers)
        before = await world.snapshot()
        response = await world.client.patch(
            url, json={"first_name": "B"}, headers={**msp.admin.headers, "If-Match": etag}
        )
        assert_problem(response, 412, "precondition_failed")
        assert await world.snapshot() == before


class TestDeleteUsers:
    async def test_at_the_root_removes_the_user_from_the_msp_and_every_client(
        self, world: World, msp: Msp
    ) -> None:
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client")
        client = await world.tenant(multi["id"], msp.admin)
        tech = await world.user(
            msp.id, [(multi["id"], ["admin"], True), (client["id"], ["read_only"], False)]
        )
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/delete",
            json={"ids": [str(tech.user_id)]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"deleted": [str(tech.user_id)], "grants_removed": 2}
        assert await world.count(authorizations, authorizations.c.user_id == tech.user_id) == 0
        assert await world.count(members, members.c.user_id == tech.user_id) == 0
        # Their session still logs them in (the person exists) but reaches nothing.
        me = (await world.client.get("/v1/me", headers=tech.headers)).json()
        assert (me["grants"], me["counts"]["tenants"]) == ([], 0)
        assert await world.my_tenants(tech.headers) == []
        assert_problem(
            await world.client.get(f"/v1/tenants/{client['id']}", headers=tech.headers),
            404,
            "not_found",
        )
        # Gone from the organization: no longer listed, even as a roleless member.
        listed = (
            await world.client.get(f"/v1/tenants/{msp.id}/users", headers=msp.admin.headers)
        ).json()
        assert str(tech.user_id) not in {u["id"] for u in listed["items"]}
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "user.deleted")
        )
        assert event.changes["member"] == {"before": True, "after": False}

    async def test_in_a_client_removes_only_grants_there_and_below(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        technician = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["admin"], False)]
        )
        response = await world.client.post(
            f"/v1/tenants/{client['id']}/users/delete",
            json={"ids": [str(technician.user_id)]},
            headers=local_admin.headers,
        )
        assert response.status_code == 200, response.text
        remaining = await world.rows(
            sa.select(authorizations.c.tenant_id).where(
                authorizations.c.user_id == technician.user_id
            )
        )
        assert [r.tenant_id for r in remaining] == [msp.id]
        assert await world.count(members, members.c.user_id == technician.user_id) == 1

    async def test_nobody_deletes_themselves(self, world: World, msp: Msp) -> None:
        await world.user(msp.id, [(msp.id, ["admin"], True)])  # not the last admin
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/delete",
            json={"ids": [str(msp.admin.user_id)]},
            headers=msp.admin.headers,
        )
        assert_problem(response, 403, "cannot_delete_self")
        assert await world.snapshot() == before

    async def test_the_last_admin_of_the_msp_stays(self, world: World, msp: Msp) -> None:
        await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={
                "key": "remover",
                "name": "Remover",
                "permissions": ["tenants.read", "users.read", "users.delete"],
            },
            headers=msp.admin.headers,
        )
        remover = await world.user(msp.id, [(msp.id, ["remover"], True)])
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/delete",
            json={"ids": [str(msp.admin.user_id)]},
            headers=remover.headers,
        )
        assert_problem(response, 409, "last_admin")
        assert await world.snapshot() == before

    async def test_bulk_is_atomic_and_names_every_offender(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        ok = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        stranger = await world.user((await world.msp(name="Other")).id, [])
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/delete",
            json={"ids": [str(ok.user_id), str(stranger.user_id), str(msp.admin.user_id)]},
            headers=msp.admin.headers,
        )
        problem = assert_problem(response, 422, "bulk_refused")
        assert {(i["id"], i["code"]) for i in problem["errors"]} == {
            (str(stranger.user_id), "not_found"),
            (str(msp.admin.user_id), "cannot_delete_self"),
        }
        assert await world.snapshot() == before

    async def test_access_inherited_from_above_is_not_a_clients_to_take(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{client['id']}/users/delete",
            json={"ids": [str(msp.admin.user_id)]},
            headers=local_admin.headers,
        )
        assert_problem(response, 403, "user_outside_scope")
        assert await world.snapshot() == before

    async def test_needs_users_delete(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        target = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/delete",
            json={"ids": [str(target.user_id)]},
            headers=reader.headers,
        )
        assert_problem(response, 403, "forbidden")


class TestOwnProfile:
    async def test_a_user_edits_their_own_profile(self, world: World, msp: Msp) -> None:
        response = await world.client.patch(
            "/v1/me",
            json={"first_name": "Ada", "phone": "+44 20 7946 0000"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        row = await _user_row(world, msp.admin.user_id)
        assert (row.first_name, row.phone) == ("Ada", "+442079460000")

    async def test_not_their_email_nor_their_session_timeout(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        assert_problem(
            await world.client.patch(
                "/v1/me", json={"email": "me@elsewhere.com"}, headers=msp.admin.headers
            ),
            422,
            "email_immutable",
        )
        assert_problem(
            await world.client.patch(
                "/v1/me", json={"session_timeout_minutes": 1440}, headers=msp.admin.headers
            ),
            422,
            "validation_error",
        )
        assert await world.snapshot() == before


class TestPasswordChange:
    async def test_changes_the_password_and_ends_other_sessions(
        self, world: World, msp: Msp
    ) -> None:
        other_device = await world.login(msp.admin.email)
        new = "a whole new passphrase 42"
        response = await world.client.post(
            "/v1/me/password",
            json={"current_password": PASSWORD, "new_password": new},
            headers=msp.admin.headers,
        )
        assert response.status_code == 204
        assert (await world.client.get("/v1/me", headers=msp.admin.headers)).status_code == 200
        assert_problem(
            await world.client.get("/v1/me", headers=other_device.headers), 401, "unauthenticated"
        )
        assert (await world.login(msp.admin.email, new)).token
        old = await world.client.post(
            "/v1/auth/login", json={"email": msp.admin.email, "password": PASSWORD}
        )
        assert_problem(old, 401, "invalid_credentials")
        ended = await world.count(sessions, sessions.c.ended_at.is_not(None))
        assert ended == 1

    async def test_refuses_a_wrong_current_or_a_weak_new_password(
        self, world: World, msp: Msp
    ) -> None:
        before = await world.snapshot()
        for body, field, code in (
            ({"current_password": "wrong", "new_password": "long enough passphrase"},
             "current_password", "incorrect"),
            ({"current_password": PASSWORD, "new_password": "short"},
             "new_password", "password_too_short"),
            ({"current_password": PASSWORD, "new_password": "aaaaaaaaaaaaaaaa"},
             "new_password", "password_too_simple"),
            ({"current_password": PASSWORD, "new_password": PASSWORD},
             "new_password", "unchanged"),
        ):  # fmt: skip
            response = await world.client.post(
                "/v1/me/password", json=body, headers=msp.admin.headers
            )
            problem = assert_problem(response, 422, "validation_error")
            assert (problem["errors"][0]["field"], problem["errors"][0]["code"]) == (field, code)
            assert "passphrase" not in response.text
        assert await world.snapshot() == before


async def _login_of(world: World, user: Login) -> Login:
    return await world.login(user.email)
