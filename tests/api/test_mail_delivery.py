"""Mail delivery through the outbox: outages, retries, refusals, leases, several dispatchers,
the in-process dispatcher, and a worker process killed in the middle of a batch."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from access_api.db import Database
from access_api.main import create_app
from access_api.repositories.orm import outbox
from access_api.services.clock import FrozenClock
from access_api.services.mailer import ConsoleTransport, Dispatcher, parse_smtp_url
from access_api.settings import Settings
from tests.api.conftest import Msp, World
from tests.conftest import TEST_SECRET, settings_for
from tests.live import live_client, live_msp, start_worker, state_of, until
from tests.mail import PUBLIC_URL, SmtpServer, accept_token, html_text, plain_text


@pytest.fixture
async def app(
    backend: tuple[str, str], connection: AsyncConnection, clock: FrozenClock, smtp: SmtpServer
) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings_for(backend[1], smtp_url=smtp.url),
        database=Database.bound_to(connection),
        clock=clock,
    )
    async with app.router.lifespan_context(app):
        yield app


async def invite(
    client: httpx.AsyncClient, context: Any, headers: dict[str, str], *emails: str
) -> None:
    response = await client.post(
        f"/v1/tenants/{context}/invitations",
        json={"emails": list(emails), "authorizations": [{"roles": ["read_only"]}]},
        headers=headers,
    )
    assert response.status_code == 201, response.text


async def the_row(world: World) -> Any:
    (row,) = await world.rows(sa.select(outbox))
    return row


def dispatcher_for(world: World, **settings: Any) -> Dispatcher:
    """Another dispatcher on the app's database, with settings of its own."""
    return Dispatcher(
        database=world.state.database,
        keyring=world.state.keyring,
        clock=world.clock,
        settings=settings_for(world.state.settings.database_url, **settings),
    )


