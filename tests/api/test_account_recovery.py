"""Forgot password, admin-sent reset links, verified changes of email and sessions, over HTTP,
with every link read from a real SMTP server on loopback."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa

from access_api.repositories.orm import (
    audit_events,
    email_changes,
    password_resets,
    sessions,
)
from tests.api.conftest import PASSWORD, Login, Msp, World, assert_problem, delivered
from tests.api.test_totp import enable
from tests.mail import SmtpServer, plain_text

PUBLIC = "https://app.access-api.test"
NEW_PASSWORD = "a fresh and rather long passphrase"
COUNTED = {"throttle_buckets"}


def link_token(message: EmailMessage, path: str) -> str:
    """The token of the link to path, read as a person would: the link alone on its line."""
    pattern = re.compile(rf"^{re.escape(PUBLIC + path)}\?token=(\S+)$", re.M)
    (token,) = pattern.findall(plain_text(message))
    return unquote(token)


async def forgot(world: World, email: str) -> Any:
    return await world.client.post("/v1/auth/password-reset", json={"email": email})


async def confirm(world: World, token: str, password: str = NEW_PASSWORD) -> Any:
    return await world.client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": password}
    )


async def live_sessions(world: World, who: Login) -> int:
    return await world.count(
        sessions, sessions.c.user_id == who.user_id, sessions.c.ended_at.is_(None)
    )


class TestForgotPassword:
    async def test_a_known_email_gets_a_link_that_sets_the_password_and_ends_sessions(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        other = await world.login(msp.admin.email)
        response = await forgot(world, msp.admin.email.upper())
        assert response.status_code == 202
        assert "on its way" in response.json()["detail"]
        mail = (await delivered(world, smtp))[msp.admin.email]
        assert mail["Subject"] == "Reset your password"
        token = link_token(mail, "/reset-password")
        assert await live_sessions(world, msp.admin) == 2
        assert (await confirm(world, token)).status_code == 204
        assert await live_sessions(world, msp.admin) == 0
        for stale in (msp.admin, other):
            assert_problem(
                await world.client.get("/v1/me", headers=stale.headers), 401, "unauthenticated"
            )
        assert (await world.login(msp.admin.email, NEW_PASSWORD)).token
        wrong = await world.client.post(
            "/v1/auth/login", json={"email": msp.admin.email, "password": PASSWORD}
        )
        assert_problem(wrong, 401, "invalid_credentials")
        actions = [
            row.action
            for row in await world.rows(
                sa.select(audit_events.c.action).where(
                    audit_events.c.action.like("password_reset.%")
                )
            )
        ]
        assert sorted(actions) == ["password_reset.completed", "password_reset.requested"]

    async def test_an_unknown_email_gets_the_same_answer_and_no_mail(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        started = time.monotonic()
        known = await forgot(world, msp.admin.email)
        middle = time.monotonic()
        unknown = await forgot(world, "nobody-here@example.com")
        # Both answers wait out the same floor (ACCESS_API_PASSWORD_RESET_ANSWER_SECONDS).
        floor = world.state.settings.password_reset_answer_seconds
        assert floor > 0
        assert middle - started >= floor
        assert time.monotonic() - middle >= floor
        assert (unknown.status_code, unknown.content) == (known.status_code, known.content)
        assert set(unknown.headers) == set(known.headers)
        assert list(await delivered(world, smtp)) == [msp.admin.email]
        assert await world.count(password_resets) == 1

    async def test_a_link_works_once(self, world: World, msp: Msp, smtp: SmtpServer) -> None:
        await forgot(world, msp.admin.email)
        token = link_token((await delivered(world, smtp))[msp.admin.email], "/reset-password")
        assert (await confirm(world, token)).status_code == 204
        before = await world.snapshot(ignore=COUNTED)
        assert_problem(
            await confirm(world, token, "another long passphrase here"), 400, "invalid_token"
        )
        assert await world.snapshot(ignore=COUNTED) == before

    async def test_a_link_expires_after_an_hour(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        await forgot(world, msp.admin.email)
        token = link_token((await delivered(world, smtp))[msp.admin.email], "/reset-password")
        world.clock.advance(timedelta(hours=1, seconds=1))
        before = await world.snapshot(ignore=COUNTED)
        assert_problem(await confirm(world, token), 400, "invalid_token")
        assert await world.snapshot(ignore=COUNTED) == before

    async def test_a_new_request_kills_the_previous_link(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        await forgot(world, msp.admin.email)
        first = link_token((await delivered(world, smtp))[msp.admin.email], "/reset-password")
        await forgot(world, msp.admin.email)
        second = link_token((await delivered(world, smtp))[msp.admin.email], "/reset-password")
        assert_problem(await confirm(world, first), 400, "invalid_token")
        assert (await confirm(world, second)).status_code == 204

    async def test_a_weak_password_is_refused_and_the_link_survives(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        await forgot(world, msp.admin.email)
        token = link_token((await delivered(world, smtp))[msp.admin.email], "/reset-password")
        before = await world.snapshot()
        body = assert_problem(await confirm(world, token, "short"), 422, "validation_error")
        assert body["errors"][0]["field"] == "new_password"
        assert await world.snapshot() == before
        assert (await confirm(world, token)).status_code == 204

    async def test_two_factor_still_applies_after_a_reset(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        await enable(world, msp.admin)
        await forgot(world, msp.admin.email)
        token = link_token((await delivered(world, smtp))[msp.admin.email], "/reset-password")
        assert (await confirm(world, token)).status_code == 204
        asked = await world.client.post(
            "/v1/auth/login", json={"email": msp.admin.email, "password": NEW_PASSWORD}
        )
        assert_problem(asked, 401, "otp_required")

    async def test_requests_are_throttled_per_account(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        answers = [(await forgot(world, msp.admin.email)).status_code for _ in range(6)]
        assert answers[:5] == [202] * 5
        assert_problem(await forgot(world, msp.admin.email), 429, "rate_limited")
        # Unknown addresses are throttled alike: a lock tells nothing about an account.
        for _ in range(5):
            await forgot(world, "ghost@example.com")
        assert_problem(await forgot(world, "ghost@example.com"), 429, "rate_limited")

    async def test_wrong_links_are_throttled_per_address(self, world: World, msp: Msp) -> None:
        for attempt in range(20):
            assert_problem(await confirm(world, f"apr_guess-{attempt}"), 400, "invalid_token")
        locked = await confirm(world, "apr_one-more-guess")
        assert_problem(locked, 429, "rate_limited")
        assert int(locked.headers["Retry-After"]) > 0

    async def test_an_unknown_field_is_refused(self, world: World, msp: Msp) -> None:
        response = await world.client.post(
            "/v1/auth/password-reset", json={"email": msp.admin.email, "password": "x"}
        )
        assert_problem(response, 422, "validation_error")


class TestAdminSentResets:
    async def test_an_admin_sends_links_and_never_sees_the_password(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        user = await world.user(msp.id, [(msp.id, ["read_only"], False)])
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/password-resets",
            json={"user_ids": [str(user.user_id)]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 202, response.text
        assert response.json() == {"user_ids": [str(user.user_id)]}
        mail = (await delivered(world, smtp))[user.email]
        assert msp.admin.email in plain_text(mail)
        token = link_token(mail, "/reset-password")
        assert (await confirm(world, token)).status_code == 204
        assert (await world.login(user.email, NEW_PASSWORD)).token
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "password_reset.requested")
        )
        assert (event.actor_user_id, event.tenant_id) == (msp.admin.user_id, msp.id)

    async def test_never_yourself(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/password-resets",
            json={"user_ids": [str(msp.admin.user_id)]},
            headers=msp.admin.headers,
        )
        assert_problem(response, 403, "cannot_reset_own_password")
        assert await world.snapshot() == before

    async def test_downward_only_and_with_users_write(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        client_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        technician = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["read_only"], False)]
        )
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        outside = await world.client.post(
            f"/v1/tenants/{client['id']}/users/password-resets",
            json={"user_ids": [str(technician.user_id)]},
            headers=client_admin.headers,
        )
        assert_problem(outside, 403, "user_outside_scope")
        forbidden = await world.client.post(
            f"/v1/tenants/{msp.id}/users/password-resets",
            json={"user_ids": [str(technician.user_id)]},
            headers=reader.headers,
        )
        assert_problem(forbidden, 403, "forbidden")
        assert await world.snapshot() == before


class TestEmailChange:
    async def test_link_to_the_new_address_notice_to_the_old_switch_on_confirm(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        response = await world.client.post(
            "/v1/me/email",
            json={"new_email": "New.Address@example.com", "password": PASSWORD},
            headers=msp.admin.headers,
        )
        assert response.status_code == 202, response.text
        assert response.json()["new_email"] == "New.Address@example.com"
        mails = await delivered(world, smtp)
        assert "New.Address@example.com" in plain_text(mails[msp.admin.email])
        token = link_token(mails["new.address@example.com"], "/confirm-email")
        me = await world.client.get("/v1/me", headers=msp.admin.headers)
        assert me.json()["email"] == msp.admin.email  # not before the confirmation
        confirmed = await world.client.post("/v1/me/email/confirm", json={"token": token})
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json() == {"email": "New.Address@example.com"}
        assert (await world.login("new.address@example.com")).token
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "user.email_changed")
        )
        assert event.changes == {
            "email": {"before": msp.admin.email, "after": "New.Address@example.com"}
        }
        again = await world.client.post("/v1/me/email/confirm", json={"token": token})
        assert_problem(again, 400, "invalid_token")

    async def test_email_taken_meanwhile(self, world: World, msp: Msp, smtp: SmtpServer) -> None:
        await world.client.post(
            "/v1/me/email",
            json={"new_email": "wanted@example.com", "password": PASSWORD},
            headers=msp.admin.headers,
        )
        token = link_token((await delivered(world, smtp))["wanted@example.com"], "/confirm-email")
        await world.user(msp.id, email="wanted@example.com", login=False)
        before = await world.snapshot(ignore=COUNTED)
        taken = await world.client.post("/v1/me/email/confirm", json={"token": token})
        assert_problem(taken, 409, "email_taken")
        assert await world.snapshot(ignore=COUNTED) == before

    async def test_refusals_change_nothing(self, world: World, msp: Msp) -> None:
        other = await world.user(msp.id, email="someone@example.com")
        before = await world.snapshot()
        cases = [
            (
                {"new_email": "x@example.com", "password": "wrong password!!"},
                422,
                "validation_error",
            ),
            ({"new_email": other.email, "password": PASSWORD}, 409, "email_taken"),
            ({"new_email": msp.admin.email, "password": PASSWORD}, 422, "validation_error"),
            ({"new_email": "not an email", "password": PASSWORD}, 422, "validation_error"),
        ]
        for body, status, code in cases:
            response = await world.client.post("/v1/me/email", json=body, headers=msp.admin.headers)
            assert_problem(response, status, code)
        assert await world.snapshot() == before
        patch = await world.client.patch(
            "/v1/me", json={"email": "x@example.com"}, headers=msp.admin.headers
        )
        assert_problem(patch, 422, "email_immutable")

    async def test_the_link_expires_after_a_day(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        await world.client.post(
            "/v1/me/email",
            json={"new_email": "later@example.com", "password": PASSWORD},
            headers=msp.admin.headers,
        )
        token = link_token((await delivered(world, smtp))["later@example.com"], "/confirm-email")
        world.clock.advance(timedelta(hours=24, seconds=1))
        assert_problem(
            await world.client.post("/v1/me/email/confirm", json={"token": token}),
            400,
            "invalid_token",
        )
        assert await world.count(email_changes, email_changes.c.used_at.is_(None)) == 1


class TestSessions:
    async def test_list_marks_the_current_one_and_revoke_others_keeps_it(
        self, world: World, msp: Msp
    ) -> None:
        second = await world.login(msp.admin.email)
        listed = await world.client.get("/v1/me/sessions", headers=msp.admin.headers)
        items = listed.json()["items"]
        assert len(items) == 2
        assert [i["current"] for i in items].count(True) == 1
        assert set(items[0]) == {"id", "created_at", "last_seen_at", "ip", "user_agent", "current"}
        revoked = await world.client.post(
            "/v1/me/sessions/revoke-others", headers=msp.admin.headers
        )
        assert revoked.json() == {"revoked": 1}
        assert_problem(
            await world.client.get("/v1/me", headers=second.headers), 401, "unauthenticated"
        )
        assert (await world.client.get("/v1/me", headers=msp.admin.headers)).status_code == 200

    async def test_delete_one_of_mine_but_not_someone_elses(self, world: World, msp: Msp) -> None:
        second = await world.login(msp.admin.email)
        other = await world.user(msp.id, [(msp.id, ["admin"], True)])
        mine = (await world.client.get("/v1/me/sessions", headers=second.headers)).json()
        current = next(i for i in mine["items"] if i["current"])
        before = await world.snapshot()
        refused = await world.client.delete(
            f"/v1/me/sessions/{current['id']}", headers=other.headers
        )
        assert_problem(refused, 404, "not_found")
        assert await world.snapshot() == before
        ended = await world.client.delete(
            f"/v1/me/sessions/{current['id']}", headers=msp.admin.headers
        )
        assert ended.status_code == 204
        assert_problem(
            await world.client.get("/v1/me", headers=second.headers), 401, "unauthenticated"
        )

    async def test_admins_list_and_revoke_a_users_sessions_downward_only(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        user = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        listed = await world.client.get(
            f"/v1/tenants/{client['id']}/users/{user.user_id}/sessions", headers=msp.admin.headers
        )
        assert listed.status_code == 200, listed.text
        assert [i["current"] for i in listed.json()["items"]] == [False]
        client_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        before = await world.snapshot()
        outside = await world.client.post(
            f"/v1/tenants/{client['id']}/users/sessions/revoke",
            json={"user_ids": [str(msp.admin.user_id)]},
            headers=client_admin.headers,
        )
        assert_problem(outside, 403, "user_outside_scope")
        assert await world.snapshot() == before
        revoked = await world.client.post(
            f"/v1/tenants/{client['id']}/users/sessions/revoke",
            json={"user_ids": [str(user.user_id)]},
            headers=client_admin.headers,
        )
        assert revoked.json() == {"revoked": 1}
        assert_problem(
            await world.client.get("/v1/me", headers=user.headers), 401, "unauthenticated"
        )
        events = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "session.revoked")
        )
        assert len(events) == 1

    async def test_sessions_manage_is_needed_and_admin_holds_it(
        self, world: World, msp: Msp
    ) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        refused = await world.client.get(
            f"/v1/tenants/{msp.id}/users/{msp.admin.user_id}/sessions", headers=reader.headers
        )
        assert_problem(refused, 403, "forbidden")
        assert await world.snapshot() == before
        me = (await world.client.get("/v1/me", headers=msp.admin.headers)).json()
        assert me["counts"]["tenants"] == 1
        [root] = await world.my_tenants(msp.admin.headers)
        assert "sessions.manage" in root["permissions"]

    async def test_a_user_seen_from_above_cannot_be_listed_from_below(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        technician = await world.user(
            msp.id, [(msp.id, ["read_only"], False), (client["id"], ["read_only"], False)]
        )
        client_admin = await world.user(msp.id, [(client["id"], ["admin"], False)])
        refused = await world.client.get(
            f"/v1/tenants/{client['id']}/users/{technician.user_id}/sessions",
            headers=client_admin.headers,
        )
        assert_problem(refused, 403, "user_outside_scope")
