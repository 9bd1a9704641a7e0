"""The emails the service sends, built as plain text and HTML, and when to retry a failed one."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

INVITATION = "invitation"
TWO_FACTOR_RESET = "two_factor_reset"
LOGIN_CODE = "login_code"
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


def two_factor_reset_mail(
    *,
    recipient: str,
    tenant_name: str,
    requested_by: str | None,
    confirm_link: str,
    deny_link: str,
    expires_at: datetime,
) -> Mail:
    """Seed 000: the user confirms the reset of their authenticator, or denies it, each by its
    link alone on its line."""
    tenant = _one_line(tenant_name)
    who = _one_line(requested_by or "") or "An administrator"
    subject = f"Confirm the reset of your two-factor authentication for {tenant}"
    text = (
        "Hello,\n"
        "\n"
        f"{who} asked to reset your two-factor authentication token for {tenant}.\n"
        "Once you confirm, you will sign in with a code sent to this address instead.\n"
        "\n"
        "Reset your two-factor authentication token:\n"
        f"{confirm_link}\n"
        "\n"
        "Deny this two-factor authentication reset:\n"
        f"{deny_link}\n"
        "\n"
        f"The links work once and expire on {_when(expires_at)}.\n"
        "If you did not lose your authenticator, deny the reset.\n"
    )
    e = html.escape
    body = (
        "<!DOCTYPE html>\n"
        '<html><body style="font-family: sans-serif">\n'
        "<p>Hello,</p>\n"
        f"<p>{e(who)} asked to reset your two-factor authentication token for "
        f"<strong>{e(tenant)}</strong>. Once you confirm, you will sign in with a code "
        "sent to this address instead.</p>\n"
        f'<p><a href="{e(confirm_link)}">Reset your two-factor authentication token</a></p>\n'
        f'<p><a href="{e(deny_link)}">Deny this two-factor authentication reset</a></p>\n'
        f"<p>The links work once and expire on {e(_when(expires_at))}.<br>\n"
        "If you did not lose your authenticator, deny the reset.</p>\n"
        "</body></html>\n"
    )
    return Mail(
        kind=TWO_FACTOR_RESET,
        recipient=recipient,
        subject=subject[:SUBJECT_MAX_LENGTH],
        text=text,
        html=body,
    )


def login_code_mail(*, recipient: str, code: str, expires_at: datetime) -> Mail:
    """An email sign-in code: six digits on a line of their own."""
    text = (
        "Your sign-in code is:\n"
        "\n"
        f"{code}\n"
        "\n"
        f"It works once, until {_when(expires_at)}. If you did not try to sign in, someone "
        "knows your password: change it.\n"
    )
    e = html.escape
    body = (
        "<!DOCTYPE html>\n"
        '<html><body style="font-family: sans-serif">\n'
        "<p>Your sign-in code is:</p>\n"
        f'<p style="font-size: 1.6em; letter-spacing: 0.2em"><strong>{e(code)}</strong></p>\n'
        f"<p>It works once, until {e(_when(expires_at))}. If you did not try to sign in, "
        "someone knows your password: change it.</p>\n"
        "</body></html>\n"
    )
    return Mail(
        kind=LOGIN_CODE, recipient=recipient, subject="Your sign-in code", text=text, html=body
    )


def retry_delay(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff after the n-th failed attempt: base, then twice that, four times
    that, … up to cap, so an SMTP outage is retried promptly at first and gently later."""
    if attempts < 1:
        return base
    exponent = min(attempts - 1, 32)
    return min(base * (1 << exponent), cap)
