"""Two-factor resets confirmed by email (seed 000), sign-in codes by email (seed 003), and the
throttling of links: over HTTP, with the mail read from a real SMTP server on loopback."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import httpx
import sqlalchemy as sa

from access_api.repositories.orm import audit_events, email_codes, two_factor_resets, users
from tests.api.conftest import PASSWORD, Login, Msp, World, assert_problem, delivered
from tests.api.test_totp import code, enable, login
from tests.mail import SmtpServer, plain_text

PUBLIC = "https://app.access-api.test"
COUNTED = {"throttle_buckets"}  # refused links and codes are counted for throttling
_LINK = re.compile(r"^" + re.escape(PUBLIC) + r"/two-factor-reset/(confirm|deny)\?token=(\S+)$")
_CODE = re.compile(r"^(\d{6})$")


def reset_links(message: EmailMessage) -> dict[str, str]:
    """The confirm and deny tokens, read as a person would: each link alone on its line."""
    found = {}
    for line in plain_text(message).splitlines():
        match = _LINK.match(line)
        if match:
            found[match.group(1)] = unquote(match.group(2))
    assert set(found) == {"confirm", "deny"}, plain_text(message)
    return found


def sign_in_code(message: EmailMessage) -> str:
    (found,) = [m.group(1) for m in map(_CODE.match, plain_text(message).splitlines()) if m]
    return found


async def request_reset(world: World, context: Any, by: Login, *users_: Login) -> httpx.Response:
    return await world.client.post(
        f"/v1/tenants/{context}/two-factor-resets",
        json={"user_ids": [str(u.user_id) for u in users_]},
        headers=by.headers,
    )


async def answer(world: World, which: str, token: str) -> httpx.Response:
    return await world.client.post(f"/v1/two-factor-resets/{which}", json={"token": token})


async def two_factor_of(world: World, who: Login) -> Any:
    (row,) = await world.rows(
        sa.select(users.c.two_factor, users.c.totp_secret).where(users.c.id == who.user_id)
    )
    return row


async def totp_user(world: World, msp: Msp) -> tuple[Login, str]:
    tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
    return tech, await enable(world, tech)


class TestRequest:
    async def test_each_user_gets_an_email_with_a_confirm_and_a_deny_link(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        tech, _ = await totp_user(world, msp)
        response = await request_reset(world, msp.id, msp.admin, tech)
        assert response.status_code == 201, response.text
        (item,) = response.json()["items"]
        assert (item["user"]["id"], item["status"]) == (str(tech.user_id), "pending")
        mail = (await delivered(world, smtp))[tech.email.lower()]
        links = reset_links(mail)
        assert "Reset your two-factor authentication token" in plain_text(mail)
        assert "Deny this two-factor authentication reset" in plain_text(mail)
        (row,) = await world.rows(sa.select(two_factor_resets))
        stored = (row.confirm_token_hash, row.deny_token_hash)
        assert stored == (
            world.state.keyring.digest(links["confirm"]),
            world.state.keyring.digest(links["deny"]),
        )
        assert (await two_factor_of(world, tech)).two_factor == "totp"  # nothing yet

    async def test_refusals_name_every_user_and_change_nothing(
        self, world: World, msp: Msp
    ) -> None:
        tech, _ = await totp_user(world, msp)
        no_totp = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        stranger = await world.user((await world.msp(name="Other")).id, [])
        await enable(world, msp.admin)
        before = await world.snapshot()
        response = await request_reset(world, msp.id, msp.admin, tech, no_totp, stranger, msp.admin)
        problem = assert_problem(response, 422, "bulk_refused")
        assert {(e["id"], e["code"]) for e in problem["errors"]} == {
            (str(no_totp.user_id), "two_factor_not_enabled"),
            (str(stranger.user_id), "not_found"),
            (str(msp.admin.user_id), "cannot_reset_own_two_factor"),
        }
        assert await world.snapshot() == before

    async def test_nobody_resets_their_own(self, world: World, msp: Msp) -> None:
        await enable(world, msp.admin)
        before = await world.snapshot()
        response = await request_reset(world, msp.id, msp.admin, msp.admin)
        assert_problem(response, 403, "cannot_reset_own_two_factor")
        assert await world.snapshot() == before

    async def test_a_client_admin_cannot_reset_an_msp_technician(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        local = await world.user(msp.id, [(client["id"], ["admin"], False)])
        tech = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["admin"], False)]
        )
        await enable(world, tech)
        before = await world.snapshot()
        response = await request_reset(world, client["id"], local, tech)
        assert_problem(response, 403, "user_outside_scope")
        assert await world.snapshot() == before

    async def test_needs_two_factor_reset(self, world: World, msp: Msp) -> None:
        tech, _ = await totp_user(world, msp)
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        response = await request_reset(world, msp.id, reader, tech)
        assert_problem(response, 403, "forbidden")

    async def test_a_new_request_replaces_an_unanswered_one(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        tech, _ = await totp_user(world, msp)
        await request_reset(world, msp.id, msp.admin, tech)
        first = reset_links((await delivered(world, smtp))[tech.email.lower()])
        await request_reset(world, msp.id, msp.admin, tech)
        second = reset_links((await delivered(world, smtp))[tech.email.lower()])
        assert_problem(await answer(world, "confirm", first["confirm"]), 400, "invalid_token")
        assert (await answer(world, "confirm", second["confirm"])).status_code == 200


class TestConfirm:
    async def test_clears_the_authenticator_and_signing_in_falls_back_to_email_codes(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        tech, secret = await totp_user(world, msp)
        await request_reset(world, msp.id, msp.admin, tech)
        links = reset_links((await delivered(world, smtp))[tech.email.lower()])
        response = await answer(world, "confirm", links["confirm"])
        assert response.json() == {"status": "confirmed", "two_factor": "email"}
        row = await two_factor_of(world, tech)
        assert (row.two_factor, row.totp_secret) == ("email", None)
        # The old authenticator no longer signs in; a code by email does.
        assert_problem(await login(world, tech, code(secret, world)), 401, "invalid_otp")
        world.clock.advance(timedelta(minutes=1))
        asked = await login(world, tech)
        assert_problem(asked, 401, "otp_required")
        emailed = sign_in_code((await delivered(world, smtp))[tech.email.lower()])
        assert (await login(world, tech, emailed)).status_code == 200
        actions = {r.action for r in await world.rows(sa.select(audit_events.c.action))}
        assert {"two_factor.reset_requested", "two_factor.reset_confirmed"} <= actions

    async def test_each_link_works_once_and_the_other_dies_with_it(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        tech, _ = await totp_user(world, msp)
        await request_reset(world, msp.id, msp.admin, tech)
        links = reset_links((await delivered(world, smtp))[tech.email.lower()])
        assert (await answer(world, "confirm", links["confirm"])).status_code == 200
        before = await world.snapshot(ignore=COUNTED)
        for which in ("confirm", "deny"):
            assert_problem(await answer(world, which, links[which]), 400, "invalid_token")
        assert_problem(await answer(world, "confirm", "tfr_unknown"), 400, "invalid_token")
        assert await world.snapshot(ignore=COUNTED) == before

    async def test_links_expire(self, world: World, msp: Msp, smtp: SmtpServer) -> None:
        tech, _ = await totp_user(world, msp)
        await request_reset(world, msp.id, msp.admin, tech)
        links = reset_links((await delivered(world, smtp))[tech.email.lower()])
        world.clock.advance(timedelta(hours=24, seconds=1))
        before = await world.snapshot(ignore=COUNTED)
        assert_problem(await answer(world, "confirm", links["confirm"]), 400, "invalid_token")
        assert await world.snapshot(ignore=COUNTED) == before
        assert (await two_factor_of(world, tech)).two_factor == "totp"


class TestDeny:
    async def test_leaves_everything_as_it_was(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        tech, secret = await totp_user(world, msp)
        await request_reset(world, msp.id, msp.admin, tech)
        links = reset_links((await delivered(world, smtp))[tech.email.lower()])
        response = await answer(world, "deny", links["deny"])
        assert response.json() == {"status": "denied", "two_factor": "totp"}
        assert (await two_factor_of(world, tech)).two_factor == "totp"
        assert (await login(world, tech, code(secret, world))).status_code == 200
        assert_problem(await answer(world, "confirm", links["confirm"]), 400, "invalid_token")


class TestList:
    async def test_shows_pending_confirmed_denied_and_expired(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        people = [await totp_user(world, msp) for _ in range(4)]
        await request_reset(world, msp.id, msp.admin, *(p for p, _ in people))
        mails = await delivered(world, smtp)
        links = {p.user_id: reset_links(mails[p.email.lower()]) for p, _ in people}
        await answer(world, "confirm", links[people[0][0].user_id]["confirm"])
        await answer(world, "deny", links[people[1][0].user_id]["deny"])
        world.clock.advance(timedelta(hours=25))
        admin = await world.login(msp.admin.email)  # a day later: a new session
        await request_reset(world, msp.id, admin, people[3][0])  # pending again

        async def listed(**params: str) -> list[tuple[UUID, str]]:
            response = await world.client.get(
                f"/v1/tenants/{msp.id}/two-factor-resets", params=params, headers=admin.headers
            )
            assert response.status_code == 200, response.text
            return [(UUID(i["user"]["id"]), i["status"]) for i in response.json()["items"]]

        # Confirmed, denied, one left unanswered past its day, and one replaced by a new request.
        assert sorted(status for _, status in await listed()) == [
            "confirmed", "denied", "expired", "expired", "pending",
        ]  # fmt: skip
        assert {status for _, status in await listed(status="expired")} == {"expired"}
        assert await listed(status="pending") == [(people[3][0].user_id, "pending")]


class TestEmailCodes:
    async def _email_user(self, world: World, msp: Msp) -> Login:
        person = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        await world.connection.execute(
            sa.update(users).where(users.c.id == person.user_id).values(two_factor="email")
        )
        return person

    async def test_a_six_digit_code_on_its_own_line_works_once(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        person = await self._email_user(world, msp)
        asked = await login(world, person)
        assert_problem(asked, 401, "otp_required")
        mail = (await delivered(world, smtp))[person.email.lower()]
        emailed = sign_in_code(mail)
        (stored,) = await world.rows(sa.select(email_codes.c.code_hash))
        assert emailed not in stored.code_hash
        assert (await login(world, person, emailed)).status_code == 200
        assert_problem(await login(world, person, emailed), 401, "invalid_otp")

    async def test_a_wrong_or_expired_code_is_refused(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        person = await self._email_user(world, msp)
        await login(world, person)
        emailed = sign_in_code((await delivered(world, smtp))[person.email.lower()])
        wrong = "000000" if emailed != "000000" else "111111"
        assert_problem(await login(world, person, wrong), 401, "invalid_otp")
        world.clock.advance(timedelta(minutes=10, seconds=1))
        assert_problem(await login(world, person, emailed), 401, "invalid_otp")

    async def test_at_most_one_email_a_minute_and_only_the_latest_code_counts(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        person = await self._email_user(world, msp)
        await login(world, person)
        await login(world, person)
        first = await delivered(world, smtp)
        assert list(first) == [person.email.lower()]
        world.clock.advance(timedelta(minutes=1))
        await login(world, person)
        latest = sign_in_code((await delivered(world, smtp))[person.email.lower()])
        earlier = sign_in_code(first[person.email.lower()])
        if earlier != latest:
            assert_problem(await login(world, person, earlier), 401, "invalid_otp")
        assert (await login(world, person, latest)).status_code == 200


class TestLinkThrottling:
    async def test_an_address_trying_many_links_is_refused_for_a_while(
        self, world: World, msp: Msp
    ) -> None:
        for n in range(20):
            assert_problem(await answer(world, "confirm", f"tfr_guess{n}"), 400, "invalid_token")
        locked = await answer(world, "confirm", "tfr_guess-more")
        assert_problem(locked, 429, "rate_limited")
        assert int(locked.headers["retry-after"]) == 60
        preview = await world.client.get("/v1/invitations/preview", params={"token": "inv_x"})
        assert_problem(preview, 429, "rate_limited")  # one counter for every kind of link
        world.clock.advance(timedelta(minutes=1, seconds=1))
        assert_problem(await answer(world, "deny", "tfr_again"), 400, "invalid_token")


class TestInvitationToAnAccountWithTwoFactor:
    async def test_accepting_asks_for_the_accounts_second_factor(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        other = await world.msp(name="Other MSP")
        person = await world.user(other.id, [(other.id, ["read_only"], True)])
        secret = await enable(world, person)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={"emails": [person.email], "authorizations": [{"roles": ["read_only"]}]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 201, response.text
        text = plain_text((await delivered(world, smtp))[person.email.lower()])
        (token,) = re.findall(r"accept-invitation\?token=(\S+)", text)
        token = unquote(token)
        body = {"token": token, "password": PASSWORD}
        asked = await world.client.post("/v1/invitations/accept", json=body)
        assert_problem(asked, 401, "otp_required")
        accepted = await world.client.post(
            "/v1/invitations/accept", json={**body, "otp": code(secret, world)}
        )
        assert accepted.status_code == 201, accepted.text
