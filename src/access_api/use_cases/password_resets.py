"""Forgot password, and reset links an admin sends: a link by email, never a password seen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from uuid import UUID

from access_api.domain import errors as e
from access_api.domain import recovery, throttle
from access_api.domain.access import Scope
from access_api.domain.audit import SYSTEM, Action, Actor
from access_api.domain.mail import link, password_reset_mail
from access_api.domain.permissions import Permission
from access_api.domain.users import User, check_password, email_key
from access_api.repositories.throttle import ThrottleRepository
from access_api.services.keyring import new_token
from access_api.use_cases.work import Work

RESET_LINK_PREFIX = "apr"
RESET_PATH = "/reset-password"


async def request(work: Work, email: str) -> None:
    """Send a reset link if the email belongs to someone. The answer, and the work done, are
    the same either way (no account enumeration); each request counts against the address
    and the account, so nobody can mail-bomb a person or probe in bulk."""
    attempts = (
        (recovery.PASSWORD_RESET_ACCOUNT, email_key(email)),
        (recovery.PASSWORD_RESET_ADDRESS, work.ip or "unknown"),
    )
    started = time.monotonic()
    await work.throttle.check(*attempts)
    buckets = ThrottleRepository(work.session)
    for rule, subject in attempts:
        await buckets.record_failure(
            work.throttle.key(rule, subject), rule.name, rule.policy, work.now
        )
    found = await work.users.by_email(email)
    user = found[0] if found else None
    # An unknown email runs the same statements (they match no row and add no link), and the
    # answer waits out a floor, so the little that differs does not show in its timing.
    await _send(work, user, requested_by=None, tenant_id=None, actor=SYSTEM, scope=None)
    floor = work.settings.password_reset_answer_seconds
    await asyncio.sleep(max(0.0, floor - (time.monotonic() - started)))


async def send_links(work: Work, scope: Scope, user_ids: Sequence[UUID]) -> list[User]:
    """An admin sends reset links (users.write, downward only, never to themselves); they
    never see nor set the password."""
    scope = await work.lock_tree(scope, Permission.USERS_WRITE)
    tenant = scope.tenant
    ids = list(dict.fromkeys(user_ids))
    visible = await work.users.get_many(
        await work.members.visible_from(tenant.id, tenant.root_id, ids, work.now)
    )
    targets = recovery.plan_password_resets(
        scope.caller,
        tenant.id,
        ids,
        visible=visible,
        grant_chains={
            user_id: await work.grants.grant_chains(user_id, work.now) for user_id in visible
        },
    )
    admin = await work.users.get(scope.caller.user_id)
    name = f"{admin.first_name} {admin.last_name} ({admin.email})" if admin else None
    for user in targets:
        await _send(
            work,
            user,
            requested_by=name,
            tenant_id=tenant.id,
            actor=scope.caller.actor,
            scope=scope,
        )
    return targets


async def _send(
    work: Work,
    user: User | None,
    *,
    requested_by: str | None,
    tenant_id: UUID | None,
    actor: Actor,
    scope: Scope | None,
) -> None:
    token = new_token(RESET_LINK_PREFIX)
    digest = work.keyring.digest(token)
    expires_at = work.now + recovery.PASSWORD_RESET_LIFETIME
    await work.recovery.kill_resets(user.id if user else None, work.now)
    mail = password_reset_mail(
        recipient=user.email if user else "nobody@invalid",
        reset_link=link(work.settings.public_url, RESET_PATH, token),
        expires_at=expires_at,
        requested_by=requested_by,
    )
    queued = work.state.dispatcher.letters.queued(mail, work.now)
    if user is None:
        return
    reset_id = await work.recovery.add_reset(
        user.id,
        digest,
        now=work.now,
        expires_at=expires_at,
        requested_by=actor.user_id,
        tenant_id=tenant_id,
    )
    await work.send([queued])
    await work.record(
        actor,
        Action.PASSWORD_RESET_REQUESTED,
        tenant=scope.tenant if scope else None,
        target_id=user.id,
        changes={"reset_id": {"before": None, "after": str(reset_id)}},
    )


async def confirm(work: Work, token: str, new_password: str) -> None:
    """Set a new password through a live link, which dies; every session of the account ends
    (whoever had the old password is out). Two-factor still applies at the next login."""
    address = (throttle.TOKEN_ADDRESS, work.ip or "unknown")
    await work.throttle.check(address)
    used = await work.recovery.use_reset(work.keyring.digest(token), work.now)
    if used is None:
        work.throttle.failed(address)
        raise e.InvalidToken()
    reset_id, user_id = used
    user = await work.users.lock(user_id)
    if user is None:
        raise e.InvalidToken()
    check_password(new_password, email=user.email, field="new_password")
    await work.users.set_password_hash(user.id, await work.passwords.hash(new_password), work.now)
    ended = await work.session_list.end_all([user.id], work.now)
    await work.throttle.succeeded((throttle.LOGIN_ACCOUNT, email_key(user.email)))
    await work.record(
        Actor(user_id=user.id, kind=SYSTEM.kind),
        Action.PASSWORD_RESET_COMPLETED,
        tenant=None,
        target_id=user.id,
        changes={
            "reset_id": {"before": str(reset_id), "after": None},
            "sessions_ended": {"before": len(ended), "after": 0},
        },
    )
