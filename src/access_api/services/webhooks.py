"""Webhook delivery: secrets, the SSRF guard, queueing events in the outbox with the change,
and the dispatcher that POSTs them in the Standard Webhooks format."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from access_api.db import Database
from access_api.domain import webhooks
from access_api.domain.audit import SYSTEM, Action, AuditEvent
from access_api.domain.errors import ValidationFailed
from access_api.domain.webhooks import Attempt, Endpoint
from access_api.ids import new_id
from access_api.repositories.audit import AuditRepository
from access_api.repositories.grants import GrantRepository
from access_api.repositories.outbox import WEBHOOK, ClaimedMessage, OutboxRepository, QueuedMessage
from access_api.repositories.tenants import TenantRepository
from access_api.repositories.users import UserRepository
from access_api.repositories.webhooks import WebhookRepository
from access_api.services.clock import Clock
from access_api.services.keyring import Keyring
from access_api.services.mailer import Dispatcher, Letters
from access_api.services.outbox import DeliveryFailed, OutboxDispatcher, Pacing
from access_api.settings import Settings

log = logging.getLogger("access_api.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SEAL_PURPOSE = "webhook-secret"
USER_AGENT = "access-api-webhooks/1"


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


async def check_target(url: str, settings: Settings) -> str:
    """The URL's form, then every address its host resolves to (the SSRF guard)."""
    allowed = settings.allow_http_webhooks
    webhooks.check_url(url, allow_http=allowed)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    webhooks.check_addresses(host, await resolve(host, port), allow_private=allowed)
    return url


async def enqueue(
    endpoints: WebhookRepository, outbox: OutboxRepository, events: Sequence[AuditEvent]
) -> bool:
    """Queue one message per (event, subscribed endpoint) in the change's own transaction:
    the events reach the receivers if and only if the change was committed."""
    tenant_ids = {event.tenant_id for event in events if event.tenant_id is not None}
    found = await endpoints.subscribers(tenant_ids)
    if not found:
        return False
    above: dict[UUID, list[Endpoint]] = {}
    for endpoint, tenant_id in found:
        above.setdefault(tenant_id, []).append(endpoint)
    messages = []
    for event in events:
        for endpoint in above.get(event.tenant_id, []) if event.tenant_id else []:
            if not webhooks.subscribed(endpoint, event):
                continue
            message_id = new_id()
            messages.append(
                QueuedMessage(
                    id=message_id,
                    kind="webhook",
                    recipient=str(endpoint.id),
                    subject=event.action,
                    payload=json.dumps(webhooks.payload(event), separators=(",", ":")).encode(),
                    message_id=f"msg_{message_id.hex}",
                    created_at=event.at,
                    channel=WEBHOOK,
                )
            )
    await outbox.add(messages)
    return bool(messages)


