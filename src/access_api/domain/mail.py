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
    """As strftime("%Y-%m-%d %H:%M UTC") writes it, at a fifth of its cost (5 us here)."""
    return (
        f"{moment.year}-{moment.month:02d}-{moment.day:02d}"
        f" {moment.hour:02d}:{moment.minute:02d} UTC"
    )


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
    when = _when(expires_at)
    text = (
        "Hello,\n"
        "\n"
        f"{who} invited you to join {tenant}.\n"
        "\n"
        "Accept the invitation:\n"
        f"{accept_link}\n"
        "\n"
        f"The link works once and expires on {when}.\n"
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
        f"<p>The link works once and expires on {e(when)}.<br>\n"
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


PASSWORD_RESET = "password_reset"  # noqa: S105 - a mail kind
EMAIL_CHANGE = "email_change"
EMAIL_CHANGE_NOTICE = "email_change_notice"


def _simple(
    kind: str, recipient: str, subject: str, paragraphs: list[str], action: tuple[str, str] | None
) -> Mail:
    """A short mail: paragraphs, and at most one link, alone on its line in the text part."""
    e = html.escape
    text_parts = ["Hello,", ""]
    html_parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family: sans-serif">',
        "<p>Hello,</p>",
    ]
    for index, paragraph in enumerate(paragraphs):
        text_parts += [paragraph, ""]
        html_parts.append(f"<p>{e(paragraph)}</p>")
        if index == 0 and action is not None:
            label, url = action
            text_parts += [f"{label}:", url, ""]
            html_parts.append(f'<p><a href="{e(url)}">{e(label)}</a></p>')
            html_parts.append(f"<p>Or open this link in your browser:<br>{e(url)}</p>")
    html_parts += ["</body></html>", ""]
    return Mail(
        kind=kind,
        recipient=recipient,
        subject=_one_line(subject)[:SUBJECT_MAX_LENGTH],
        text="\n".join(text_parts).rstrip("\n") + "\n",
        html="\n".join(html_parts),
    )


def password_reset_mail(
    *, recipient: str, reset_link: str, expires_at: datetime, requested_by: str | None
) -> Mail:
    """A link to choose a new password: it works once, for an hour."""
    who = f"{_one_line(requested_by)} asked for" if requested_by else "Someone asked for"
    return _simple(
        PASSWORD_RESET,
        recipient,
        "Reset your password",
        [
            f"{who} a link to reset the password of your account ({recipient}).",
            f"The link works once and expires on {_when(expires_at)}. Every session of your "
            "account ends when the new password is set. If you did not ask for this, ignore "
            "this email: your password stays as it is.",
        ],
        ("Choose a new password", reset_link),
    )


def email_change_mail(
    *, recipient: str, old_email: str, confirm_link: str, expires_at: datetime
) -> Mail:
    """To the new address: proof that it reads its mail, by clicking."""
    return _simple(
        EMAIL_CHANGE,
        recipient,
        "Confirm your new email address",
        [
            f"The account {old_email} asked to use this address ({recipient}) from now on.",
            f"The link works once and expires on {_when(expires_at)}. If you did not ask for "
            "this, ignore this email.",
        ],
        ("Confirm the new address", confirm_link),
    )


def email_change_notice_mail(*, recipient: str, new_email: str) -> Mail:
    """To the old address: a change is under way, so a stolen session cannot do it unseen."""
    return _simple(
        EMAIL_CHANGE_NOTICE,
        recipient,
        "Your email address is about to change",
        [
            f"Someone signed in to your account asked to change its email address to {new_email}.",
            "The change happens only once the new address confirms it. If this was not you, "
            "change your password now and ask an administrator to end your sessions.",
        ],
        None,
    )
