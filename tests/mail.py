"""A real SMTP server on loopback (aiosmtpd) that keeps what it accepted, and mail helpers."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import unquote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession

PUBLIC_URL = "https://app.access-api.test"  # tests.conftest.settings_for
_ACCEPT_LINK = re.compile(rf"^{re.escape(PUBLIC_URL)}/accept-invitation\?token=(\S+)$", re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Inbox:
    """An aiosmtpd handler. A message counts as delivered only once this server answered 250
    to its DATA: what it refused or never acknowledged is not in the inbox.

    refuse: recipients answered 550 at RCPT (an address that does not exist).
    delay: seconds to think before acknowledging each message (a slow server).
    hold_at: the n-th message (1-based) waits at DATA until release() is called, and is then
    refused with 451 instead of acknowledged (its sender was killed meanwhile)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self.delay = 0.0
        self.hold_at: int | None = None
        self.seen = 0
        self.held = threading.Event()
        self._released = threading.Event()

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.refuse.clear()
            self.delay = 0.0
            self.hold_at = None
            self.seen = 0
            self.held.clear()
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: SmtpSession, envelope: Envelope
    ) -> str:
        with self._lock:
            self.seen += 1
            number = self.seen
        if self.hold_at is not None and number == self.hold_at:
            self.held.set()
            await asyncio.to_thread(self._released.wait, 60)
            return "451 4.3.0 Sender went away; not accepted"
        if self.delay:
            await asyncio.sleep(self.delay)
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content or "").encode()
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 2.0.0 Message accepted for delivery"

    def take(self) -> list[EmailMessage]:
        with self._lock:
            taken = list(self.messages)
            self.messages.clear()
        return taken

    def count_by_message_id(self) -> Counter[str]:
        with self._lock:
            return Counter(str(message["Message-ID"]) for message in self.messages)

    async def arrived(self, count: int, within: float = 20.0) -> None:
        """Wait (without blocking the event loop) until count messages were acknowledged."""
        deadline = time.monotonic() + within
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} mails arrived"
            await asyncio.sleep(0.05)


class SmtpServer:
    """An SMTP server on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is None:
            controller = Controller(
                self.inbox, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True
            )
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert isinstance(part, EmailMessage)
    assert part.get_content_type() == f"text/{subtype}"
    text: str = part.get_content()
    return text.replace("\r\n", "\n")  # as received over SMTP: CRLF line ends


def plain_text(message: EmailMessage) -> str:
    return _part(message, "plain")


def html_text(message: EmailMessage) -> str:
    return _part(message, "html")


def accept_token(message: EmailMessage) -> str:
    """The token of the accept link, read as a person would: the link line of the text part."""
    (token,) = _ACCEPT_LINK.findall(plain_text(message))
    return unquote(token)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    """The session's SMTP server, running, with an empty inbox (left running afterwards)."""
    smtp_server.start()
    smtp_server.inbox.clear()
    yield smtp_server
    smtp_server.inbox.release()
    smtp_server.start()
