"""Webhooks: endpoints per tenant, signed deliveries (checked with the `standardwebhooks`
package by a real HTTP receiver on loopback) from the outbox, retries, attempts listed, a
dispatcher killed mid-delivery, a receiver failing for days, and the SSRF guard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from access_api.db import Database
from access_api.main import create_app
from access_api.repositories.orm import audit_events, outbox, webhook_endpoints
from access_api.services.clock import FrozenClock
from tests.api.conftest import Msp, World, assert_problem, delivered
from tests.conftest import TEST_SECRET, settings_for
from tests.live import live_client, live_msp, start_worker, state_of, until
from tests.mail import SmtpServer, plain_text

WEBHOOK_EVENTS = ["webhook.created", "webhook.updated", "webhook.deleted"]


class Receiver:
    """A real HTTP server on loopback: answers each POST with the next status of `answers`
    (then 204), and verifies every signature with the standardwebhooks package."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.answers: list[int] = []
        self.received: list[dict[str, Any]] = []
        self.hold_first = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self.sleep = 0.0
        self.body = b""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = False
                if receiver.secret is not None:
                    try:
                        Webhook(receiver.secret).verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        verified = False
                receiver.received.append(
                    {
                        "path": self.path,
                        "headers": headers,
                        "body": json.loads(body),
                        "verified": verified,
                    }
                )
                if receiver.hold_first and len(receiver.received) == 1:
                    receiver.holding.set()
                    receiver.release.wait(10)
                if receiver.sleep:
                    time.sleep(receiver.sleep)
                status = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(status)
                self.send_header("content-length", str(len(receiver.body)))
                self.end_headers()
                if receiver.body:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.wfile.write(receiver.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FrozenClock:
    # Receivers check the signed timestamp against their own clock (5 minutes' tolerance).
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def allow_http(request: pytest.FixtureRequest) -> bool:
    return bool(getattr(request, "param", True))


@pytest.fixture
async def app(
    backend: tuple[str, str],
    connection: AsyncConnection,
    clock: FrozenClock,
    smtp: SmtpServer,
    allow_http: bool,
) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings_for(
            backend[1],
            smtp_url=smtp.url,
            allow_http_webhooks=allow_http,
            webhook_read_timeout_seconds=1.0,
            webhook_max_response_bytes=1024,
        ),
        database=Database.bound_to(connection),
        clock=clock,
    )
    async with app.router.lifespan_context(app):
        yield app


