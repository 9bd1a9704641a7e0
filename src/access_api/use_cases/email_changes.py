"""A verified change of email: a link to the new address, a notice to the old one, and the
switch only once the new address confirms."""

from __future__ import annotations

from dataclasses import replace

from access_api.bootstrap import normalize_email
from access_api.domain import errors as e
from access_api.domain import recovery, throttle
from access_api.domain.access import Caller
from access_api.domain.audit import Action, Actor, ActorKind
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.mail import email_change_mail, email_change_notice_mail, link
from access_api.domain.recovery import EmailChange
from access_api.domain.users import User
from access_api.ids import new_id
from access_api.services.keyring import new_token
from access_api.use_cases.work import Work

EMAIL_LINK_PREFIX = "aec"
CONFIRM_PATH = "/confirm-email"


async def request(work: Work, caller: Caller, new_email: str, password: str) -> EmailChange:
    """Only the person at the keyboard (a session, with their password) may move the account
    to another address: a stolen session or API key alone cannot take it."""
    if caller.credential is not ActorKind.SESSION:
        raise e.Forbidden("an email address can only be changed from a login session")
    new_email = normalize_email(new_email, "new_email")
    user = await work.users.lock(caller.user_id)
    stored = await work.users.password_hash(caller.user_id)
    if user is None or not await work.passwords.verify(password, stored):
        raise ValidationFailed([FieldError("password", "incorrect", "this is not your password")])
    recovery.ensure_new_email(
        user, new_email, await work.recovery.email_taken(new_email, other_than=user.id)
    )
    token = new_token(EMAIL_LINK_PREFIX)
    change = EmailChange(
        id=new_id(),
        user_id=user.id,
        new_email=new_email,
        created_at=work.now,
        expires_at=work.now + recovery.EMAIL_CHANGE_LIFETIME,
    )
    await work.recovery.add_email_change(change, work.keyring.digest(token), work.now)
    letters = work.state.dispatcher.letters
    await work.send(
        [
            letters.queued(
                email_change_mail(
                    recipient=new_email,
                    old_email=user.email,
                    confirm_link=link(work.settings.public_url, CONFIRM_PATH, token),
                    expires_at=change.expires_at,
                ),
                work.now,
            ),
            letters.queued(
                email_change_notice_mail(recipient=user.email, new_email=new_email), work.now
            ),
        ]
    )
    await work.record(
        caller.actor,
        Action.USER_EMAIL_CHANGE_REQUESTED,
        tenant=None,
        target_id=user.id,
        changes={"new_email": {"before": None, "after": new_email}},
    )
    return change


async def confirm(work: Work, token: str) -> User:
    """Switch to the new address through its live link (once); email_taken if someone took
    the address meanwhile."""
    address = (throttle.TOKEN_ADDRESS, work.ip or "unknown")
    await work.throttle.check(address)
    change = await work.recovery.use_email_change(work.keyring.digest(token), work.now)
    if change is None:
        work.throttle.failed(address)
        raise e.InvalidToken()
    user = await work.users.lock(change.user_id)
    if user is None:
        raise e.InvalidToken()
    if await work.recovery.email_taken(change.new_email, other_than=user.id):
        raise e.EmailTaken()
    await work.recovery.set_email(user.id, change.new_email, work.now)
    await work.record(
        Actor(user_id=user.id, kind=ActorKind.SYSTEM),
        Action.USER_EMAIL_CHANGED,
        tenant=None,
        target_id=user.id,
        changes={"email": {"before": user.email, "after": change.new_email}},
    )
    return replace(user, email=change.new_email, updated_at=work.now)
