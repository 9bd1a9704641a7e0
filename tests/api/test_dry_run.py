"""?dry_run=true: the same checks and refusals as the real call, an answer describing what
would change, and nothing changed: every table, the audit list and the mailbox as before."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import Login, Msp, World, assert_problem, delivered
from tests.mail import SmtpServer


async def audit_list(world: World, msp: Msp) -> list[Any]:
    response = await world.client.get(
        f"/v1/tenants/{msp.id}/audit-events", params={"limit": 200}, headers=msp.admin.headers
    )
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


class Unchanged:
    """Everything stored, the audit trail and the mail that would go out, before a dry run."""

    def __init__(self, world: World, msp: Msp, smtp: SmtpServer) -> None:
        self.world, self.msp, self.smtp = world, msp, smtp

    async def __aenter__(self) -> Unchanged:
        await delivered(self.world, self.smtp)  # the scene's own mail, out of the way
        self.tables = await self.world.snapshot()
        self.audit = await audit_list(self.world, self.msp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        assert await self.world.snapshot() == self.tables
        assert await audit_list(self.world, self.msp) == self.audit
        assert await delivered(self.world, self.smtp) == {}
        assert await self.world.state.webhooks.deliver_due() is not None


def would(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["dry_run"] is True
    described: dict[str, Any] = body["would_change"]
    return described


async def api_key(world: World, tenant_id: Any, user: Login) -> str:
    response = await world.client.post(
        f"/v1/tenants/{tenant_id}/users/{user.user_id}/api-keys", json={}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


class TestAuthorizations:
    async def test_the_tenant_view_describes_grants_and_who_loses_everything(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        ann = await world.user(msp.id, [])
        bob = await world.user(msp.id, [(client["id"], ["admin"], False)])
        key = await api_key(world, client["id"], bob)
        async with Unchanged(world, msp, smtp):
            response = await world.client.put(
                f"/v1/tenants/{client['id']}/authorizations",
                params={"dry_run": "true"},
                json={
                    "items": [
                        {"user_id": str(ann.user_id), "roles": ["read_only"]},
                        {"user_id": str(bob.user_id), "roles": []},
                    ]
                },
                headers=msp.admin.headers,
            )
            described = would(response)
        grants = {(g["user_id"], g["change"]): g for g in described["grants"]}
        assert set(grants) == {(str(ann.user_id), "added"), (str(bob.user_id), "removed")}
        assert grants[(str(bob.user_id), "removed")]["roles"] == {"before": ["admin"], "after": []}
        assert described["users_losing_all_access"] == [str(bob.user_id)]
        assert described["api_key_ids"] == [key]
        assert described["sessions"] == 1
        assert response.json()["result"]["items"]
        # and the real call does what was described
        real = await world.client.put(
            f"/v1/tenants/{client['id']}/authorizations",
            json={
                "items": [
                    {"user_id": str(ann.user_id), "roles": ["read_only"]},
                    {"user_id": str(bob.user_id), "roles": []},
                ]
            },
            headers=msp.admin.headers,
        )
        assert real.json() == response.json()["result"]

    async def test_the_user_view(self, world: World, msp: Msp, smtp: SmtpServer) -> None:
        client = await world.tenant(msp.id, msp.admin)
        ann = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        async with Unchanged(world, msp, smtp):
            response = await world.client.put(
                f"/v1/tenants/{msp.id}/users/{ann.user_id}/authorizations",
                params={"dry_run": "true"},
                json={"items": [{"tenant_id": client["id"], "roles": ["admin"]}]},
                headers=msp.admin.headers,
            )
            described = would(response)
        (change,) = described["grants"]
        assert change["change"] == "changed"
        assert change["roles"] == {"before": ["read_only"], "after": ["admin"]}
        assert described["users_losing_all_access"] == []

    async def test_a_refusal_is_the_real_refusal(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        async with Unchanged(world, msp, smtp):
            response = await world.client.put(
                f"/v1/tenants/{msp.id}/authorizations",
                params={"dry_run": "true"},
                json={"items": [{"user_id": str(msp.admin.user_id), "roles": []}]},
                headers=msp.admin.headers,
            )
            assert response.status_code == 403
            assert response.json()["code"] in {"cannot_change_own_access", "bulk_refused"}


class TestUsersDelete:
    async def test_describes_removed_grants_keys_and_sessions(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        bob = await world.user(msp.id, [(client["id"], ["admin"], False)])
        key = await api_key(world, client["id"], bob)
        async with Unchanged(world, msp, smtp):
            described = would(
                await world.client.post(
                    f"/v1/tenants/{msp.id}/users/delete",
                    params={"dry_run": "true"},
                    json={"ids": [str(bob.user_id)]},
                    headers=msp.admin.headers,
                )
            )
        assert described["users_losing_all_access"] == [str(bob.user_id)]
        assert described["api_key_ids"] == [key]
        assert described["sessions"] == 1
        actions = [e["action"] for e in described["events"]]
        assert "user.deleted" in actions
        assert "api_key.revoked" in actions

    async def test_deleting_oneself_is_refused_as_for_real(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        async with Unchanged(world, msp, smtp):
            response = await world.client.post(
                f"/v1/tenants/{msp.id}/users/delete",
                params={"dry_run": "true"},
                json={"ids": [str(msp.admin.user_id)]},
                headers=msp.admin.headers,
            )
            assert response.status_code == 403, response.text


class TestClients:
    async def test_delete_describes_the_users_who_lose_their_only_access(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local = await world.user(msp.id, [(client["id"], ["admin"], False)])
        async with Unchanged(world, msp, smtp):
            described = would(
                await world.client.post(
                    f"/v1/tenants/{msp.id}/clients/delete",
                    params={"dry_run": "true"},
                    json={"ids": [client["id"]], "confirm": "delete"},
                    headers=msp.admin.headers,
                )
            )
        assert [e["action"] for e in described["events"]] == ["tenant.deleted"]
        assert described["users_losing_all_access"] == [str(local.user_id)]
        assert described["sessions"] == 1

    async def test_disable_describes_the_same(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local = await world.user(msp.id, [(client["id"], ["admin"], False)])
        async with Unchanged(world, msp, smtp):
            described = would(
                await world.client.post(
                    f"/v1/tenants/{msp.id}/clients/disable",
                    params={"dry_run": "true"},
                    json={"ids": [client["id"]]},
                    headers=msp.admin.headers,
                )
            )
        assert [e["action"] for e in described["events"]] == ["tenant.disabled"]
        assert described["users_losing_all_access"] == [str(local.user_id)]

    async def test_delete_without_confirmation_is_refused_as_for_real(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        async with Unchanged(world, msp, smtp):
            response = await world.client.post(
                f"/v1/tenants/{msp.id}/clients/delete",
                params={"dry_run": "true"},
                json={"ids": [client["id"]]},
                headers=msp.admin.headers,
            )
            assert_problem(response, 422, "confirmation_required")


class TestInvitations:
    async def test_inviting_sends_no_mail_and_keeps_nothing(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        async with Unchanged(world, msp, smtp):
            described = would(
                await world.client.post(
                    f"/v1/tenants/{msp.id}/invitations",
                    params={"dry_run": "true"},
                    json={
                        "emails": ["new@example.com"],
                        "authorizations": [{"roles": ["read_only"]}],
                    },
                    headers=msp.admin.headers,
                )
            )
        assert [e["action"] for e in described["events"]] == ["invitation.created"]

    async def test_revoking_and_resending_keep_nothing(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        made = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={"emails": ["new@example.com"], "authorizations": [{"roles": ["read_only"]}]},
            headers=msp.admin.headers,
        )
        assert made.status_code == 201, made.text
        listed = await world.client.get(
            f"/v1/tenants/{msp.id}/invitations", headers=msp.admin.headers
        )
        invitation = listed.json()["items"][0]["id"]
        for path, body, action in [
            ("resend", {"ids": [invitation]}, "invitation.resent"),
            ("delete", {"ids": [invitation]}, "invitation.revoked"),
        ]:
            async with Unchanged(world, msp, smtp):
                described = would(
                    await world.client.post(
                        f"/v1/tenants/{msp.id}/invitations/{path}",
                        params={"dry_run": "true"},
                        json=body,
                        headers=msp.admin.headers,
                    )
                )
            assert [e["action"] for e in described["events"]] == [action]
        async with Unchanged(world, msp, smtp):
            described = would(
                await world.client.patch(
                    f"/v1/tenants/{msp.id}/invitations/{invitation}",
                    params={"dry_run": "true"},
                    json={"authorizations": [{"roles": ["admin"]}]},
                    headers=msp.admin.headers,
                )
            )
        assert [e["action"] for e in described["events"]] == ["invitation.updated"]
