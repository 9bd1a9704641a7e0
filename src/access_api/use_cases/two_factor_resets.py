"""Two-factor resets: an admin asks, the user confirms or denies through a link in an email."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from access_api.domain import errors as e
from access_api.domain import throttle, two_factor
from access_api.domain.access import Scope
from access_api.domain.audit import Action, Actor, ActorKind
from access_api.domain.mail import link, two_factor_reset_mail
from access_api.domain.two_factor import Reset, ResetStatus
from access_api.domain.users import TwoFactor, User
from access_api.ids import new_id
from access_api.pagination import After, Page
from access_api.repositories.outbox import QueuedMail
from access_api.services.keyring import new_token
from access_api.use_cases.work import Work

RESET_LINK_PREFIX = "tfr"
CONFIRM_PATH = "/two-factor-reset/confirm"
DENY_PATH = "/two-factor-reset/deny"

Answer = Literal["confirm", "deny"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetOf:
    """A reset request, whose user it is for, and its status now (pending ones expire)."""

    reset: Reset
    user: User
    status: ResetStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    status: ResetStatus
    two_factor: TwoFactor


async def list_made_in(
    work: Work,
    scope: Scope,
    *,
    status: ResetStatus | None,
    descending: bool,
    after: After | None,
    limit: int,
) -> Page[ResetOf]:
    """Requests made in this account: pending, confirmed, denied or expired."""
    page = await work.two_factor.list_made_in(
        scope.tenant.id,
        status=status,
        now=work.now,
        descending=descending,
        after=after,
        limit=limit,
    )
    people = await work.users.get_many(reset.user_id for reset in page.items)
    return Page(
        items=[
            ResetOf(reset=r, user=people[r.user_id], status=r.status_at(work.now))
            for r in page.items
        ],
        next_after=page.next_after,
    )


async def request(work: Work, scope: Scope, user_ids: list[UUID]) -> list[ResetOf]:
    """Ask each user to confirm the reset of their authenticator: an email with two links.
    A new request replaces a user's pending one. Atomic: one refused id refuses them all."""
    tenant = scope.tenant
    ids = list(dict.fromkeys(user_ids))
    visible = await work.users.get_many(
        await work.members.visible_from(tenant.id, tenant.root_id, ids, work.now)
    )
    targets = two_factor.plan_resets(
        scope.caller,
        tenant.id,
        ids,
        visible=visible,
        grant_chains={
            user_id: await work.grants.grant_chains(user_id, work.now) for user_id in visible
        },
    )
    await work.two_factor.withdraw_pending((user.id for user in targets), work.now)
    requester = await work.users.get(scope.caller.user_id)
    made: list[tuple[Reset, str, str]] = []
    mails: list[QueuedMail] = []
    for user in targets:
        reset = two_factor.new_reset(
            id=new_id(),
            root_id=tenant.root_id,
            tenant_id=tenant.id,
            user_id=user.id,
            requested_by=scope.caller.user_id,
            now=work.now,
        )
        confirm, deny = new_token(RESET_LINK_PREFIX), new_token(RESET_LINK_PREFIX)
        made.append((reset, work.keyring.digest(confirm), work.keyring.digest(deny)))
        mail = two_factor_reset_mail(
            recipient=user.email,
            tenant_name=tenant.name,
            requested_by=f"{requester.first_name} {requester.last_name}" if requester else None,
            confirm_link=link(work.settings.public_url, CONFIRM_PATH, confirm),
            deny_link=link(work.settings.public_url, DENY_PATH, deny),
            expires_at=reset.expires_at,
        )
        mails.append(work.state.dispatcher.letters.queued(mail, work.now))
        await work.record(
            scope.caller.actor,
            Action.TWO_FACTOR_RESET_REQUESTED,
            tenant=tenant,
            target_id=user.id,
            changes={"reset_id": {"before": None, "after": str(reset.id)}},
        )
    await work.two_factor.insert_resets(made)
    await work.send(mails)
    return [
        ResetOf(reset=reset, user=visible[reset.user_id], status=reset.status_at(work.now))
        for reset, _, _ in made
    ]


async def confirm(work: Work, token: str) -> Answered:
    """The user confirms: their authenticator is cleared; sign-in falls back to email codes."""
    return await _answer(work, token, "confirm")


async def deny(work: Work, token: str) -> Answered:
    """The user denies: nothing changes, and both of the request's links die."""
    return await _answer(work, token, "deny")


async def _answer(work: Work, token: str, answer: Answer) -> Answered:
    """A link works once; wrong links count against the address that tries them."""
    address = (throttle.TOKEN_ADDRESS, work.ip or "unknown")
    await work.throttle.check(address)
    reset = await work.two_factor.answer(work.keyring.digest(token), answer, work.now)
    if reset is None:
        work.throttle.failed(address)
        raise e.InvalidToken()
    if reset.status is ResetStatus.CONFIRMED:
        await work.two_factor.clear_totp(reset.user_id, work.now)
    user = await work.users.get(reset.user_id)
    if user is None:
        raise e.InvalidToken()
    await work.record(
        # The user answers through a link from their mailbox, not a session: "system" kind.
        Actor(user_id=reset.user_id, kind=ActorKind.SYSTEM),
        Action.TWO_FACTOR_RESET_CONFIRMED
        if reset.status is ResetStatus.CONFIRMED
        else Action.TWO_FACTOR_RESET_DENIED,
        tenant=None,
        target_id=reset.user_id,
        changes=two_factor.answer_changes(reset, user),
    )
    return Answered(status=reset.status, two_factor=user.two_factor)
