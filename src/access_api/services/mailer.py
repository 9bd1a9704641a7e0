"""Mail delivery: the outbox writer, SMTP and console transports, and the dispatcher loop.

Delivery is at least once, and in practice exactly once. A message is claimed with a lease
(committed), sent, and marked sent in its own short transaction right after the SMTP server
accepts it (250), before the next message is touched. One window cannot be closed: the server
accepted the message and the process died before the mark was committed. The message is then
sent again once its lease runs out, with the same Message-ID, so the receiving side can drop
the duplicate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.charset import QP, Charset
from email.header import Header, decode_header, make_header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from access_api.db import Database
from access_api.domain.mail import Mail
from access_api.ids import new_id
from access_api.repositories.outbox import MAIL, ClaimedMail, QueuedMail
from access_api.services.clock import Clock, SystemClock
from access_api.services.keyring import Keyring, SealBroken
from access_api.services.outbox import (
    Delivery,
    DeliveryFailed,
    OutboxDispatcher,
    Pacing,
    stop_in_time,
)
from access_api.settings import Settings

log = logging.getLogger("access_api.mail")

SEAL_PURPOSE = "outbox"
__all__ = ["Delivery", "Dispatcher", "stop_in_time"]


# --- writing to the outbox ----------------------------------------------------------------


class Letters:
    """Turns a Mail into an outbox row: the body sealed (it holds a link that logs someone in),
    and a Message-ID fixed now, so a message sent twice is recognizably the same message."""

    def __init__(self, keyring: Keyring, public_url: str) -> None:
        self._keyring = keyring
        self._domain = urlsplit(public_url).hostname or "access-api.localhost"

    def queued(self, mail: Mail, now: datetime) -> QueuedMail:
        message_id = new_id()
        payload = json.dumps({"text": mail.text, "html": mail.html}).encode()
        return QueuedMail(
            id=message_id,
            kind=mail.kind,
            recipient=mail.recipient,
            subject=mail.subject,
            payload=self._keyring.seal(payload, SEAL_PURPOSE),
            message_id=f"<{message_id}@{self._domain}>",
            created_at=now,
        )

    def message(self, claimed: ClaimedMail, sender: str) -> Message:
        """The RFC 5322 message: a plain-text part and an HTML alternative, both UTF-8 in
        quoted-printable."""
        if claimed.payload is None:
            raise SealBroken("the message has no body left")
        body = json.loads(self._keyring.unseal(claimed.payload, SEAL_PURPOSE))
        headers = {
            "From": sender,
            "To": claimed.recipient,
            "Subject": claimed.subject,
            "Date": format_datetime(claimed.created_at),
            "Message-ID": claimed.message_id,
            "Auto-Submitted": "auto-generated",
        }
        if any("\r" in value or "\n" in value for value in headers.values()):
            raise ValueError("a header value may not hold CR or LF")
        if sender.isascii() and claimed.recipient.isascii():
            return _plain_message(headers, body["text"], body["html"])
        return _international_message(headers, body["text"], body["html"])


# The usual message (ASCII addresses) is built with the email package's compat32 classes:
# the modern EmailMessage parses every header it is given and picks each part's encoding by
# trial, 1.8 ms of CPU for an invitation against 0.24 ms here (the dispatcher's main cost).
# Both give the same headers and parts once parsed (tests/unit/test_mail_messages.py).
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def _plain_message(headers: dict[str, str], text: str, html: str) -> Message:
    message = MIMEMultipart("alternative")
    for name, value in headers.items():
        # A subject in another script is encoded (RFC 2047); the rest is ASCII here.
        message[name] = (
            value if value.isascii() else Header(value, "utf-8", header_name=name).encode()
        )
    message.attach(_qp_part(text, "plain"))
    message.attach(_qp_part(html, "html"))
    return message


_FROM_AT_LINE_START = re.compile(r"^From ", re.MULTILINE)


def _qp_part(content: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.set_payload(content, _UTF8_QP)
    # compat32's generator (aiosmtplib's for these classes) writes '>From ' for a line that
    # starts with 'From ', as mbox does; its F written as =46 is the same text, untouched.
    encoded = part.get_payload()
    if isinstance(encoded, str) and "From " in encoded:
        part.set_payload(_FROM_AT_LINE_START.sub("=46rom ", encoded))
    return part


def _international_message(headers: dict[str, str], text: str, html: str) -> EmailMessage:
    """An address in another script needs SMTPUTF8, which only the modern classes write."""
    message = EmailMessage()
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def plain_text(message: Message) -> str:
    """The text/plain part of a message, decoded."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


def _decoded(value: str | None) -> str:
    return str(make_header(decode_header(value))) if value else ""


# --- transports ---------------------------------------------------------------------------


class Transport(Protocol):
    name: str

    async def send(self, message: Message) -> None:
        """Hand the message over; return only once the receiver accepted it."""

    async def release(self) -> None:
        """Close any connection kept open between messages."""

    def is_permanent(self, error: BaseException) -> bool:
        """Would retrying this failure never help?"""


