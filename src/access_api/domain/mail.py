"""The emails the service sends, built as plain text and HTML, and when to retry a failed one."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

INVITATION = "invitation"
SUBJECT_MAX_LENGTH = 300
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail:
    """One message to one recipient. The bodies may carry a link that logs someone in."""

    kind: str
    recipient: str
    subject: str
    text: str
    html: str


def link(public_url: str, path: str, token: str) -> str:
    """Links point at the frontend under PUBLIC_URL, never at whatever Host a request named."""
    return f"{public_url.rstrip('/')}{path}?token={quote(token, safe='')}"


def accept_invitation_link(public_url: str, token: str) -> str:
    return link(public_url, "/accept-invitation", token)


def _one_line(text: str) -> str:
    """Names end up in a header: a line break there would let them write headers of their own."""
    return _SPACES.sub(" ", text).strip()


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def invitation_mail(
    *,
    recipient: str,
    tenant_name: str,
    inviter_name: str | None,
    inviter_email: str | None,
    accept_link: str,
    expires_at: datetime,
) -> Mail:
    """An invitation: who invites whom to which account, the link (alone on its line in the
    text part, so any client makes it clickable), and when it stops working."""
    tenant = _one_line(tenant_name)
    inviter = _one_line(inviter_name or "") or "An administrator"
    who = f"{inviter} ({inviter_email})" if inviter_email else inviter
    subject = _one_line(f"{inviter} invited you to {tenant}")[:SUBJECT_MAX_LENGTH]
    text = (
        "Hello,\n"
        "\n"
        f"{who} invited you to join {tenant}.\n"
        "\n"
        "Accept the invitation:\n"
        f"{accept_link}\n"
        "\n"
        f"The link works once and expires on {_when(expires_at)}.\n"
        "If you did not expect this invitation, ignore this email.\n"
    )
    e = html.escape
    body = (
        "<!DOCTYPE html>\n"
        '<html><body style="font-family: sans-serif">\n'
        "<p>Hello,</p>\n"
        f"<p>{e(who)} invited you to join <strong>{e(tenant)}</strong>.</p>\n"
        f'<p><a href="{e(accept_link)}">Accept the invitation</a></p>\n'
        f"<p>Or open this link in your browser:<br>{e(accept_link)}</p>\n"
        f"<p>The link works once and expires on {e(_when(expires_at))}.<br>\n"
        "If you did not expect this invitation, ignore this email.</p>\n"
        "</body></html>\n"
    )
    return Mail(kind=INVITATION, recipient=recipient, subject=subject, text=text, html=body)


def retry_delay(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff after the n-th failed attempt: base, then twice that, four times
    that, … up to cap, so an SMTP outage is retried promptly at first and gently later."""
    if attempts < 1:
        return base
    exponent = min(attempts - 1, 32)
    return min(base * (1 << exponent), cap)
