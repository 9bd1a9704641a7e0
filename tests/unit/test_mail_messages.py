"""The message a queued mail becomes (services/mailer.Letters.message), flattened as
aiosmtplib puts it on the wire and parsed back as a mail client would: the same headers and
parts whichever classes built it. The usual message (ASCII addresses) is built with the email
package's compat32 classes; one with an address in another script with the modern ones. The
SMTP tests (tests/api/test_mail_delivery.py) deliver both kinds to a real server."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from uuid import uuid4

import pytest
from aiosmtplib.email import flatten_message

from access_api.repositories.outbox import ClaimedMail
from access_api.services.keyring import Keyring
from access_api.services.mailer import (
    SEAL_PURPOSE,
    Letters,
    _international_message,
    _plain_message,
    plain_text,
)

KEYRING = Keyring(b"k" * 32)
LETTERS = Letters(KEYRING, "https://app.example.com")
SENDER = "access-api <no-reply@access-api.localhost>"
LINK = "https://app.example.com/accept-invitation?token=inv_" + "Ab0_-" * 9

SUBJECTS = (
    "Ada Lovelace invited you to Northwind",
    "Jürgen Müller invited you to Zürich Süd GmbH",
    "管理者 invited you to 東京",
    "A long subject " + "that goes on " * 8,
    "Tom & <b>Jerry</b> Bcc: evil@example.com",
)
TEXTS = (
    f"Hello,\n\nAccept the invitation:\n{LINK}\n\nIt expires soon.\n",
    "Grüße aus Köln: =?utf-8?q?not-a-header?= and a trailing space \n" + "x" * 200 + "\n",
    "Line one\n.\nA dot alone on its line, and From at the start:\nFrom here\n",
)
HTMLS = (
    f'<!DOCTYPE html>\n<html><body><p><a href="{LINK}">Accept</a></p></body></html>\n',
    "<p>Grüße, &amp; = &lt;3</p>\n",
)


def claimed(recipient: str, subject: str, text: str, html: str) -> ClaimedMail:
    payload = json.dumps({"text": text, "html": html}).encode()
    return ClaimedMail(
        id=uuid4(),
        kind="invitation",
        recipient=recipient,
        subject=subject,
        payload=KEYRING.seal(payload, SEAL_PURPOSE),
        message_id=f"<{uuid4()}@app.example.com>",
        created_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        attempts=1,
        lease_until=datetime(2026, 11, 22, 9, 1, tzinfo=UTC),
    )


def received(message: Message, *, utf8: bool = False) -> EmailMessage:
    """Flattened as aiosmtplib sends it, CRLF and all, then parsed as a mail client does."""
    parsed = message_from_bytes(flatten_message(message, utf8=utf8), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    assert isinstance(body, EmailMessage)
    assert body.get_content_type() == f"text/{subtype}"
    assert body.get_content_charset() == "utf-8"
    content: str = body.get_content()
    return content.replace("\r\n", "\n")


def seen(message: EmailMessage) -> dict[str, str]:
    return {name: str(message[name]) for name in message if name != "Content-Type"}


@pytest.mark.parametrize(
    ("subject", "text", "html"), list(itertools.product(SUBJECTS, TEXTS, HTMLS))
)
def test_the_usual_message_reads_as_written(subject: str, text: str, html: str) -> None:
    mail = claimed("ada@example.com", subject, text, html)
    built = LETTERS.message(mail, SENDER)
    assert not isinstance(built, EmailMessage)  # the compat32 classes: the cheap path
    got = received(built)
    assert got.get_content_type() == "multipart/alternative"
    assert (got["From"], got["To"], got["Subject"]) == (SENDER, "ada@example.com", subject)
    assert got["Date"] == "Sun, 22 Nov 2026 09:00:00 +0000"
    assert (got["Message-ID"], got["Auto-Submitted"]) == (mail.message_id, "auto-generated")
    assert (part(got, "plain"), part(got, "html")) == (text, html)
    assert plain_text(built) == text
    # The modern classes would have said the same.
    headers = {
        "From": SENDER,
        "To": "ada@example.com",
        "Subject": subject,
        "Date": "Sun, 22 Nov 2026 09:00:00 +0000",
        "Message-ID": mail.message_id,
        "Auto-Submitted": "auto-generated",
    }
    modern = received(_international_message(headers, text, html))
    plain = received(_plain_message(headers, text, html))
    assert seen(plain) | {"MIME-Version": "1.0"} == seen(modern) | {"MIME-Version": "1.0"}
    assert (part(plain, "plain"), part(plain, "html")) == (part(modern, "plain"), text and html)


def test_an_address_in_another_script_takes_the_modern_classes() -> None:
    mail = claimed("jürgen@müller.example", SUBJECTS[1], TEXTS[1], HTMLS[1])
    built = LETTERS.message(mail, SENDER)
    assert isinstance(built, EmailMessage)
    got = received(built, utf8=True)
    assert (got["To"], got["Subject"]) == ("jürgen@müller.example", SUBJECTS[1])
    assert (part(got, "plain"), part(got, "html")) == (TEXTS[1], HTMLS[1])
    assert plain_text(built) == TEXTS[1]


@pytest.mark.parametrize("field", ["recipient", "subject"])
def test_a_header_with_a_line_break_is_refused(field: str) -> None:
    values = {"recipient": "ada@example.com", "subject": "Hello"}
    values[field] += "\r\nBcc: evil@example.com"
    mail = claimed(values["recipient"], values["subject"], TEXTS[0], HTMLS[0])
    with pytest.raises(ValueError, match="CR or LF"):
        LETTERS.message(mail, SENDER)
