"""Nothing that can log someone in is ever stored or logged in clear (SPEC §1).

One run creates every kind of secret the service knows (passwords, session tokens, API keys,
agent tokens, invitation and reset links, TOTP secrets and codes, emailed sign-in codes,
password reset and email-change links, recovery codes, passkey challenges), with
the SQL engine logging its statements and parameters; then every log line and every value of
every table is searched for each of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import timedelta
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from access_api.repositories.orm import metadata
from tests.api.conftest import PASSWORD, Login, Msp, World, delivered
from tests.api.test_totp import code, enrol
from tests.api.test_two_factor_resets import reset_links, sign_in_code
from tests.authenticator import Authenticator
from tests.mail import SmtpServer, plain_text

NEW_PASSWORD = "a brand new person's long passphrase"
CHANGED_PASSWORD = "the changed and even longer passphrase"
RESET_PASSWORD = "a passphrase chosen through a reset link"


async def _values(world: World) -> list[str]:
    """Every value of every table, as text (bytes as latin-1, so sealed blobs are searched too)."""
    found: list[str] = []
    for table in metadata.sorted_tables:
        for row in await world.rows(sa.select(table)):
            for value in row:
                if isinstance(value, bytes | bytearray | memoryview):
                    found.append(bytes(value).decode("latin-1"))
                elif value is not None:
                    found.append(str(value))
    return found


def _leaks(secret: str, haystacks: Iterable[str], *, whole_word: bool) -> list[str]:
    if whole_word:  # short numeric codes: as a whole number, not inside a digest or a UUID
        pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])")
        return [h[:120] for h in haystacks if pattern.search(h)]
    return [h[:120] for h in haystacks if secret in h]


@pytest.fixture
def sql_logged() -> Iterator[None]:
    """SQLAlchemy logs every statement with its parameters, from before the test's connection
    is opened (a connection decides whether it logs when it is made), and stops afterwards."""
    logger = logging.getLogger("sqlalchemy.engine")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


class TestSecretsAtRest:
    async def test_no_secret_of_a_full_run_is_stored_or_logged_in_clear(
        self,
        sql_logged: None,
        world: World,
        msp: Msp,
        smtp: SmtpServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        secrets: set[str] = {PASSWORD, msp.admin.token}
        codes: set[str] = set()
        client = await world.tenant(msp.id, msp.admin)

        # An invitation, accepted by a new person: a link, a password, a session.
        invited = await world.client.post(
            f"/v1/tenants/{msp.id}/invitations",
            json={
                "emails": ["new.person@example.com"],
                "authorizations": [{"tenant_id": client["id"], "roles": ["read_only"]}],
            },
            headers=msp.admin.headers,
        )
        assert invited.status_code == 201, invited.text
        text = plain_text((await delivered(world, smtp))["new.person@example.com"])
        (link_token,) = re.findall(r"accept-invitation\?token=(\S+)", text)
        accepted = await world.client.post(
            "/v1/invitations/accept",
            json={
                "token": unquote(link_token),
                "first_name": "New",
                "last_name": "Person",
                "password": NEW_PASSWORD,
            },
        )
        assert accepted.status_code == 201, accepted.text
        person = Login(
            (await world.client.get(
                "/v1/me", headers={"Authorization": f"Bearer {accepted.json()['access_token']}"}
            )).json()["id"],
            "new.person@example.com",
            NEW_PASSWORD,
            accepted.json()["access_token"],
        )  # fmt: skip
        secrets |= {unquote(link_token), NEW_PASSWORD, person.token}

        # API keys: generated, regenerated, and one made with an Idempotency-Key (whose first
        # answer, holding the key, is kept to replay).
        keys_url = f"/v1/tenants/{msp.id}/users/{msp.admin.user_id}/api-keys"
        key = (
            await world.client.post(keys_url, json={"name": "psa"}, headers=msp.admin.headers)
        ).json()
        again = await world.client.post(
            f"{keys_url}/{key['id']}/regenerate", headers=msp.admin.headers
        )
        replayed = await world.client.post(
            keys_url,
            json={"name": "rmm"},
            headers={**msp.admin.headers, "Idempotency-Key": "make-rmm-key"},
        )
        secrets |= {key["key"], again.json()["key"], replayed.json()["key"]}
        assert (
            await world.client.get(
                "/v1/me", headers={"Authorization": f"Bearer {again.json()['key']}"}
            )
        ).status_code == 200

        # Agent tokens: provisioned, then reprovisioned.
        agents_url = f"/v1/tenants/{msp.id}/users/{msp.admin.user_id}/agents"
        agent = (
            await world.client.post(
                agents_url, json={"name": "collector"}, headers=msp.admin.headers
            )
        ).json()
        renewed = await world.client.post(
            f"{agents_url}/{agent['id']}/reprovision", headers=msp.admin.headers
        )
        secrets |= {agent["token"], renewed.json()["token"]}

        # TOTP: a secret, the code that enables it, a code at login.
        secret = await enrol(world, person)
        first = code(secret, world)
        enabled = await world.client.post(
            "/v1/me/two-factor/totp/verify", json={"code": first}, headers=person.headers
        )
        assert enabled.status_code == 200, enabled.text
        world.clock.advance(timedelta(seconds=30))  # the next code is the next step's
        second = code(secret, world)
        logged_in = await world.client.post(
            "/v1/auth/login",
            json={"email": person.email, "password": NEW_PASSWORD, "otp": second},
        )
        assert logged_in.status_code == 200, logged_in.text
        secrets |= {secret, logged_in.json()["access_token"]}
        codes |= {first, second}

        # A reset, confirmed through its link; then a sign-in code by email.
        asked = await world.client.post(
            f"/v1/tenants/{msp.id}/two-factor-resets",
            json={"user_ids": [person.user_id]},
            headers=msp.admin.headers,
        )
        assert asked.status_code == 201, asked.text
        links = reset_links((await delivered(world, smtp))[person.email])
        confirmed = await world.client.post(
            "/v1/two-factor-resets/confirm", json={"token": links["confirm"]}
        )
        assert confirmed.status_code == 200, confirmed.text
        secrets |= set(links.values())
        wanted = await world.client.post(
            "/v1/auth/login", json={"email": person.email, "password": NEW_PASSWORD}
        )
        assert wanted.status_code == 401
        emailed = sign_in_code((await delivered(world, smtp))[person.email])
        signed_in = await world.client.post(
            "/v1/auth/login",
            json={"email": person.email, "password": NEW_PASSWORD, "otp": emailed},
        )
        assert signed_in.status_code == 200, signed_in.text
        secrets.add(signed_in.json()["access_token"])
        codes.add(emailed)

        # A password change.
        changed = await world.client.post(
            "/v1/me/password",
            json={"current_password": NEW_PASSWORD, "new_password": CHANGED_PASSWORD},
            headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"},
        )
        assert changed.status_code == 204, changed.text
        secrets.add(CHANGED_PASSWORD)

        # Recovery codes (shown when TOTP was turned on): one used at login in place of a code.
        recovery = enabled.json()["recovery_codes"]
        recovered = await world.client.post(
            "/v1/auth/login",
            json={"email": person.email, "password": CHANGED_PASSWORD, "otp": recovery[0]},
        )
        assert recovered.status_code == 200, recovered.text
        secrets |= set(recovery) | {recovered.json()["access_token"]}

        # Forgot password: a reset link, and the password set through it.
        await world.client.post("/v1/auth/password-reset", json={"email": person.email})
        text = plain_text((await delivered(world, smtp))[person.email])
        (reset_token,) = re.findall(r"reset-password\?token=(\S+)", text)
        reset = await world.client.post(
            "/v1/auth/password-reset/confirm",
            json={"token": unquote(reset_token), "new_password": RESET_PASSWORD},
        )
        assert reset.status_code == 204, reset.text
        secrets |= {unquote(reset_token), RESET_PASSWORD}

        # A change of email, confirmed through its link.
        moved = await world.client.post(
            "/v1/me/email",
            json={"new_email": "moved.admin@example.com", "password": PASSWORD},
            headers=msp.admin.headers,
        )
        assert moved.status_code == 202, moved.text
        text = plain_text((await delivered(world, smtp))["moved.admin@example.com"])
        (email_token,) = re.findall(r"confirm-email\?token=(\S+)", text)
        switched = await world.client.post(
            "/v1/me/email/confirm", json={"token": unquote(email_token)}
        )
        assert switched.status_code == 200, switched.text
        secrets.add(unquote(email_token))

        # A passkey: registered, then used at login; its challenges are single-use secrets, and
        # its private key never leaves the authenticator.
        options = await world.client.post(
            "/v1/me/two-factor/webauthn/options", headers=msp.admin.headers
        )
        device = Authenticator("https://app.access-api.test")
        registered = await world.client.post(
            "/v1/me/two-factor/webauthn",
            json={"credential": device.create(options.json())},
            headers=msp.admin.headers,
        )
        assert registered.status_code == 201, registered.text
        asked_key = await world.client.post(
            "/v1/auth/login", json={"email": "moved.admin@example.com", "password": PASSWORD}
        )
        assertion = device.get(asked_key.json()["webauthn"])
        with_key = await world.client.post(
            "/v1/auth/login",
            json={"email": "moved.admin@example.com", "password": PASSWORD, "webauthn": assertion},
        )
        assert with_key.status_code == 200, with_key.text
        secrets |= {
            options.json()["challenge"],
            asked_key.json()["webauthn"]["challenge"],
            assertion["response"]["signature"],
            with_key.json()["access_token"],
        }

        stored = await _values(world)
        # The test's SMTP server runs in this process and logs what it receives under
        # "mail.log": that is the recipient's mailbox, where the links are meant to arrive.
        service = [r for r in caplog.records if r.name != "mail.log"]
        logged = [line for r in service for line in (r.getMessage(), str(r.args))]
        assert len(stored) > 300  # the run really wrote: users, grants, audit, outbox, ...
        assert any("INSERT INTO" in line for line in logged)  # and its SQL was logged
        for secret_ in secrets:
            assert not _leaks(secret_, stored, whole_word=False), f"stored: {secret_[:6]}…"
            assert not _leaks(secret_, logged, whole_word=False), f"logged: {secret_[:6]}…"
        for code_ in codes:
            assert not _leaks(code_, stored, whole_word=True), f"stored code {code_}"
            assert not _leaks(code_, logged, whole_word=True), f"logged code {code_}"