async def subscribe(
    world: World,
    tenant_id: Any,
    headers: dict[str, str],
    url: str,
    event_types: list[str] | None = None,
) -> dict[str, Any]:
    response = await world.client.post(
        f"/v1/tenants/{tenant_id}/webhooks",
        json={"url": url, "event_types": event_types or WEBHOOK_EVENTS},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def deliver(world: World) -> tuple[int, int]:
    done = await world.state.webhooks.deliver_due()
    return done.sent, done.failed


async def attempts(world: World, msp: Msp, tenant_id: Any, hook_id: Any) -> list[dict[str, Any]]:
    response = await world.client.get(
        f"/v1/tenants/{tenant_id}/webhooks/{hook_id}/deliveries",
        params={"sort": "at"},
        headers=msp.admin.headers,
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


class TestSubscribe:
    async def test_the_secret_is_shown_once_and_stored_sealed(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        made = await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        assert made["secret"].startswith("whsec_")
        assert made["status"] == "enabled"
        assert made["event_types"] == sorted(WEBHOOK_EVENTS)
        shown = await world.client.get(
            f"/v1/tenants/{msp.id}/webhooks/{made['id']}", headers=msp.admin.headers
        )
        assert shown.status_code == 200
        assert "secret" not in shown.json()
        listed = await world.client.get(f"/v1/tenants/{msp.id}/webhooks", headers=msp.admin.headers)
        assert [item["id"] for item in listed.json()["items"]] == [made["id"]]
        assert "secret" not in listed.json()["items"][0]
        (stored,) = await world.rows(sa.select(webhook_endpoints.c.secret))
        assert made["secret"].encode() not in stored.secret
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "webhook.created")
        )
        assert made["secret"] not in json.dumps(event.changes)

    async def test_the_catalog_of_event_types_is_the_audit_catalog(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.get("/v1/webhooks/event-types", headers=msp.admin.headers)
        assert response.status_code == 200
        actions = {entry["action"] for entry in response.json()}
        assert {"user.deleted", "authorization.changed", "webhook.disabled"} <= actions

    @pytest.mark.parametrize(
        ("body", "field_code"),
        [
            (
                {"url": "https://x.example.com", "event_types": ["user.exploded"]},
                "unknown_event_type",
            ),
            ({"url": "https://x.example.com", "event_types": []}, None),
            (
                {"url": "ftp://x.example.com/", "event_types": ["user.deleted"]},
                "url_scheme_not_allowed",
            ),
            (
                {"url": "https://u:p@x.example.com/", "event_types": ["user.deleted"]},
                "url_has_credentials",
            ),
            (
                {"url": "https://x.example.com", "event_types": ["user.deleted"], "secret": "x"},
                None,
            ),
        ],
    )
    async def test_bad_subscriptions_are_refused_and_change_nothing(
        self, world: World, msp: Msp, body: dict[str, Any], field_code: str | None
    ) -> None:
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/webhooks", json=body, headers=msp.admin.headers
        )
        problem = assert_problem(response, 422, "validation_error")
        if field_code is not None:
            assert problem["errors"][0]["code"] == field_code
        assert await world.snapshot() == before

    async def test_without_webhooks_manage_it_is_forbidden(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/webhooks",
            json={"url": receiver.url, "event_types": ["user.deleted"]},
            headers=reader.headers,
        )
        assert_problem(response, 403, "forbidden")
        assert await world.snapshot() == before

    async def test_an_endpoint_of_another_tenant_is_not_found(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        made = await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        for path in ("", "/deliveries"):
            response = await world.client.get(
                f"/v1/tenants/{client['id']}/webhooks/{made['id']}{path}",
                headers=msp.admin.headers,
            )
            assert_problem(response, 404, "not_found")
        other = await world.msp()
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/webhooks/{made['id']}", headers=other.admin.headers
        )
        assert response.status_code in (403, 404)


@pytest.mark.parametrize("allow_http", [False], indirect=True)
class TestSsrfGuard:
    @pytest.mark.parametrize(
        ("url", "code"),
        [
            ("http://93.184.216.34/hooks", "url_scheme_not_allowed"),
            ("https://127.0.0.1/hooks", "url_target_not_allowed"),
            ("https://localhost/hooks", "url_target_not_allowed"),
            ("https://10.1.2.3/hooks", "url_target_not_allowed"),
            ("https://192.168.0.10/hooks", "url_target_not_allowed"),
            ("https://169.254.169.254/latest/meta-data", "url_target_not_allowed"),
            ("https://[::1]/hooks", "url_target_not_allowed"),
            ("https://[::ffff:127.0.0.1]/hooks", "url_target_not_allowed"),
            ("https://[fe80::1]/hooks", "url_target_not_allowed"),
            ("https://0.0.0.0/hooks", "url_target_not_allowed"),
        ],
    )
    async def test_private_loopback_and_link_local_targets_are_refused(
        self, world: World, msp: Msp, url: str, code: str
    ) -> None:
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/webhooks",
            json={"url": url, "event_types": ["user.deleted"]},
            headers=msp.admin.headers,
        )
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["code"] == code
        assert await world.snapshot() == before

    async def test_a_public_https_target_is_accepted(self, world: World, msp: Msp) -> None:
        await subscribe(world, msp.id, msp.admin.headers, "https://93.184.216.34/hooks")