class ConsoleTransport:
    """Without SMTP settings, each message (with its links) goes to the log: the embedded
    default works on a laptop with nothing else installed."""

    name = "console"

    async def send(self, message: Message) -> None:
        if not log.isEnabledFor(logging.INFO):
            return  # nothing would be written: nothing to render
        log.info(
            "mail to %s logged, not sent (no ACCESS_API_SMTP_URL)\n"
            "Subject: %s\nMessage-ID: %s\n\n%s",
            message["To"],
            _decoded(message["Subject"]),
            message["Message-ID"],
            plain_text(message),
        )

    async def release(self) -> None:
        return None

    def is_permanent(self, error: BaseException) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool


_SCHEMES = {
    # scheme: (implicit TLS, STARTTLS, default port)
    "smtp": (False, False, 25),
    "smtp+starttls": (False, True, 587),
    "smtps": (True, False, 465),
}


def parse_smtp_url(url: str) -> SmtpTarget:
    """smtp://user:pass@host:port (plain), smtp+starttls://… (upgraded), smtps://… (TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError("an SMTP URL looks like smtp://user:password@host:port")
    use_tls, start_tls, port = _SCHEMES[parts.scheme]
    return SmtpTarget(
        hostname=parts.hostname,
        port=parts.port or port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=use_tls,
        start_tls=start_tls,
    )


class SmtpTransport:
    """SMTP with aiosmtplib. One connection serves a whole batch, and is dropped after any
    failure so the next message starts from a clean session."""

    name = "smtp"

    def __init__(self, url: str, timeout: float) -> None:
        self._target = parse_smtp_url(url)
        self._timeout = timeout
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        target = self._target
        smtp = aiosmtplib.SMTP(
            hostname=target.hostname,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            timeout=self._timeout,
        )
        await smtp.connect()
        self._smtp = smtp
        return smtp

    async def send(self, message: Message) -> None:
        smtp = await self._connection()
        try:
            await smtp.send_message(message)
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    async def release(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None or not smtp.is_connected:
            return
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()

    def is_permanent(self, error: BaseException) -> bool:
        # The address itself was refused (5xx on RCPT): it will not start to exist on retry.
        # Other 5xx (sender, auth, relay) are usually configuration, fixed by an operator:
        # those messages wait for the fix rather than being dropped.
        return isinstance(error, aiosmtplib.SMTPRecipientsRefused) and all(
            refused.code >= 500 for refused in error.recipients
        )


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_url is None:
        return ConsoleTransport()
    # A send must end well inside its lease, or another dispatcher could take it meanwhile.
    return SmtpTransport(settings.smtp_url.get_secret_value(), timeout=_send_timeout(settings))


def _send_timeout(settings: Settings) -> float:
    return settings.mail_lease_seconds / 2


# --- the dispatcher -----------------------------------------------------------------------


class Dispatcher(OutboxDispatcher):
    """Delivers the mail channel of the outbox over its transport (SMTP, or the console)."""

    channel = MAIL
    log = log

    def __init__(
        self,
        *,
        database: Database,
        keyring: Keyring,
        clock: Clock,
        settings: Settings,
        transport: Transport | None = None,
    ) -> None:
        super().__init__(
            database=database,
            clock=clock,
            pacing=Pacing(
                lease=timedelta(seconds=settings.mail_lease_seconds),
                poll_seconds=settings.mail_poll_seconds,
                retry_base=timedelta(seconds=settings.mail_retry_base_seconds),
                retry_cap=timedelta(seconds=settings.mail_retry_max_seconds),
                max_attempts=settings.mail_max_attempts,
            ),
        )
        self.transport = transport or transport_for(settings)
        self.letters = Letters(keyring, settings.public_url)
        self._sender = settings.smtp_from
        self._send_timeout = _send_timeout(settings)

    async def attempt(self, claimed: ClaimedMail) -> None:
        try:
            message = self.letters.message(claimed, self._sender)
        except (SealBroken, ValueError) as error:
            # Sealed under another key (a changed SECRET_KEY): no retry can read it.
            raise DeliveryFailed(f"{type(error).__name__}: {error}", permanent=True) from error
        async with asyncio.timeout(self._send_timeout):
            await self.transport.send(message)

    def is_permanent(self, error: BaseException) -> bool:
        return super().is_permanent(error) or self.transport.is_permanent(error)

    def delivered_as(self) -> str:
        """Mail the console transport only logged was not delivered, and the log says so."""
        return "logged, not sent," if self.transport.name == "console" else "delivered"

    async def release(self) -> None:
        await self.transport.release()


async def run_worker(settings: Settings) -> None:
    """`access-api worker`: the outbox dispatchers alone (mail and webhooks), until SIGTERM or
    SIGINT."""
    # Imported here: the webhook channel builds on this module (Letters for its notices).
    from access_api.services.webhooks import webhook_dispatcher  # noqa: PLC0415

    database = Database.connect(settings)
    keyring = Keyring(settings.secret)
    clock = SystemClock()
    dispatcher = Dispatcher(database=database, keyring=keyring, clock=clock, settings=settings)
    hooks = webhook_dispatcher(dispatcher, database, keyring, clock, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("mail worker started (%s transport)", dispatcher.transport.name)
    try:
        await asyncio.gather(dispatcher.run(stop), hooks.run(stop))
    finally:
        await dispatcher.close()
        await database.dispose()
        log.info("mail worker stopped")
