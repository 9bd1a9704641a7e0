"""Invitations over HTTP (seeds 001, 003): each rule, its refusal, the stored state, and the
mail that arrives at a real SMTP server, whose link is accepted as an invitee would."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from access_api.repositories.orm import (
    audit_events,
    authorization_roles,
    authorizations,
    invitation_grant_roles,
    invitation_grants,
    invitations,
    members,
    outbox,
    roles,
    sessions,
    users,
)
from tests.api.conftest import PASSWORD, Login, Msp, World, assert_problem, delivered
from tests.live import live_client, live_msp, state_of
from tests.mail import SmtpServer, accept_token, html_text, plain_text

NEW_PASSWORD = "a long and unusual passphrase"


# --- helpers ------------------------------------------------------------------------------


def offer(tenant_id: Any = None, *roles: str, descendants: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"roles": list(roles) or ["read_only"]}
    if tenant_id is not None:
        item["tenant_id"] = str(tenant_id)
    if descendants:
        item["include_descendants"] = True
    return item


async def invite(
    world: World,
    context: Any,
    by: Login,
    emails: list[str],
    offers: list[dict[str, Any]],
    **extra: Any,
) -> httpx.Response:
    return await world.client.post(
        f"/v1/tenants/{context}/invitations",
        json={"emails": emails, "authorizations": offers, **extra},
        headers=by.headers,
    )


async def invited(
    world: World, context: Any, by: Login, email: str, offers: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """One invitation, made and answered 201."""
    response = await invite(world, context, by, [email], offers, **extra)
    assert response.status_code == 201, response.text
    (item,) = response.json()["items"]
    assert item["outcome"] == "invited"
    invitation: dict[str, Any] = item["invitation"]
    return invitation


async def link_for(world: World, smtp: SmtpServer, email: str) -> str:
    mail = (await delivered(world, smtp))[email.lower()]
    return accept_token(mail)


async def accept(world: World, token: str, **body: Any) -> httpx.Response:
    return await world.client.post("/v1/invitations/accept", json={"token": token, **body})


async def accept_as_new(world: World, token: str) -> httpx.Response:
    return await accept(world, token, first_name="Ada", last_name="Lovelace", password=NEW_PASSWORD)


async def preview(world: World, token: str) -> httpx.Response:
    return await world.client.post("/v1/invitations/preview", json={"token": token})


async def invitation_row(world: World, invitation_id: Any) -> Any:
    (row,) = await world.rows(
        sa.select(invitations).where(invitations.c.id == UUID(str(invitation_id)))
    )
    return row


async def grants_of(world: World, user_id: UUID) -> dict[UUID, tuple[set[str], bool]]:
    rows = await world.rows(
        sa.select(authorizations.c.tenant_id, authorizations.c.include_descendants, roles.c.key)
        .join(authorization_roles, authorization_roles.c.authorization_id == authorizations.c.id)
        .join(roles, roles.c.id == authorization_roles.c.role_id)
        .where(authorizations.c.user_id == user_id)
    )
    found: dict[UUID, tuple[set[str], bool]] = {}
    for row in rows:
        found.setdefault(row.tenant_id, (set(), row.include_descendants))[0].add(row.key)
    return found


async def offers_of(world: World, invitation_id: Any) -> dict[UUID, tuple[set[str], bool]]:
    rows = await world.rows(
        sa.select(
            invitation_grants.c.tenant_id, invitation_grants.c.include_descendants, roles.c.key
        )
        .join(invitation_grant_roles, invitation_grant_roles.c.grant_id == invitation_grants.c.id)
        .join(roles, roles.c.id == invitation_grant_roles.c.role_id)
        .where(invitation_grants.c.invitation_id == UUID(str(invitation_id)))
    )
    found: dict[UUID, tuple[set[str], bool]] = {}
    for row in rows:
        found.setdefault(row.tenant_id, (set(), row.include_descendants))[0].add(row.key)
    return found


async def advance(world: World, delta: timedelta, *who: Login) -> None:
    """Move the clock; those who act afterwards log in again (their sessions went idle)."""
    world.clock.advance(delta)
    for login in who:
        login.token = (await world.login(login.email, login.password)).token


def actions(rows: list[Any]) -> Counter[str]:
    return Counter(row.action for row in rows)


async def audit_actions(world: World, actor: Login | None = None) -> Counter[str]:
    statement = sa.select(audit_events.c.action)
    if actor is not None:
        statement = statement.where(audit_events.c.actor_user_id == actor.user_id)
    return actions(await world.rows(statement))


# --- inviting -----------------------------------------------------------------------------


# A refused link (or password) is counted for throttling: that table is meant to change.
COUNTED = {"throttle_buckets"}


class TestInvite:
    async def test_invites_several_emails_on_several_clients_and_mails_each_a_link(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin, name="Acme")
        zeta = await world.tenant(msp.id, msp.admin, name="Zeta")
        response = await invite(
            world,
            msp.id,
            msp.admin,
            ["ada@example.com", "Bob@Example.COM"],
            [offer(acme["id"], "admin"), offer(zeta["id"], "read_only")],
            expires_in_days=3,
        )
        assert response.status_code == 201, response.text
        items = response.json()["items"]
        assert [(i["email"], i["outcome"]) for i in items] == [
            ("ada@example.com", "invited"),
            ("Bob@example.com", "invited"),
        ]
        first = items[0]["invitation"]
        assert first["status"] == "pending"
        assert first["tenant_id"] == str(msp.id)
        assert first["invited_by"] == str(msp.admin.user_id)
        assert first["expires_at"] == "2026-11-25T09:00:00Z"
        assert sorted((a["tenant_id"], a["roles"][0]) for a in first["authorizations"]) == sorted(
            [(acme["id"], "admin"), (zeta["id"], "read_only")]
        )
        row = await invitation_row(world, first["id"])
        assert (row.status, row.email_key, row.sent_count) == ("pending", "ada@example.com", 1)
        assert await offers_of(world, first["id"]) == {
            UUID(acme["id"]): ({"admin"}, False),
            UUID(zeta["id"]): ({"read_only"}, False),
        }
        # Queued with the change, sealed: no link in clear in the database.
        queued = await world.rows(sa.select(outbox))
        assert {r.recipient for r in queued} == {"ada@example.com", "Bob@example.com"}
        assert all(b"inv_" not in r.payload and b"accept" not in r.payload for r in queued)
        assert (await audit_actions(world))["invitation.created"] == 2

        mails = await delivered(world, smtp)
        assert set(mails) == {"ada@example.com", "bob@example.com"}
        mail = mails["ada@example.com"]
        token = accept_token(mail)
        assert token.startswith("inv_")
        assert row.token_hash == world.state.keyring.digest(token)
        assert token not in str(row)
        assert mail["From"] == world.state.settings.smtp_from
        assert "invited you to Northwind MSP" in mail["Subject"]
        assert f"https://app.access-api.test/accept-invitation?token={token}" in html_text(mail)
        assert "2026-11-25 09:00 UTC" in plain_text(mail)
        sent = {r.message_id: r for r in await world.rows(sa.select(outbox))}
        assert set(sent) == {m["Message-ID"] for m in mails.values()}
        assert all(r.sent_at is not None and r.payload is None for r in sent.values())

    async def test_from_a_clients_context_the_grant_is_on_that_client(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin, name="Acme")
        client_admin = await world.user(msp.id, [(acme["id"], ["admin"], False)])
        invitation = await invited(world, acme["id"], client_admin, "ada@example.com", [offer()])
        assert invitation["tenant_id"] == acme["id"]
        assert invitation["authorizations"] == [
            {
                "tenant_id": acme["id"],
                "roles": ["read_only"],
                "include_descendants": False,
                "expires_at": None,
            }
        ]
        mail = (await delivered(world, smtp))["ada@example.com"]
        assert "invited you to Acme" in mail["Subject"]

    async def test_a_user_of_this_organization_is_granted_at_once_without_email(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin)
        zeta = await world.tenant(msp.id, msp.admin)
        member = await world.user(msp.id, [(acme["id"], ["read_only"], False)])
        response = await invite(
            world,
            msp.id,
            msp.admin,
            [member.email.upper(), "new@example.com"],
            [offer(acme["id"], "admin"), offer(zeta["id"], "read_only", descendants=True)],
        )
        assert response.status_code == 201, response.text
        granted, new = response.json()["items"]
        assert granted == {
            "email": member.email.upper().replace("EXAMPLE.COM", "example.com"),
            "outcome": "granted",
            "invitation": None,
            "user_id": str(member.user_id),
        }
        assert new["outcome"] == "invited"
        # Inviting never removes access: the roles add up.
        assert await grants_of(world, member.user_id) == {
            UUID(acme["id"]): ({"admin", "read_only"}, False),
            UUID(zeta["id"]): ({"read_only"}, True),
        }
        assert await world.count(invitations, invitations.c.email_key == member.email) == 0
        assert await world.count(outbox) == 1
        assert (await audit_actions(world, msp.admin))["authorization.granted"] == 2
        assert set(await delivered(world, smtp)) == {"new@example.com"}

    async def test_an_account_of_another_organization_gets_an_invitation(
        self, world: World, msp: Msp
    ) -> None:
        other = await world.msp(name="Other MSP")
        stranger = await world.user(other.id, [(other.id, ["read_only"], False)])
        response = await invite(world, msp.id, msp.admin, [stranger.email], [offer(msp.id)])
        assert response.json()["items"][0]["outcome"] == "invited"

    async def test_a_pending_invitation_for_the_same_email_here_is_refused(
        self, world: World, msp: Msp
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin)
        first = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)])
        before = await world.snapshot()
        response = await invite(
            world, msp.id, msp.admin, ["ADA@example.com", "bob@example.com"], [offer(msp.id)]
        )
        body = assert_problem(response, 409, "invitation_exists")
        assert [e["id"] for e in body["errors"]] == ["ADA@example.com"]
        assert first["id"] in body["errors"][0]["message"]
        assert await world.snapshot() == before
        # Another tenant keeps its own invitations (seed 001).
        client_admin = await world.user(msp.id, [(acme["id"], ["admin"], False)])
        await invited(world, acme["id"], client_admin, "ada@example.com", [offer()])

    async def test_an_expired_invitation_is_closed_and_a_new_one_takes_its_place(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        old = await invited(
            world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)], expires_in_days=1
        )
        old_token = await link_for(world, smtp, "ada@example.com")
        await advance(world, timedelta(days=1), msp.admin)
        new = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)])
        assert new["id"] != old["id"]
        row = await invitation_row(world, old["id"])
        assert (row.status, row.token_hash) == ("expired", None)
        assert_problem(await preview(world, old_token), 400, "invalid_token")
        assert (await preview(world, await link_for(world, smtp, "ada@example.com"))).is_success

    async def test_refusals_name_every_offending_email_and_account_and_change_nothing(
        self, world: World, msp: Msp
    ) -> None:
        other = await world.msp(name="Other MSP")
        before = await world.snapshot()
        response = await invite(
            world,
            msp.id,
            msp.admin,
            [msp.admin.email, "ok@example.com"],
            [offer(other.id, "admin"), offer(msp.id, "read_only")],
        )
        body = assert_problem(response, 422, "bulk_refused")
        assert {(e["id"], e["code"]) for e in body["errors"]} == {
            (str(other.id), "not_found"),
            (msp.admin.email, "cannot_change_own_access"),
        }
        # An unknown role is a bad field of the body (issue 10), named as such.
        response = await invite(
            world, msp.id, msp.admin, ["ok@example.com"], [offer(msp.id, "superuser")]
        )
        body = assert_problem(response, 422, "validation_error")
        assert [(e["field"], e["code"]) for e in body["errors"]] == [
            ("authorizations.0.roles", "unknown_role")
        ]
        assert await world.snapshot() == before

    async def test_inviting_oneself_is_refused(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        response = await invite(world, msp.id, msp.admin, [msp.admin.email], [offer(msp.id)])
        assert_problem(response, 403, "cannot_change_own_access")
        assert await world.snapshot() == before

    async def test_nobody_offers_roles_beyond_their_own(self, world: World, msp: Msp) -> None:
        acme = await world.tenant(msp.id, msp.admin)
        # Admin of the root only: nothing held on the clients below, nothing inheritable.
        narrow = await world.user(msp.id, [(msp.id, ["admin"], False)])
        before = await world.snapshot()
        for offered in (offer(acme["id"], "read_only"), offer(msp.id, "admin", descendants=True)):
            response = await invite(world, msp.id, narrow, ["x@example.com"], [offered])
            body = assert_problem(response, 403, "privilege_escalation")
            assert body["errors"][0]["id"] == offered["tenant_id"]
        assert await world.snapshot() == before
        await invited(world, msp.id, narrow, "x@example.com", [offer(msp.id, "admin")])

    async def test_invalid_bodies_are_refused(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        cases: list[tuple[dict[str, Any], str]] = [
            ({"emails": [], "authorizations": [offer()]}, "emails"),
            ({"emails": [f"u{i}@example.com" for i in range(101)], "authorizations": [offer()]},
             "emails"),
            ({"emails": ["not-an-email"], "authorizations": [offer()]}, "emails.0"),
            ({"emails": ["a@example.com", "A@EXAMPLE.com"], "authorizations": [offer()]},
             "emails.1"),
            ({"emails": ["a@example.com"], "authorizations": []}, "authorizations"),
            ({"emails": ["a@example.com"], "authorizations": [{"roles": []}]},
             "authorizations.0.roles"),
            ({"emails": ["a@example.com"], "authorizations": [offer(msp.id), offer(msp.id)]},
             "authorizations.1"),
            ({"emails": ["a@example.com"], "authorizations": [offer()], "expires_in_days": 0},
             "expires_in_days"),
            ({"emails": ["a@example.com"], "authorizations": [offer()], "expires_in_days": 31},
             "expires_in_days"),
            ({"emails": ["a@example.com"], "authorizations": [offer()], "status": "accepted"},
             "status"),
        ]  # fmt: skip
        for body, field in cases:
            response = await world.client.post(
                f"/v1/tenants/{msp.id}/invitations", json=body, headers=msp.admin.headers
            )
            problem = assert_problem(response, 422, "validation_error")
            assert problem["errors"][0]["field"] == field, (body, problem)
        assert await world.snapshot() == before

    async def test_needs_invitations_write(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        response = await invite(world, msp.id, reader, ["x@example.com"], [offer(msp.id)])
        assert_problem(response, 403, "forbidden")
        assert await world.snapshot() == before

    async def test_a_role_offered_by_an_invitation_cannot_be_deleted(
        self, world: World, msp: Msp
    ) -> None:
        await invited(world, msp.id, msp.admin, "x@example.com", [offer(msp.id, "read_only")])
        with pytest.raises(IntegrityError):
            async with world.connection.begin_nested():
                await world.connection.execute(
                    sa.delete(roles).where(roles.c.root_id == msp.id, roles.c.key == "read_only")
                )


# --- listing, reading, editing ------------------------------------------------------------


class TestListInvitations:
    async def test_lists_only_the_invitations_made_in_this_account(
        self, world: World, msp: Msp
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin)
        await invited(world, msp.id, msp.admin, "at-msp@example.com", [offer(acme["id"])])
        client_admin = await world.user(msp.id, [(acme["id"], ["admin"], False)])
        await invited(world, acme["id"], client_admin, "at-client@example.com", [offer()])

        async def emails(context: Any, who: Login) -> list[str]:
            response = await world.client.get(
                f"/v1/tenants/{context}/invitations", headers=who.headers
            )
            assert response.status_code == 200, response.text
            return [i["email"] for i in response.json()["items"]]

        assert await emails(msp.id, msp.admin) == ["at-msp@example.com"]
        assert await emails(acme["id"], msp.admin) == ["at-client@example.com"]
        assert await emails(acme["id"], client_admin) == ["at-client@example.com"]

    async def test_filters_by_status_and_email_sorts_and_pages(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        url = f"/v1/tenants/{msp.id}/invitations"
        ids: dict[str, str] = {}
        for name, days in (("carol", 7), ("alice", 1), ("bob", 7), ("dave", 7)):
            await advance(world, timedelta(minutes=1), msp.admin)
            made = await invited(
                world, msp.id, msp.admin, f"{name}@example.com", [offer(msp.id)],
                expires_in_days=days,
            )  # fmt: skip
            ids[name] = made["id"]
        await world.client.post(
            f"{url}/delete", json={"ids": [ids["bob"]]}, headers=msp.admin.headers
        )
        dave = await link_for(world, smtp, "dave@example.com")
        assert (await accept_as_new(world, dave)).status_code == 201
        await advance(world, timedelta(days=1), msp.admin)

        async def names(**params: Any) -> list[str]:
            response = await world.client.get(url, params=params, headers=msp.admin.headers)
            assert response.status_code == 200, response.text
            return [i["email"].split("@")[0] for i in response.json()["items"]]

        assert await names() == ["dave", "bob", "alice", "carol"]
        assert await names(sort="email") == ["alice", "bob", "carol", "dave"]
        assert await names(sort="-expires_at") == ["dave", "bob", "carol", "alice"]
        assert await names(status="pending") == ["carol"]
        assert await names(status="expired") == ["alice"]
        assert await names(status="revoked") == ["bob"]
        assert await names(status="accepted") == ["dave"]
        assert await names(q="AL") == ["alice"]
        assert await names(q="%") == []
        first = await world.client.get(
            url, params={"sort": "email", "limit": 2}, headers=msp.admin.headers
        )
        assert [i["email"][0] for i in first.json()["items"]] == ["a", "b"]
        second = await world.client.get(
            url,
            params={"sort": "email", "limit": 2, "cursor": first.json()["next_cursor"]},
            headers=msp.admin.headers,
        )
        assert [i["email"][0] for i in second.json()["items"]] == ["c", "d"]
        assert second.json()["next_cursor"] is None
        statuses = {i["email"][0]: i["status"] for i in second.json()["items"]}
        assert statuses == {"c": "pending", "d": "accepted"}

    async def test_needs_invitations_read(self, world: World, msp: Msp) -> None:
        acme = await world.tenant(msp.id, msp.admin)
        nobody_here = await world.user(msp.id, [(acme["id"], ["read_only"], False)])
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/invitations", headers=nobody_here.headers
        )
        assert_problem(response, 404, "not_found")
        outsider = await world.user(msp.id, [])
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/invitations", headers=outsider.headers
        )
        assert_problem(response, 403, "no_access")


class TestEditInvitation:
    async def test_changes_the_offered_roles_and_honours_if_match(
        self, world: World, msp: Msp
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin)
        made = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(acme["id"])])
        url = f"/v1/tenants/{msp.id}/invitations/{made['id']}"
        read = await world.client.get(url, headers=msp.admin.headers)
        assert read.json() == made
        etag = read.headers["etag"]
        await advance(world, timedelta(minutes=5), msp.admin)
        response = await world.client.patch(
            url,
            json={"authorizations": [offer(acme["id"], "admin"), offer(msp.id, "read_only")]},
            headers={**msp.admin.headers, "If-Match": etag},
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] != etag
        assert response.json()["updated_at"] == "2026-11-22T09:05:00Z"
        assert await offers_of(world, made["id"]) == {
            UUID(acme["id"]): ({"admin"}, False),
            msp.id: ({"read_only"}, False),
        }
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "invitation.updated")
        )
        assert event.changes["authorizations"]["before"] == [
            {"tenant_id": acme["id"], "roles": ["read_only"], "include_descendants": False}
        ]
        before = await world.snapshot()
        stale = await world.client.patch(
            url,
            json={"authorizations": [offer(acme["id"])]},
            headers={**msp.admin.headers, "If-Match": etag},
        )
        assert_problem(stale, 412, "precondition_failed")
        assert await world.snapshot() == before

    async def test_the_email_cannot_change(self, world: World, msp: Msp) -> None:
        made = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)])
        url = f"/v1/tenants/{msp.id}/invitations/{made['id']}"
        before = await world.snapshot()
        response = await world.client.patch(
            url,
            json={"email": "eve@example.com", "authorizations": [offer(msp.id)]},
            headers=msp.admin.headers,
        )
        assert_problem(response, 422, "email_immutable")
        assert await world.snapshot() == before
        same = await world.client.patch(
            url,
            json={"email": "ADA@example.com", "authorizations": [offer(msp.id)]},
            headers=msp.admin.headers,
        )
        assert same.status_code == 200

    async def test_only_a_pending_invitation_can_be_edited(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        revoked = await invited(world, msp.id, msp.admin, "rev@example.com", [offer(msp.id)])
        await world.client.post(
            f"/v1/tenants/{msp.id}/invitations/delete",
            json={"ids": [revoked["id"]]},
            headers=msp.admin.headers,
        )
        accepted = await invited(world, msp.id, msp.admin, "acc@example.com", [offer(msp.id)])
        await accept_as_new(world, await link_for(world, smtp, "acc@example.com"))
        expired = await invited(
            world, msp.id, msp.admin, "exp@example.com", [offer(msp.id)], expires_in_days=1
        )
        await advance(world, timedelta(days=2), msp.admin)
        before = await world.snapshot()
        for made in (revoked, accepted, expired):
            response = await world.client.patch(
                f"/v1/tenants/{msp.id}/invitations/{made['id']}",
                json={"authorizations": [offer(msp.id, "admin")]},
                headers=msp.admin.headers,
            )
            assert_problem(response, 409, "invitation_not_pending")
        assert await world.snapshot() == before

    async def test_an_edit_cannot_offer_more_than_the_editor_holds(
        self, world: World, msp: Msp
    ) -> None:
        made = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)])
        narrow = await world.user(msp.id, [(msp.id, ["admin"], False)])
        before = await world.snapshot()
        response = await world.client.patch(
            f"/v1/tenants/{msp.id}/invitations/{made['id']}",
            json={"authorizations": [offer(msp.id, "admin", descendants=True)]},
            headers=narrow.headers,
        )
        assert_problem(response, 403, "privilege_escalation")
        assert await world.snapshot() == before

    async def test_an_invitation_made_elsewhere_is_absent(self, world: World, msp: Msp) -> None:
        acme = await world.tenant(msp.id, msp.admin)
        made = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(acme["id"])])
        before = await world.snapshot()
        for path in (f"{acme['id']}/invitations/{made['id']}", f"{msp.id}/invitations/{uuid4()}"):
            assert_problem(
                await world.client.get(f"/v1/tenants/{path}", headers=msp.admin.headers),
                404,
                "not_found",
            )
            response = await world.client.patch(
                f"/v1/tenants/{path}",
                json={"authorizations": [offer()]},
                headers=msp.admin.headers,
            )
            assert_problem(response, 404, "not_found")
        assert await world.snapshot() == before


# --- resending and deleting ---------------------------------------------------------------


class TestResend:
    async def test_sends_a_new_link_and_the_old_one_dies(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        made = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)])
        old = await link_for(world, smtp, "ada@example.com")
        await advance(world, timedelta(days=3), msp.admin)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations/resend",
            json={"ids": [made["id"]]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        (item,) = response.json()["items"]
        assert item["expires_at"] == "2026-12-02T09:00:00Z"
        assert (item["sent_count"], item["last_sent_at"]) == (2, "2026-11-25T09:00:00Z")
        new = await link_for(world, smtp, "ada@example.com")
        assert new != old
        assert_problem(await preview(world, old), 400, "invalid_token")
        assert_problem(await accept_as_new(world, old), 400, "invalid_token")
        assert (await accept_as_new(world, new)).status_code == 201
        assert (await audit_actions(world))["invitation.resent"] == 1

    async def test_revives_an_expired_invitation(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        made = await invited(
            world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)], expires_in_days=2
        )
        await advance(world, timedelta(days=5), msp.admin)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations/resend",
            json={"ids": [made["id"]]},
            headers=msp.admin.headers,
        )
        assert response.json()["items"][0]["status"] == "pending"
        token = await link_for(world, smtp, "ada@example.com")
        assert (await accept_as_new(world, token)).status_code == 201

    async def test_refuses_closed_unknown_and_superseded_invitations_all_at_once(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        pending = await invited(world, msp.id, msp.admin, "p@example.com", [offer(msp.id)])
        revoked = await invited(world, msp.id, msp.admin, "r@example.com", [offer(msp.id)])
        await world.client.post(
            f"/v1/tenants/{msp.id}/invitations/delete",
            json={"ids": [revoked["id"]]},
            headers=msp.admin.headers,
        )
        superseded = await invited(
            world, msp.id, msp.admin, "s@example.com", [offer(msp.id)], expires_in_days=1
        )
        await advance(world, timedelta(days=1), msp.admin)
        await invited(world, msp.id, msp.admin, "s@example.com", [offer(msp.id)])
        await delivered(world, smtp)
        unknown = uuid4()
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations/resend",
            json={"ids": [pending["id"], revoked["id"], superseded["id"], str(unknown)]},
            headers=msp.admin.headers,
        )
        body = assert_problem(response, 422, "bulk_refused")
        assert {(e["id"], e["code"]) for e in body["errors"]} == {
            (revoked["id"], "invitation_not_pending"),
            (superseded["id"], "invitation_exists"),
            (str(unknown), "not_found"),
        }
        assert await world.snapshot() == before
        assert await delivered(world, smtp) == {}


class TestDelete:
    async def test_revokes_and_the_link_dies(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        made = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)])
        token = await link_for(world, smtp, "ada@example.com")
        url = f"/v1/tenants/{msp.id}/invitations/delete"
        response = await world.client.post(
            url, json={"ids": [made["id"], made["id"]]}, headers=msp.admin.headers
        )
        assert response.status_code == 200, response.text
        assert [i["status"] for i in response.json()["items"]] == ["revoked"]
        row = await invitation_row(world, made["id"])
        assert (row.status, row.token_hash, row.revoked_at) == ("revoked", None, world.clock.now())
        assert_problem(await preview(world, token), 400, "invalid_token")
        before = await world.snapshot(ignore=COUNTED)
        assert_problem(await accept_as_new(world, token), 400, "invalid_token")
        assert await world.snapshot(ignore=COUNTED) == before
        again = await world.client.post(url, json={"ids": [made["id"]]}, headers=msp.admin.headers)
        assert again.status_code == 200
        assert (await audit_actions(world))["invitation.revoked"] == 1

    async def test_an_accepted_invitation_stays_and_nothing_is_revoked(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        accepted = await invited(world, msp.id, msp.admin, "acc@example.com", [offer(msp.id)])
        pending = await invited(world, msp.id, msp.admin, "pen@example.com", [offer(msp.id)])
        await accept_as_new(world, (await link_for(world, smtp, "acc@example.com")))
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations/delete",
            json={"ids": [pending["id"], accepted["id"]]},
            headers=msp.admin.headers,
        )
        body = assert_problem(response, 409, "invitation_not_pending")
        assert [e["id"] for e in body["errors"]] == [accepted["id"]]
        assert await world.snapshot() == before


# --- the invitee's side -------------------------------------------------------------------


class TestPreview:
    async def test_shows_the_email_the_inviting_account_who_invited_and_the_expiry(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin, name="Acme Dental")
        client_admin = await world.user(msp.id, [(acme["id"], ["admin"], False)])
        await invited(world, acme["id"], client_admin, "ada@example.com", [offer()])
        response = await preview(world, await link_for(world, smtp, "ada@example.com"))
        assert response.status_code == 200
        assert response.json() == {
            "email": "ada@example.com",
            "tenant": {"id": acme["id"], "name": "Acme Dental"},
            "invited_by": {
                "first_name": "Test",
                "last_name": client_admin.email.split("@")[0],
                "email": client_admin.email,
            },
            "expires_at": "2026-11-29T09:00:00Z",
            "existing_account": False,
        }

    async def test_says_when_the_email_already_has_an_account(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        other = await world.msp(name="Other MSP")
        await invited(world, msp.id, msp.admin, other.admin.email, [offer(msp.id)])
        response = await preview(world, await link_for(world, smtp, other.admin.email))
        assert response.json()["existing_account"] is True

    async def test_unknown_used_revoked_and_expired_links_get_the_same_answer(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        for name in ("used", "revoked", "expired"):
            await invited(world, msp.id, msp.admin, f"{name}@example.com", [offer(msp.id)],
                          expires_in_days=1 if name == "expired" else 7)  # fmt: skip
        tokens = {
            to.split("@")[0]: accept_token(m) for to, m in (await delivered(world, smtp)).items()
        }
        assert (await accept_as_new(world, tokens["used"])).status_code == 201
        (revoked_id,) = await world.rows(
            sa.select(invitations.c.id).where(invitations.c.email_key == "revoked@example.com")
        )
        await world.client.post(
            f"/v1/tenants/{msp.id}/invitations/delete",
            json={"ids": [str(revoked_id.id)]},
            headers=msp.admin.headers,
        )
        await advance(world, timedelta(days=1), msp.admin)
        tokens["unknown"] = "inv_" + "x" * 43
        answers = set()
        for token in tokens.values():
            for response in (await preview(world, token), await accept_as_new(world, token)):
                body = assert_problem(response, 400, "invalid_token")
                answers.add((body["title"], body["detail"]))
        assert len(answers) == 1


class TestAccept:
    async def test_a_new_person_becomes_a_user_with_the_offered_roles_and_a_session(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin, name="Acme")
        multi = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Group")
        made = await invited(
            world,
            msp.id,
            msp.admin,
            "Ada@Example.com",
            [offer(acme["id"], "admin"), offer(multi["id"], "read_only", descendants=True)],
        )
        token = await link_for(world, smtp, "ada@example.com")
        response = await accept(
            world, token, first_name=" Ada ", last_name="Lovelace", password=NEW_PASSWORD,
            phone="+44 20 7946 0000",
        )  # fmt: skip
        assert response.status_code == 201, response.text
        session = response.json()
        assert session["token_type"] == "bearer"
        me = await world.client.get(
            "/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"}
        )
        assert me.status_code == 200
        assert (me.json()["email"], me.json()["first_name"]) == ("Ada@example.com", "Ada")
        mine = await world.my_tenants({"Authorization": f"Bearer {session['access_token']}"})
        assert {(t["name"], tuple(t["roles"])) for t in mine} == {
            ("Acme", ("admin",)),
            ("Group", ("read_only",)),
        }
        (user,) = await world.rows(sa.select(users).where(users.c.email_key == "ada@example.com"))
        assert user.password_hash.startswith("$argon2id$")
        assert NEW_PASSWORD not in user.password_hash
        assert user.phone == "+442079460000"
        row = await invitation_row(world, made["id"])
        assert (row.status, row.token_hash, row.accepted_user_id, row.accepted_at) == (
            "accepted", None, user.id, world.clock.now(),
        )  # fmt: skip
        assert await world.count(members, members.c.user_id == user.id) == 1
        assert await world.count(sessions, sessions.c.user_id == user.id) == 1
        events = await world.rows(
            sa.select(audit_events).where(audit_events.c.actor_user_id == user.id)
        )
        assert actions(events) == Counter(
            {"user.created": 1, "invitation.accepted": 1, "authorization.granted": 2,
             "session.created": 1}
        )  # fmt: skip
        assert all(NEW_PASSWORD not in str(e.changes) and token not in str(e.changes)
                   for e in await world.rows(sa.select(audit_events)))  # fmt: skip

    async def test_a_link_works_once(self, world: World, msp: Msp, smtp: SmtpServer) -> None:
        await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)])
        token = await link_for(world, smtp, "ada@example.com")
        assert (await accept_as_new(world, token)).status_code == 201
        before = await world.snapshot(ignore=COUNTED)
        assert_problem(await accept_as_new(world, token), 400, "invalid_token")
        assert await world.snapshot(ignore=COUNTED) == before

    async def test_an_expired_link_is_refused(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)],
                      expires_in_days=1)  # fmt: skip
        token = await link_for(world, smtp, "ada@example.com")
        await advance(world, timedelta(days=1), msp.admin)
        before = await world.snapshot(ignore=COUNTED)
        assert_problem(await accept_as_new(world, token), 400, "invalid_token")
        assert await world.snapshot(ignore=COUNTED) == before

    async def test_a_new_person_gives_names_and_a_password_that_passes_the_rules(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        await invited(world, msp.id, msp.admin, "ada.lovelace@example.com", [offer(msp.id)])
        token = await link_for(world, smtp, "ada.lovelace@example.com")
        before = await world.snapshot()
        cases: list[tuple[dict[str, Any], set[tuple[str, str]]]] = [
            ({"password": NEW_PASSWORD},
             {("first_name", "missing"), ("last_name", "missing")}),
            ({"first_name": " ", "last_name": "L", "password": "short"},
             {("first_name", "invalid_name"), ("password", "password_too_short")}),
            ({"first_name": "A", "last_name": "L", "password": "Password 1234!"},
             {("password", "password_common")}),
            ({"first_name": "A", "last_name": "L", "password": "my ada.lovelace pass"},
             {("password", "password_contains_email")}),
        ]  # fmt: skip
        for body, expected in cases:
            problem = assert_problem(await accept(world, token, **body), 422, "validation_error")
            assert {(e["field"], e["code"]) for e in problem["errors"]} == expected
        assert await world.snapshot() == before
        assert (await accept_as_new(world, token)).status_code == 201

    async def test_an_account_from_elsewhere_proves_itself_with_its_password(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        other = await world.msp(name="Other MSP")
        person = await world.user(other.id, [(other.id, ["read_only"], False)])
        await invited(world, msp.id, msp.admin, person.email, [offer(msp.id, "admin")])
        token = await link_for(world, smtp, person.email)
        before = await world.snapshot(ignore=COUNTED)
        wrong = await accept(world, token, password="not the password at all")
        assert_problem(wrong, 401, "invalid_credentials")
        profile = await accept(world, token, password=PASSWORD, first_name="New")
        body = assert_problem(profile, 422, "validation_error")
        assert body["errors"][0]["field"] == "first_name"
        assert await world.snapshot(ignore=COUNTED) == before
        response = await accept(world, token, password=PASSWORD)
        assert response.status_code == 201, response.text
        assert await world.count(users, users.c.email_key == person.email) == 1
        assert await grants_of(world, person.user_id) == {
            other.id: ({"read_only"}, False),
            msp.id: ({"admin"}, False),
        }
        signed_in = {"Authorization": f"Bearer {response.json()['access_token']}"}
        me = (await world.client.get("/v1/me", headers=signed_in)).json()
        assert me["counts"] == {"tenants": 2, "grants": 2}
        mine = await world.my_tenants(signed_in)
        assert {t["id"] for t in mine} == {str(other.id), str(msp.id)}
        assert "user.created" not in await audit_actions(world)

    async def test_accepting_uses_the_offers_as_last_edited(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        made = await invited(world, msp.id, msp.admin, "ada@example.com", [offer(msp.id)])
        token = await link_for(world, smtp, "ada@example.com")
        await world.client.patch(
            f"/v1/tenants/{msp.id}/invitations/{made['id']}",
            json={"authorizations": [offer(msp.id, "admin")]},
            headers=msp.admin.headers,
        )
        assert (await accept_as_new(world, token)).status_code == 201
        (user,) = await world.rows(sa.select(users.c.id).where(users.c.email == "ada@example.com"))
        assert await grants_of(world, user.id) == {msp.id: ({"admin"}, False)}


class TestTenantDeletion:
    async def test_invitations_made_in_or_offering_only_a_deleted_account_are_revoked(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        acme = await world.tenant(msp.id, msp.admin)
        zeta = await world.tenant(msp.id, msp.admin)
        client_admin = await world.user(msp.id, [(acme["id"], ["admin"], False)])
        made_in_acme = await invited(world, acme["id"], client_admin, "in@example.com", [offer()])
        only_acme = await invited(world, msp.id, msp.admin, "only@example.com", [offer(acme["id"])])
        both = await invited(
            world, msp.id, msp.admin, "both@example.com", [offer(acme["id"]), offer(zeta["id"])]
        )
        tokens = {to: accept_token(m) for to, m in (await delivered(world, smtp)).items()}
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients/delete",
            json={"ids": [acme["id"]], "confirm": "delete"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        for made in (made_in_acme, only_acme):
            row = await invitation_row(world, made["id"])
            assert (row.status, row.token_hash) == ("revoked", None)
        assert (await invitation_row(world, both["id"])).status == "pending"
        assert await offers_of(world, both["id"]) == {UUID(zeta["id"]): ({"read_only"}, False)}
        for email in ("in@example.com", "only@example.com"):
            assert_problem(await preview(world, tokens[email]), 400, "invalid_token")
        assert (await accept_as_new(world, tokens["both@example.com"])).status_code == 201


# --- races, with real commits on PostgreSQL -----------------------------------------------


class TestConcurrency:
    async def test_accepting_one_link_many_times_at_once_makes_one_user(
        self, live_database: str, smtp: SmtpServer
    ) -> None:
        async with live_client(live_database, smtp_url=smtp.url, mail_dispatcher=False) as client:
            root, headers = await live_msp(client, "accept-race")
            state = state_of(client)
            for round_ in range(3):
                email = f"racer{round_}@example.com"
                response = await client.post(
                    f"/v1/tenants/{root}/invitations",
                    json={"emails": [email], "authorizations": [offer(root, "admin")]},
                    headers=headers,
                )
                assert response.status_code == 201, response.text
                await state.dispatcher.deliver_due()
                (mail,) = smtp.inbox.take()
                token = accept_token(mail)
                body = {"token": token, "first_name": "R", "last_name": "R",
                        "password": NEW_PASSWORD}  # fmt: skip
                answers = await asyncio.gather(
                    *(client.post("/v1/invitations/accept", json=body) for _ in range(6))
                )
                assert Counter(r.status_code for r in answers) == {201: 1, 400: 5}
                assert {r.json()["code"] for r in answers if r.status_code == 400} == {
                    "invalid_token"
                }
                async with state.database.session() as session:
                    count = await session.scalar(
                        sa.select(sa.func.count()).select_from(users).where(users.c.email == email)
                    )
                    opened = await session.scalar(
                        sa.select(sa.func.count())
                        .select_from(sessions)
                        .join(users, users.c.id == sessions.c.user_id)
                        .where(users.c.email == email)
                    )
                assert (count, opened) == (1, 1)

    async def test_one_email_invited_many_times_at_once_gets_one_invitation(
        self, live_database: str
    ) -> None:
        async with live_client(live_database, mail_dispatcher=False) as client:
            root, headers = await live_msp(client, "invite-race")
            answers = await asyncio.gather(
                *(
                    client.post(
                        f"/v1/tenants/{root}/invitations",
                        json={"emails": ["once@example.com"], "authorizations": [offer(root)]},
                        headers=headers,
                    )
                    for _ in range(6)
                )
            )
            assert Counter(r.status_code for r in answers) == {201: 1, 409: 5}
            assert {r.json()["code"] for r in answers if r.status_code == 409} == {
                "invitation_exists"
            }
            async with state_of(client).database.session() as session:
                count = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(invitations)
                    .where(invitations.c.email_key == "once@example.com")
                )
            assert count == 1

    async def test_two_invitations_for_one_new_email_accepted_at_once_make_one_user(
        self, live_database: str, smtp: SmtpServer
    ) -> None:
        async with live_client(live_database, smtp_url=smtp.url, mail_dispatcher=False) as client:
            state = state_of(client)
            for tree in ("first-tree", "second-tree"):
                root, headers = await live_msp(client, tree)
                response = await client.post(
                    f"/v1/tenants/{root}/invitations",
                    json={"emails": ["both@example.com"], "authorizations": [offer(root)]},
                    headers=headers,
                )
                assert response.status_code == 201, response.text
            await state.dispatcher.deliver_due()
            tokens = [accept_token(mail) for mail in smtp.inbox.take()]
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/v1/invitations/accept",
                        json={
                            "token": token,
                            "first_name": "B",
                            "last_name": "B",
                            "password": NEW_PASSWORD,
                        },
                    )
                    for token in tokens
                )
            )
            # The loser is told to retry as the account that now exists, never a 500.
            codes = sorted((r.status_code, r.json().get("code")) for r in answers)
            assert codes[0] == (201, None)
            assert codes[1] in {(409, "conflict"), (422, "validation_error")}, codes
            async with state.database.session() as session:
                count = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(users)
                    .where(users.c.email_key == "both@example.com")
                )
            assert count == 1
