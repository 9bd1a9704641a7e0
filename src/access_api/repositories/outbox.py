"""The outbox: messages written with the change they announce, claimed by dispatchers with a
lease. One table and one claiming code serve every channel: mail (SMTP) and webhooks (HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.repositories.bulk import insert_rows
from access_api.repositories.dialect import is_postgresql
from access_api.repositories.orm import outbox

LAST_ERROR_MAX_LENGTH = 500
MAIL = "mail"
WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedMail:
    """A message to write: the payload is already sealed, it carries links that log in."""

    id: UUID
    kind: str
    recipient: str
    subject: str
    payload: bytes
    message_id: str
    created_at: datetime
    channel: str = MAIL


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedMail:
    id: UUID
    kind: str
    recipient: str
    subject: str
    payload: bytes | None
    message_id: str
    created_at: datetime
    attempts: int
    lease_until: datetime
    channel: str = MAIL


# The same rows serve every channel: a webhook's recipient is its endpoint, its subject the
# event type, its message_id the `webhook-id`.
QueuedMessage = QueuedMail
ClaimedMessage = ClaimedMail


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, messages: list[QueuedMail]) -> None:
        """Queue messages in the caller's transaction: they exist if and only if the change
        they announce was committed."""
        await insert_rows(
            self.session,
            outbox,
            [
                {
                    "id": message.id,
                    "kind": message.kind,
                    "recipient": message.recipient,
                    "subject": message.subject,
                    "payload": message.payload,
                    "message_id": message.message_id,
                    "created_at": message.created_at,
                    "available_at": message.created_at,
                    "lease_until": None,
                    "attempts": 0,
                    "last_error": None,
                    "last_attempt_at": None,
                    "sent_at": None,
                    "failed_at": None,
                    "channel": message.channel,
                }
                for message in messages
            ],
        )

    async def claim(
        self, now: datetime, lease_until: datetime, channel: str = MAIL
    ) -> ClaimedMail | None:
        """Take the next due message for a while (the lease). Several dispatchers share the
        outbox: on PostgreSQL a row another one is claiming is skipped, not waited for; SQLite
        has one writer at a time, so a plain select is enough there. A lease that ran out (its
        dispatcher died) makes the message due again. The attempt is counted now, so a message
        that kills its dispatcher every time still runs out of attempts."""
        statement = _CLAIM_SKIPPING_LOCKED if is_postgresql(self.session) else _CLAIM
        row = (
            await self.session.execute(
                statement,
                {"of_channel": channel, "now": now, "lease_end": lease_until, "attempt_at": now},
            )
        ).one_or_none()
        if row is None:
            return None
        return _claimed(row)

    async def mark_sent(self, message_id: UUID, now: datetime) -> None:
        """Delivered: never again, and the sealed body is wiped (its links are secrets)."""
        await self.session.execute(_MARK_SENT, {"message": message_id, "sent": now})

    async def mark_failed(
        self, message_id: UUID, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        """A failed attempt: due again at retry_at, or given up for good (None)."""
        values: dict[str, Any] = {
            "last_error": error[:LAST_ERROR_MAX_LENGTH],
            "lease_until": None,
        }
        if retry_at is None:
            values |= {"failed_at": now, "payload": None}
        else:
            values["available_at"] = retry_at
        await self.session.execute(
            sa.update(outbox).where(outbox.c.id == message_id).values(values)
        )


def _claim_statement(*, skip_locked: bool) -> sa.Update:
    """The claim, built once (a dispatcher runs it for every message): the next due message
    of a channel is chosen, leased and its attempt counted in one statement, atomic by itself,
    so it needs no transaction of its own (no BEGIN and COMMIT round trips). A lease that ran
    out (its dispatcher died) makes the message due again."""
    now = sa.bindparam("now", type_=outbox.c.available_at.type)
    due = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.channel == sa.bindparam("of_channel", type_=outbox.c.channel.type),
            outbox.c.sent_at.is_(None),
            outbox.c.failed_at.is_(None),
            outbox.c.available_at <= now,
            sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= now),
        )
        .order_by(outbox.c.channel, outbox.c.available_at, outbox.c.id)
        .limit(1)
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    return (
        sa.update(outbox)
        .where(outbox.c.id == due.scalar_subquery())
        .values(
            lease_until=sa.bindparam("lease_end", type_=outbox.c.lease_until.type),
            attempts=outbox.c.attempts + 1,
            last_attempt_at=sa.bindparam("attempt_at", type_=outbox.c.last_attempt_at.type),
        )
        .returning(*outbox.c)
    )


# Several dispatchers share the outbox: on PostgreSQL a row another one is claiming is
# skipped, not waited for; SQLite has one writer at a time, so a plain select is enough there.
_CLAIM = _claim_statement(skip_locked=False)
_CLAIM_SKIPPING_LOCKED = _claim_statement(skip_locked=True)
_MARK_SENT = (
    sa.update(outbox)
    .where(outbox.c.id == sa.bindparam("message", type_=outbox.c.id.type))
    .values(
        sent_at=sa.bindparam("sent", type_=outbox.c.sent_at.type),
        payload=None,
        lease_until=None,
        last_error=None,
    )
)


def _claimed(row: Any) -> ClaimedMail:
    return ClaimedMail(
        id=row.id,
        kind=row.kind,
        recipient=row.recipient,
        subject=row.subject,
        payload=row.payload,
        message_id=row.message_id,
        created_at=row.created_at,
        attempts=row.attempts,
        lease_until=row.lease_until,
        channel=row.channel,
    )