class TestOutage:
    async def test_an_smtp_outage_delays_mail_and_loses_none(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        smtp.stop()
        await invite(world.client, msp.id, msp.admin.headers, "ada@example.com")
        report = await world.state.dispatcher.deliver_due()
        assert (report.sent, report.failed) == (0, 1)
        row = await the_row(world)
        assert (row.attempts, row.sent_at, row.lease_until) == (1, None, None)
        assert row.last_error
        assert row.payload is not None
        assert row.available_at == world.clock.now() + timedelta(seconds=5)

        smtp.start()
        # Not due yet: the retry waits for its backoff, it does not hammer the server.
        assert (await world.state.dispatcher.deliver_due()).sent == 0
        world.clock.advance(timedelta(seconds=5))
        assert (await world.state.dispatcher.deliver_due()).sent == 1
        (mail,) = smtp.inbox.take()
        row = await the_row(world)
        assert (row.attempts, row.last_error, row.payload) == (2, None, None)
        assert row.sent_at == world.clock.now()
        assert mail["Message-ID"] == row.message_id
        response = await world.client.post(
            "/v1/invitations/accept",
            json={
                "token": accept_token(mail),
                "first_name": "Ada",
                "last_name": "Lovelace",
                "password": "a long and unusual passphrase",
            },
        )
        assert response.status_code == 201, response.text
        assert (await world.state.dispatcher.deliver_due()).sent == 0
        assert smtp.inbox.take() == []

    async def test_retries_back_off_exponentially_up_to_a_cap(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        smtp.stop()
        await invite(world.client, msp.id, msp.admin.headers, "ada@example.com")
        dispatcher = dispatcher_for(world, smtp_url=smtp.url, mail_retry_max_seconds=30)
        waits = []
        for _ in range(5):
            assert (await dispatcher.deliver_due()).failed == 1
            row = await the_row(world)
            waits.append((row.available_at - world.clock.now()).total_seconds())
            world.clock.advance(row.available_at - world.clock.now())
        assert waits == [5, 10, 20, 30, 30]
        assert (await the_row(world)).attempts == 5

    async def test_gives_up_after_the_last_attempt_and_wipes_the_body(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        smtp.stop()
        await invite(world.client, msp.id, msp.admin.headers, "ada@example.com")
        dispatcher = dispatcher_for(world, smtp_url=smtp.url, mail_max_attempts=2)
        await dispatcher.deliver_due()
        world.clock.advance(timedelta(minutes=1))
        await dispatcher.deliver_due()
        row = await the_row(world)
        assert (row.attempts, row.failed_at, row.payload) == (2, world.clock.now(), None)
        smtp.start()
        world.clock.advance(timedelta(days=1))
        assert (await dispatcher.deliver_due()).sent == 0


class TestRefusal:
    async def test_an_address_the_server_refuses_is_not_retried(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        smtp.inbox.refuse.add("nobody@example.com")
        await invite(
            world.client, msp.id, msp.admin.headers, "nobody@example.com", "ada@example.com"
        )
        report = await world.state.dispatcher.deliver_due()
        assert (report.sent, report.failed) == (1, 1)
        refused, sent = sorted(
            await world.rows(sa.select(outbox)), key=lambda r: r.recipient != "nobody@example.com"
        )
        assert refused.failed_at == world.clock.now()
        assert refused.payload is None
        assert "550" in refused.last_error
        assert sent.sent_at is not None
        world.clock.advance(timedelta(hours=1))
        assert (await world.state.dispatcher.deliver_due()).failed == 0
        assert [m["To"] for m in smtp.inbox.take()] == ["ada@example.com"]


class TestLease:
    async def test_a_dispatcher_dying_mid_send_leaves_the_message_for_another_after_its_lease(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        await invite(world.client, msp.id, msp.admin.headers, "ada@example.com")
        entered = asyncio.Event()

        class Stuck(ConsoleTransport):
            async def send(self, message: Message) -> None:
                entered.set()
                await asyncio.Event().wait()

        doomed = Dispatcher(
            database=world.state.database,
            keyring=world.state.keyring,
            clock=world.clock,
            settings=world.state.settings,
            transport=Stuck(),
        )
        dying = asyncio.create_task(doomed.deliver_due())
        await asyncio.wait_for(entered.wait(), 5)
        dying.cancel()  # as good as killed: nothing after the claim is recorded
        with pytest.raises(asyncio.CancelledError):
            await dying
        row = await the_row(world)
        assert (row.attempts, row.sent_at) == (1, None)
        assert row.lease_until == world.clock.now() + timedelta(seconds=60)
        assert (await world.state.dispatcher.deliver_due()).sent == 0
        world.clock.advance(timedelta(seconds=60))
        assert (await world.state.dispatcher.deliver_due()).sent == 1
        assert len(smtp.inbox.take()) == 1
        assert (await the_row(world)).attempts == 2


class TestMessages:
    async def test_a_message_has_text_and_escaped_html_and_no_header_injection(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={
                "kind": "client",
                # (CR/LF in a name is refused at the edge now: tests/api/test_limits.py)
                "name": "Tom & <b>Jerry</b> Bcc: evil@example.com",
                "domain_prefix": "tom-jerry",
            },
            headers=msp.admin.headers,
        )
        assert response.status_code == 201, response.text
        await invite(world.client, response.json()["id"], msp.admin.headers, "ada@example.com")
        await world.state.dispatcher.deliver_due()
        (mail,) = smtp.inbox.take()
        assert mail.get_content_type() == "multipart/alternative"
        assert mail["Bcc"] is None
        assert mail["Subject"].strip() == (
            "Admin Northwind MSP invited you to Tom & <b>Jerry</b> Bcc: evil@example.com"
        )
        assert mail["Date"] == "Sun, 22 Nov 2026 09:00:00 +0000"
        assert mail["Auto-Submitted"] == "auto-generated"
        text, html = plain_text(mail), html_text(mail)
        token = accept_token(mail)
        assert f"\n{PUBLIC_URL}/accept-invitation?token={token}\n" in text
        assert "Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;" in html
        assert "<b>Jerry" not in html
        assert f'<a href="{PUBLIC_URL}/accept-invitation?token={token}">' in html

    async def test_names_and_addresses_in_other_scripts_arrive_as_written(
        self, world: World, msp: Msp, smtp: SmtpServer
    ) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={"kind": "client", "name": "Zürich Süd 東京", "domain_prefix": "zurich"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 201, response.text
        client_id = response.json()["id"]
        # An ASCII address (the usual message), then one that needs SMTPUTF8.
        await invite(world.client, client_id, msp.admin.headers, "ada@example.com")
        await invite(world.client, client_id, msp.admin.headers, "jürgen@müller.example")
        assert (await world.state.dispatcher.deliver_due()).sent == 2
        mails = {str(mail["To"]): mail for mail in smtp.inbox.take()}
        assert set(mails) == {"ada@example.com", "jürgen@müller.example"}
        for mail in mails.values():
            assert mail["Subject"].strip() == "Admin Northwind MSP invited you to Zürich Süd 東京"
            assert "invited you to join Zürich Süd 東京." in plain_text(mail)
            assert "<strong>Zürich Süd 東京</strong>" in html_text(mail)
            accept_token(mail)  # the link line, whole

    async def test_without_smtp_the_message_and_its_link_go_to_the_log(
        self, world: World, msp: Msp, caplog: pytest.LogCaptureFixture
    ) -> None:
        await invite(world.client, msp.id, msp.admin.headers, "ada@example.com")
        console = dispatcher_for(world)
        assert console.transport.name == "console"
        with caplog.at_level(logging.INFO, logger="access_api.mail"):
            assert (await console.deliver_due()).sent == 1
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "access_api.mail")
        assert "mail to ada@example.com" in logged
        assert f"\n{PUBLIC_URL}/accept-invitation?token=inv_" in logged
        assert (await the_row(world)).sent_at is not None


class TestSettings:
    def test_smtp_urls(self) -> None:
        plain = parse_smtp_url("smtp://mail.example.com")
        assert (plain.port, plain.use_tls, plain.start_tls, plain.username) == (
            25,
            False,
            False,
            None,
        )
        upgraded = parse_smtp_url("smtp+starttls://me%40corp:p%3Ass@mail.example.com")
        assert (upgraded.port, upgraded.start_tls) == (587, True)
        assert (upgraded.username, upgraded.password) == ("me@corp", "p:ss")
        implicit = parse_smtp_url("smtps://mail.example.com:2465")
        assert (implicit.port, implicit.use_tls) == (2465, True)
        with pytest.raises(ValidationError, match="ACCESS_API_SMTP_URL"):
            Settings(smtp_url="http://mail.example.com")


# --- real processes and real commits ------------------------------------------------------


class TestBackgroundDispatcher:
    @pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
    async def test_the_server_delivers_on_its_own_and_stops_cleanly(
        self, live_database: str, smtp: SmtpServer
    ) -> None:
        async with live_client(live_database, smtp_url=smtp.url) as client:
            root, headers = await live_msp(client, "background")
            await invite(client, root, headers, "ada@example.com")
            await smtp.inbox.arrived(1, within=10)
            (mail,) = smtp.inbox.take()
            assert accept_token(mail).startswith("inv_")
            started = time.monotonic()
        assert time.monotonic() - started < 5


class TestGivingWay:
    """The server's own dispatcher waits for a moment with no request in flight before each
    message (services/traffic.py), but never longer than its bound."""

    @staticmethod
    @asynccontextmanager
    async def busy(
        smtp: SmtpServer, live_database: str, give_way: float
    ) -> AsyncIterator[tuple[httpx.AsyncClient, Any, dict[str, str], asyncio.Event, Any]]:
        """A live server whose dispatcher gives way for `give_way` seconds, an MSP on it, and a
        login in flight whose body's second half arrives once the event is set (its task)."""
        release = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield b'{"email": "nobody@example.com", '
            await release.wait()
            yield b'"password": "not the password at all"}'

        async with live_client(
            live_database, smtp_url=smtp.url, outbox_give_way_seconds=give_way
        ) as client:
            root, headers = await live_msp(client, "giving-way")
            held = asyncio.create_task(
                client.post(
                    "/v1/auth/login",
                    content=body(),
                    headers={"Content-Type": "application/json"},
                )
            )
            await asyncio.sleep(0.1)
            try:
                yield client, root, headers, release, held
            finally:
                release.set()
                assert (await held).status_code == 401

    @pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
    async def test_mail_waits_while_a_request_is_in_flight_and_goes_right_after(
        self, live_database: str, smtp: SmtpServer
    ) -> None:
        async with self.busy(smtp, live_database, give_way=30) as (
            client,
            root,
            headers,
            release,
            held,
        ):
            await invite(client, root, headers, "ada@example.com")
            await asyncio.sleep(1.0)
            assert smtp.inbox.take() == []
            async with state_of(client).database.session() as session:
                (pending,) = (await session.execute(sa.select(outbox.c.sent_at))).one()
            assert pending is None  # queued, not lost
            release.set()
            assert (await held).status_code == 401
            await smtp.inbox.arrived(1, within=10)
            (mail,) = smtp.inbox.take()
            assert mail["To"] == "ada@example.com"

    @pytest.mark.parametrize("live_database", ["sqlite"], indirect=True)
    async def test_mail_goes_within_the_bound_under_constant_traffic(
        self, live_database: str, smtp: SmtpServer
    ) -> None:
        async with self.busy(smtp, live_database, give_way=0.2) as busy:
            client, root, headers, _, held = busy
            await invite(client, root, headers, "ada@example.com", "bob@example.com")
            await smtp.inbox.arrived(2, within=10)
            assert not held.done()  # delivered while the request was still in flight
            assert sorted(m["To"] for m in smtp.inbox.take()) == [
                "ada@example.com",
                "bob@example.com",
            ]


class TestSharedOutbox:
    async def test_several_dispatchers_deliver_each_message_exactly_once(
        self, live_database: str, smtp: SmtpServer
    ) -> None:
        async with live_client(live_database, smtp_url=smtp.url, mail_dispatcher=False) as client:
            root, headers = await live_msp(client, "shared-outbox")
            await invite(client, root, headers, *(f"u{i:02d}@example.com" for i in range(24)))
            smtp.inbox.delay = 0.01
            state = state_of(client)
            dispatchers = [
                Dispatcher(
                    database=state.database,
                    keyring=state.keyring,
                    clock=state.clock,
                    settings=state.settings,
                )
                for _ in range(3)
            ]
            reports = await asyncio.gather(*(d.deliver_due() for d in dispatchers))
            assert sum(r.sent for r in reports) == 24
            assert sum(1 for r in reports if r.sent) >= 2
            async with state.database.session() as session:
                ids = set((await session.execute(sa.select(outbox.c.message_id))).scalars())
            assert smtp.inbox.count_by_message_id() == Counter(dict.fromkeys(ids, 1))


class TestKilledWorker:
    async def test_a_worker_killed_mid_batch_delivers_everything_exactly_once_after_restart(
        self, live_database: str, smtp: SmtpServer, tmp_path: Path
    ) -> None:
        count, held = 12, 5
        async with live_client(live_database, smtp_url=smtp.url, mail_dispatcher=False) as client:
            root, headers = await live_msp(client, "killed-worker")
            await invite(client, root, headers, *(f"b{i:02d}@example.com" for i in range(count)))
            state = state_of(client)
            env = {
                **os.environ,
                "ACCESS_API_DATABASE_URL": live_database,
                "ACCESS_API_SECRET_KEY": TEST_SECRET,
                "ACCESS_API_PUBLIC_URL": PUBLIC_URL,
                "ACCESS_API_SMTP_URL": smtp.url,
                "ACCESS_API_MAIL_LEASE_SECONDS": "3",
                "ACCESS_API_MAIL_POLL_SECONDS": "0.2",
            }
            log = tmp_path / "worker.log"
            smtp.inbox.delay = 0.05
            smtp.inbox.hold_at = held  # the held message is never acknowledged
            worker = start_worker(env, log)
            try:

                async def holding() -> bool:
                    assert worker.poll() is None, log.read_text()
                    return smtp.inbox.held.is_set()

                await until(holding, 30, "the worker never reached the held message")
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
            smtp.inbox.release()
            assert len(smtp.inbox.messages) == held - 1

            async def sent() -> int:
                async with state.database.session() as session:
                    return int(
                        await session.scalar(
                            sa.select(sa.func.count())
                            .select_from(outbox)
                            .where(outbox.c.sent_at.is_not(None))
                        )
                        or 0
                    )

            assert await sent() == held - 1
            worker = start_worker(env, log)
            try:

                async def all_sent() -> bool:
                    assert worker.poll() is None, log.read_text()
                    return await sent() == count

                await until(all_sent, 60, "not every message was delivered after the restart")
            finally:
                worker.send_signal(signal.SIGTERM)
                stopped = worker.wait(timeout=20)
            assert stopped == 0, log.read_text()
            async with state.database.session() as session:
                ids = set((await session.execute(sa.select(outbox.c.message_id))).scalars())
            assert len(ids) == count
            assert smtp.inbox.count_by_message_id() == Counter(dict.fromkeys(ids, 1))
            assert "mail worker stopped" in log.read_text()