class WebhookDispatcher(OutboxDispatcher):
    """Delivers the webhook channel: one signed POST per message, each attempt recorded with
    its status and latency; a receiver that only fails for days is disabled and the tree's
    admins are told by mail."""

    channel = WEBHOOK
    log = log

    def __init__(
        self,
        *,
        database: Database,
        keyring: Keyring,
        clock: Clock,
        settings: Settings,
        letters: Letters,
        wake_mail: Callable[[], None],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            database=database,
            clock=clock,
            pacing=Pacing(
                lease=timedelta(seconds=settings.webhook_lease_seconds),
                poll_seconds=settings.mail_poll_seconds,
                retry_base=timedelta(seconds=settings.webhook_retry_base_seconds),
                retry_cap=timedelta(seconds=settings.webhook_retry_max_seconds),
                max_attempts=settings.webhook_max_attempts,
            ),
        )
        self._keyring = keyring
        self._settings = settings
        self._letters = letters
        self._wake_mail = wake_mail
        self._transport = transport
        self._disable_after = timedelta(hours=settings.webhook_disable_after_hours)
        self._timeout = httpx.Timeout(
            settings.webhook_read_timeout_seconds,
            connect=settings.webhook_connect_timeout_seconds,
        )

    async def attempt(self, claimed: ClaimedMessage) -> None:
        endpoint_id = UUID(claimed.recipient)
        async with self.database.session() as session:
            found = await WebhookRepository(session).for_delivery(endpoint_id)
            await session.rollback()
        if found is None or found[0].status is not webhooks.EndpointStatus.ENABLED:
            raise DeliveryFailed("the endpoint was deleted or disabled", permanent=True)
        endpoint, sealed = found
        if claimed.payload is None:
            raise DeliveryFailed("the message has no body left", permanent=True)
        started = time.monotonic()
        status_code, error = await self._post(endpoint, sealed, claimed)
        latency_ms = round((time.monotonic() - started) * 1000)
        succeeded = error is None
        await self._record(endpoint_id, claimed, status_code, latency_ms, error)
        if not succeeded:
            raise DeliveryFailed(error or "failed")

    async def _post(
        self, endpoint: Endpoint, sealed: bytes, claimed: ClaimedMessage
    ) -> tuple[int | None, str | None]:
        try:
            await check_target(endpoint.url, self._settings)
        except ValidationFailed as refused:
            return None, refused.detail
        secret = self._keyring.unseal(sealed, SEAL_PURPOSE).decode()
        body = (claimed.payload or b"").decode()
        timestamp = self.now()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": claimed.message_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(claimed.message_id, timestamp, body),
        }
        cap = self._settings.webhook_max_response_bytes
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self._timeout,
                    follow_redirects=False,
                    transport=self._transport,
                    trust_env=False,
                ) as client,
                client.stream(
                    "POST", endpoint.url, content=body.encode(), headers=headers
                ) as response,
            ):
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= cap:  # the rest of a large answer is never read
                        break
        except httpx.HTTPError as failure:
            return None, f"{type(failure).__name__}: {failure}".strip()
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"the receiver answered {response.status_code}"

    async def _record(
        self,
        endpoint_id: UUID,
        claimed: ClaimedMessage,
        status_code: int | None,
        latency_ms: int,
        error: str | None,
    ) -> None:
        """The attempt, and the endpoint's failing clock, in one short transaction."""
        now = self.now()
        async with self.database.session() as session:
            repo = WebhookRepository(session)
            found = await repo.for_delivery(endpoint_id)
            await repo.add_attempt(
                Attempt(
                    id=new_id(),
                    endpoint_id=endpoint_id,
                    message_id=claimed.message_id,
                    event_type=claimed.subject,
                    attempt=claimed.attempts,
                    at=now,
                    status_code=status_code,
                    latency_ms=latency_ms,
                    succeeded=error is None,
                    error=error,
                )
            )
            disabled = False
            if found is not None:
                endpoint = found[0]
                if error is None:
                    if endpoint.failing_since is not None:
                        await repo.update(webhooks.after_success(endpoint))
                else:
                    outcome = webhooks.after_failure(endpoint, now, self._disable_after)
                    if outcome.endpoint != endpoint:
                        await repo.update(outcome.endpoint)
                    if outcome.disabled:
                        disabled = True
                        await self._announce_disabled(session, outcome.endpoint, now)
            await session.commit()
        if disabled:
            self._wake_mail()

    async def _announce_disabled(
        self, session: AsyncSession, endpoint: Endpoint, now: datetime
    ) -> None:
        tenant = await TenantRepository(session).get(endpoint.tenant_id)
        await AuditRepository(session).record(
            [
                AuditEvent(
                    id=new_id(),
                    at=now,
                    actor=SYSTEM,
                    root_id=endpoint.root_id,
                    tenant_id=endpoint.tenant_id,
                    action=Action.WEBHOOK_DISABLED,
                    target_type=Action.WEBHOOK_DISABLED.target_type,
                    target_id=endpoint.id,
                    changes={"status": {"before": "enabled", "after": "disabled"}},
                )
            ]
        )
        admins = await GrantRepository(session).root_admins(endpoint.root_id, now)
        users = UserRepository(session)
        mails = []
        for user_id in sorted(admins):
            user = await users.get(user_id)
            if user is None:
                continue
            mail = webhooks.disabled_mail(
                recipient=user.email,
                endpoint=endpoint,
                tenant_name=tenant.name if tenant else "your account",
            )
            mails.append(self._letters.queued(mail, now))
        await OutboxRepository(session).add(mails)
        log.warning(
            "webhook endpoint %s disabled: failing since %s", endpoint.id, endpoint.failing_since
        )


def webhook_dispatcher(
    mail: Dispatcher, database: Database, keyring: Keyring, clock: Clock, settings: Settings
) -> WebhookDispatcher:
    """The webhook channel beside a mail dispatcher (which carries its "disabled" notices)."""
    return WebhookDispatcher(
        database=database,
        keyring=keyring,
        clock=clock,
        settings=settings,
        letters=mail.letters,
        wake_mail=mail.wake,
    )