class TestDelivery:
    async def test_events_of_the_tenant_and_below_arrive_signed(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        made = await subscribe(world, msp.id, msp.admin.headers, receiver.url, ["webhook.created"])
        receiver.secret = made["secret"]
        above = await subscribe(
            world, client["id"], msp.admin.headers, receiver.url + "/client", ["webhook.deleted"]
        )
        sibling = await world.tenant(msp.id, msp.admin)
        await subscribe(world, sibling["id"], msp.admin.headers, receiver.url + "/sibling")
        # The root's endpoint hears its own creation (a first ping), the client's and the
        # sibling's; the client's endpoint hears nothing of what happens above or beside it.
        assert await deliver(world) == (4, 0)
        to_root = [r for r in receiver.received if r["path"] == "/hooks"]
        assert [r["verified"] for r in to_root] == [True, True, True]
        assert all(r["body"]["type"] == "webhook.created" for r in to_root)
        second = to_root[1]
        assert second["body"]["data"]["target"]["id"] == above["id"]
        assert second["body"]["data"]["tenant_id"] == client["id"]
        assert second["headers"]["webhook-id"].startswith("msg_")
        assert second["headers"]["content-type"] == "application/json"
        assert not [r for r in receiver.received if r["path"] == "/hooks/client"]
        assert await attempts(world, msp, client["id"], above["id"]) == []
        listed = await attempts(world, msp, msp.id, made["id"])
        assert [(a["status_code"], a["succeeded"], a["attempt"]) for a in listed] == [
            (204, True, 1)
        ] * 3
        assert all(a["latency_ms"] >= 0 for a in listed)

    async def test_a_refused_change_sends_nothing(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/webhooks",
            json={"url": "ftp://nowhere", "event_types": ["user.deleted"]},
            headers=msp.admin.headers,
        )
        assert response.status_code == 422
        # Only the first endpoint's own creation is queued.
        assert await world.count(outbox, outbox.c.channel == "webhook") == 1

    async def test_a_receiver_that_fails_then_recovers_gets_the_message_once(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        made = await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        receiver.secret = made["secret"]
        receiver.answers = [500, 503]
        assert await deliver(world) == (0, 1)
        assert await deliver(world) == (0, 0)  # not due yet: backing off
        world.clock.advance(timedelta(seconds=5))
        assert await deliver(world) == (0, 1)
        world.clock.advance(timedelta(seconds=10))
        assert await deliver(world) == (1, 0)
        world.clock.advance(timedelta(minutes=30))
        assert await deliver(world) == (0, 0)
        ids = {r["headers"]["webhook-id"] for r in receiver.received}
        assert len(receiver.received) == 3
        assert len(ids) == 1  # one message, tried three times
        assert all(r["verified"] for r in receiver.received)
        listed = await attempts(world, msp, msp.id, made["id"])
        assert [(a["attempt"], a["status_code"], a["succeeded"]) for a in listed] == [
            (1, 500, False),
            (2, 503, False),
            (3, 204, True),
        ]
        assert listed[0]["error"] == "the receiver answered 500"
        shown = await world.client.get(
            f"/v1/tenants/{msp.id}/webhooks/{made['id']}", headers=msp.admin.headers
        )
        assert shown.json()["failing_since"] is None

    async def test_a_dispatcher_killed_mid_delivery_loses_nothing(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        made = await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        receiver.secret = made["secret"]
        receiver.hold_first = True
        dying = asyncio.create_task(world.state.webhooks.deliver_due())
        assert await asyncio.to_thread(receiver.holding.wait, 10)
        dying.cancel()  # as good as killed: nothing after the claim is recorded
        with pytest.raises(asyncio.CancelledError):
            await dying
        receiver.release.set()
        (row,) = await world.rows(sa.select(outbox).where(outbox.c.channel == "webhook"))
        assert (row.attempts, row.sent_at) == (1, None)
        assert await deliver(world) == (0, 0)  # leased to the dead dispatcher
        world.clock.advance(timedelta(seconds=60))
        assert await deliver(world) == (1, 0)
        (row,) = await world.rows(sa.select(outbox).where(outbox.c.channel == "webhook"))
        assert row.sent_at is not None
        assert len({r["headers"]["webhook-id"] for r in receiver.received}) == 1
        assert [r["verified"] for r in receiver.received] == [True, True]

    async def test_a_slow_receiver_times_out_and_a_large_answer_is_not_read(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        receiver.sleep = 2.0  # the read timeout is 1 s here
        assert await deliver(world) == (0, 1)
        (row,) = await world.rows(sa.select(outbox).where(outbox.c.channel == "webhook"))
        assert "Timeout" in row.last_error
        receiver.sleep = 0.0
        receiver.answers = [200]
        receiver.body = b"x" * 1_000_000
        world.clock.advance(timedelta(seconds=5))
        assert await deliver(world) == (1, 0)

    async def test_rotating_the_secret_signs_with_the_new_one_only(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        made = await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        rotated = await world.client.post(
            f"/v1/tenants/{msp.id}/webhooks/{made['id']}/rotate-secret", headers=msp.admin.headers
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != made["secret"]
        receiver.secret = made["secret"]
        assert await deliver(world) == (1, 0)
        assert [r["verified"] for r in receiver.received] == [False]
        receiver.secret = new_secret
        await world.client.patch(
            f"/v1/tenants/{msp.id}/webhooks/{made['id']}",
            json={"description": "PSA"},
            headers=msp.admin.headers,
        )
        assert await deliver(world) == (1, 0)
        assert receiver.received[-1]["verified"] is True
        assert receiver.received[-1]["body"]["type"] == "webhook.updated"

    async def test_a_deleted_endpoint_gets_nothing_more(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        made = await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        deleted = await world.client.delete(
            f"/v1/tenants/{msp.id}/webhooks/{made['id']}", headers=msp.admin.headers
        )
        assert deleted.status_code == 204
        assert await deliver(world) == (0, 1)  # its own creation event, given up
        assert receiver.received == []
        gone = await world.client.get(
            f"/v1/tenants/{msp.id}/webhooks/{made['id']}", headers=msp.admin.headers
        )
        assert_problem(gone, 404, "not_found")


class TestFailingReceiver:
    async def test_failing_for_three_days_disables_it_and_tells_the_admins(
        self, world: World, msp: Msp, receiver: Receiver, smtp: SmtpServer
    ) -> None:
        made = await subscribe(world, msp.id, msp.admin.headers, receiver.url)
        path = f"/v1/tenants/{msp.id}/webhooks/{made['id']}"
        receiver.answers = [500] * 100
        assert await deliver(world) == (0, 1)
        world.clock.advance(timedelta(days=2))
        assert await deliver(world) == (0, 1)
        admin = await world.login(msp.admin.email)
        shown = (await world.client.get(path, headers=admin.headers)).json()
        assert (shown["status"], shown["failing_since"]) == ("enabled", made["created_at"])
        world.clock.advance(timedelta(days=1))
        assert await deliver(world) == (0, 1)
        admin = await world.login(msp.admin.email)
        shown = (await world.client.get(path, headers=admin.headers)).json()
        assert shown["status"] == "disabled"
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "webhook.disabled")
        )
        assert str(event.target_id) == made["id"]
        assert event.actor_kind == "system"
        mail = await delivered(world, smtp)
        assert list(mail) == [msp.admin.email.lower()]
        assert receiver.url in plain_text(mail[msp.admin.email.lower()])
        # Nothing more is sent to it (what was waiting is given up, unsent); enabling it
        # again resumes deliveries.
        world.clock.advance(timedelta(hours=2))
        tried = len(receiver.received)
        assert await deliver(world) == (0, 1)
        assert len(receiver.received) == tried
        admin = await world.login(msp.admin.email)
        enabled = await world.client.patch(path, json={"status": "enabled"}, headers=admin.headers)
        assert enabled.json()["status"] == "enabled"
        assert enabled.json()["failing_since"] is None
        receiver.answers = []
        assert await deliver(world) == (1, 0)  # the "updated" event of enabling it
        assert receiver.received[-1]["body"]["type"] == "webhook.updated"


class TestKilledWorker:
    async def test_a_worker_process_killed_mid_delivery_loses_nothing(
        self, live_database: str, receiver: Receiver, tmp_path: Path
    ) -> None:
        async with live_client(
            live_database, mail_dispatcher=False, allow_http_webhooks=True
        ) as client:
            root, headers = await live_msp(client, "killed-hooks")
            made = await client.post(
                f"/v1/tenants/{root}/webhooks",
                json={"url": receiver.url, "event_types": WEBHOOK_EVENTS},
                headers=headers,
            )
            assert made.status_code == 201, made.text
            receiver.secret = made.json()["secret"]
            for n in range(2):
                changed = await client.patch(
                    f"/v1/tenants/{root}/webhooks/{made.json()['id']}",
                    json={"description": f"change {n}"},
                    headers=headers,
                )
                assert changed.status_code == 200, changed.text
            state = state_of(client)
            env = {
                **os.environ,
                "ACCESS_API_DATABASE_URL": live_database,
                "ACCESS_API_SECRET_KEY": TEST_SECRET,
                "ACCESS_API_ALLOW_HTTP_WEBHOOKS": "true",
                "ACCESS_API_WEBHOOK_LEASE_SECONDS": "3",
                "ACCESS_API_MAIL_POLL_SECONDS": "0.2",
            }
            log = tmp_path / "worker.log"
            receiver.hold_first = True  # the first delivery is never answered
            worker = start_worker(env, log)
            try:
                held = await asyncio.to_thread(receiver.holding.wait, 30)
                assert held, log.read_text()
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
            receiver.release.set()

            async def sent() -> int:
                async with state.database.session() as session:
                    rows = await session.execute(
                        sa.select(outbox.c.sent_at).where(outbox.c.channel == "webhook")
                    )
                    return sum(1 for row in rows if row.sent_at is not None)

            assert await sent() == 0
            worker = start_worker(env, log)
            try:

                async def all_sent() -> bool:
                    assert worker.poll() is None, log.read_text()
                    return await sent() == 3

                await until(all_sent, 60, "not every event was delivered after the restart")
            finally:
                worker.send_signal(signal.SIGTERM)
                stopped = worker.wait(timeout=20)
            assert stopped == 0, log.read_text()
        ids = [r["headers"]["webhook-id"] for r in receiver.received]
        assert len(set(ids)) == 3  # every event arrived
        assert len(ids) == 4  # the one in flight when the worker died, twice, with one id
        assert all(r["verified"] for r in receiver.received)


class TestEveryChangeIsPublished:
    async def test_user_and_authorization_changes_reach_the_trees_endpoint(
        self, world: World, msp: Msp, receiver: Receiver
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        bob = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        made = await subscribe(
            world,
            msp.id,
            msp.admin.headers,
            receiver.url,
            ["authorization.changed", "user.deleted", "tenant.updated"],
        )
        receiver.secret = made["secret"]
        changed = await world.client.put(
            f"/v1/tenants/{client['id']}/authorizations",
            json={"items": [{"user_id": str(bob.user_id), "roles": ["admin"]}]},
            headers=msp.admin.headers,
        )
        assert changed.status_code == 200, changed.text
        deleted = await world.client.post(
            f"/v1/tenants/{msp.id}/users/delete",
            json={"ids": [str(bob.user_id)]},
            headers=msp.admin.headers,
        )
        assert deleted.status_code == 200, deleted.text
        renamed = await world.client.patch(
            f"/v1/tenants/{client['id']}", json={"name": "Renamed"}, headers=msp.admin.headers
        )
        assert renamed.status_code == 200, renamed.text
        assert await deliver(world) == (3, 0)
        assert [r["body"]["type"] for r in receiver.received] == [
            "authorization.changed",
            "user.deleted",
            "tenant.updated",
        ]
        assert all(r["verified"] for r in receiver.received)
        assert receiver.received[1]["body"]["data"]["target"]["id"] == str(bob.user_id)
