"""Invitations: invite, list, edit, resend, revoke; preview and accept a link."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from access_api.domain import access, invitations, throttle
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.audit import Action, Actor, ActorKind, created
from access_api.domain.invitations import (
    Invitation,
    InvitationStatus,
    Invited,
    InviteFacts,
    Offer,
    OfferContext,
)
from access_api.domain.mail import accept_invitation_link, invitation_mail
from access_api.domain.permissions import Permission
from access_api.domain.tenants import Tenant
from access_api.domain.users import User, email_key
from access_api.ids import new_id
from access_api.pagination import After, Page
from access_api.repositories.outbox import QueuedMail
from access_api.services import emails as email_syntax
from access_api.services.keyring import new_token
from access_api.use_cases import members
from access_api.use_cases import policies as policy_cases
from access_api.use_cases.auth import NewSession, start_session
from access_api.use_cases.work import Work

Precondition = Callable[[Invitation], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Wanted:
    """Roles offered on one tenant; no tenant means the context itself."""

    tenant_id: UUID | None
    roles: tuple[str, ...]
    include_descendants: bool
    expires_at: datetime | None = None  # the offered access ends then


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One email of an invite: invited (an invitation was made and mailed) or granted (a user
    of the organization got the roles at once)."""

    email: str
    invitation: Invitation | None
    user_id: UUID | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    invited: Invited
    existing_account: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Acceptance:
    """What the invitee sends: a new person their profile, an existing account only its
    password (and a second-factor code when it has one)."""

    token: str
    password: str
    otp: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    webauthn: dict[str, Any] | None = None  # a passkey's assertion, when otp_required offers it


# --- helpers ------------------------------------------------------------------------------


def normalized_emails(emails: Sequence[str]) -> list[str]:
    """Emails as the mail system spells them, every invalid one reported at once."""
    problems: list[e.FieldError] = []
    normalized: list[str] = []
    for index, email in enumerate(emails):
        try:
            normalized.append(email_syntax.normalized(email))
        except email_syntax.EmailNotValidError as error:
            problems.append(e.FieldError(f"emails.{index}", "invalid_email", str(error)))
    if problems:
        raise e.ValidationFailed(problems)
    return normalized


def _offers(wanted: Sequence[Wanted], scope: Scope) -> list[Offer]:
    return [
        Offer(
            tenant_id=item.tenant_id or scope.tenant.id,
            roles=frozenset(item.roles),
            include_descendants=item.include_descendants,
            expires_at=item.expires_at,
        )
        for item in wanted
    ]


async def _offer_context(work: Work, scope: Scope, offers: list[Offer]) -> OfferContext:
    """Where the caller may offer access (at or below the context) and what they hold there."""
    tenant_ids = {offer.tenant_id for offer in offers}
    roles = await work.roles.of_tree(scope.tenant.root_id)
    held = await work.grants.held_on(scope.caller.user_id, tenant_ids)
    return OfferContext(
        caller=scope.caller,
        reachable_tenants=await work.tenants.at_or_below(scope.tenant.id, tenant_ids),
        caller_standing={
            tenant_id: access.standing(
                held[tenant_id], roles, work.now, scope.caller.permission_limit
            )
            for tenant_id in tenant_ids
        },
        roles=roles,
    )


async def _inviters(work: Work, made: Iterable[Invitation]) -> dict[UUID, User]:
    """Who invited, read once for a whole batch of mails (not once per mail)."""
    return await work.users.get_many(i.invited_by for i in made if i.invited_by)


def _mail_for(
    work: Work, invitation: Invitation, token: str, tenant: Tenant, inviters: Mapping[UUID, User]
) -> QueuedMail:
    inviter = inviters.get(invitation.invited_by) if invitation.invited_by else None
    mail = invitation_mail(
        recipient=invitation.email,
        tenant_name=tenant.name,
        inviter_name=f"{inviter.first_name} {inviter.last_name}" if inviter else None,
        inviter_email=inviter.email if inviter else None,
        accept_link=accept_invitation_link(work.settings.public_url, token),
        expires_at=invitation.expires_at,
    )
    return work.state.dispatcher.letters.queued(mail, invitation.updated_at)


async def _found(work: Work, scope: Scope, invitation_id: UUID, *, lock: bool) -> Invitation:
    found = await work.invitations.made_in(scope.tenant.id, [invitation_id], for_update=lock)
    if invitation_id not in found:
        raise e.NotFound(f"no invitation {invitation_id} here")
    return found[invitation_id]


# --- the inviting side --------------------------------------------------------------------


async def list_made_in(
    work: Work,
    scope: Scope,
    *,
    status: InvitationStatus | None,
    q: str | None,
    sort: str,
    descending: bool,
    after: After | None,
    limit: int,
) -> Page[Invitation]:
    return await work.invitations.list_made_in(
        scope.tenant.id,
        status=status,
        q=q,
        now=work.now,
        sort=sort,
        descending=descending,
        after=after,
        limit=limit,
    )


async def get(work: Work, scope: Scope, invitation_id: UUID) -> Invitation:
    return await _found(work, scope, invitation_id, lock=False)


async def invite(
    work: Work, scope: Scope, emails: Sequence[str], wanted: Sequence[Wanted], expires_in_days: int
) -> list[Outcome]:
    """Invite emails to the offered roles. An email of a user of this organization gets the
    roles at once, with no email (seed 003); every other gets an invitation and its link."""
    emails = normalized_emails(emails)
    offers = _offers(wanted, scope)
    invitations.check_emails(emails)
    invitations.check_offer_shape(offers)
    scope = await work.lock_tree(scope, Permission.INVITATIONS_WRITE)
    root_id, now = scope.tenant.root_id, work.now
    context = await _offer_context(work, scope, offers)
    accounts = await work.invitations.user_ids_by_email(emails)
    in_tree = await work.members.members_among(root_id, accounts.values())
    member_ids = {key: user_id for key, user_id in accounts.items() if user_id in in_tree}
    plan = invitations.plan_invitations(
        emails,
        offers,
        context,
        InviteFacts(
            members=member_ids,
            current=await work.grants.grants(
                (user_id, offer.tenant_id) for user_id in member_ids.values() for offer in offers
            ),
            open_invitations=await work.invitations.open_for(scope.tenant.id, emails),
        ),
        now,
    )
    await work.invitations.close_expired([invitation.id for invitation in plan.expire], now)
    made: list[tuple[Invitation, str]] = []
    tokens: list[str] = []
    for email in plan.invite:
        invitation = invitations.new_invitation(
            id=new_id(),
            root_id=root_id,
            tenant_id=scope.tenant.id,
            email=email,
            invited_by=scope.caller.user_id,
            offers=offers,
            expires_in_days=expires_in_days,
            now=now,
        )
        token = new_token(invitations.TOKEN_PREFIX)
        made.append((invitation, work.keyring.digest(token)))
        tokens.append(token)
    inviters = await _inviters(work, [invitation for invitation, _ in made])
    await work.invitations.insert(made, context.roles)
    await work.send(
        _mail_for(work, invitation, token, scope.tenant, inviters)
        for (invitation, _), token in zip(made, tokens, strict=True)
    )
    await work.grants.apply(
        plan.grant_changes, root_id=root_id, roles_by_key=context.roles, now=now
    )
    actor = scope.caller.actor
    await work.record_events(
        work.events_for(
            actor,
            Action.INVITATION_CREATED,
            tenant=scope.tenant,
            changed=((i.id, invitations.created_changes(i)) for i, _ in made),
        )
        + work.events_for(
            actor,
            Action.AUTHORIZATION_GRANTED,
            tenant=scope.tenant,
            changed=((c.user_id, access.grant_changes(c)) for c in plan.grant_changes),
        )
    )
    by_email = {invitation.email: invitation for invitation, _ in made}
    granted = dict(plan.granted)
    return [
        Outcome(email=email, invitation=by_email.get(email), user_id=granted.get(email))
        for email in emails
    ]


async def edit(
    work: Work,
    scope: Scope,
    invitation_id: UUID,
    wanted: Sequence[Wanted] | None,
    *,
    email: str | None,
    expect: Precondition,
) -> Invitation:
    """Replace a pending invitation's offers (its email is fixed). Under the tree lock, with
    the caller judged again: what they may offer is read as it is now."""
    scope = await work.lock_tree(scope, Permission.INVITATIONS_WRITE)
    current = await _found(work, scope, invitation_id, lock=True)
    expect(current)
    invitations.check_edit_request(current, email=email, offers_given=wanted is not None)
    offers = _offers(wanted or (), scope)
    context = await _offer_context(work, scope, offers)
    updated, changes = invitations.edit(current, offers, context, work.now, email=email)
    if changes:
        await work.invitations.replace_offers(updated, context.roles)
        await work.record(
            scope.caller.actor,
            Action.INVITATION_UPDATED,
            tenant=scope.tenant,
            target_id=updated.id,
            changes=changes,
        )
    return updated


async def resend(work: Work, scope: Scope, ids: Sequence[UUID]) -> list[Invitation]:
    """A new link each (the old one dies) and a new expiry from now."""
    # The tree lock orders a revival against a new invitation for the same email.
    scope = await work.lock_tree(scope, Permission.INVITATIONS_WRITE)
    found = await work.invitations.made_in(scope.tenant.id, ids, for_update=True)
    pending = await work.invitations.open_for(scope.tenant.id, [i.email for i in found.values()])
    resent = invitations.plan_resend(
        ids, found, {key: other.id for key, other in pending.items()}, work.now
    )
    tokens = [new_token(invitations.TOKEN_PREFIX) for _ in resent]
    await work.invitations.resend(
        [
            (invitation, work.keyring.digest(token))
            for invitation, token in zip(resent, tokens, strict=True)
        ]
    )
    inviters = await _inviters(work, resent)
    await work.send(
        _mail_for(work, invitation, token, scope.tenant, inviters)
        for invitation, token in zip(resent, tokens, strict=True)
    )
    await work.record_events(
        work.events_for(
            scope.caller.actor,
            Action.INVITATION_RESENT,
            tenant=scope.tenant,
            changed=((i.id, invitations.resent_changes(found[i.id], i, work.now)) for i in resent),
        )
    )
    return resent


async def revoke(work: Work, scope: Scope, ids: Sequence[UUID]) -> list[Invitation]:
    """Revoke invitations: their links stop working at once. Returns each as it now is."""
    found = await work.invitations.made_in(scope.tenant.id, ids, for_update=True)
    changes = invitations.plan_revoke(ids, found, work.now)
    await work.invitations.revoke([after for _, after in changes])
    await work.record_events(
        work.events_for(
            scope.caller.actor,
            Action.INVITATION_REVOKED,
            tenant=scope.tenant,
            changed=(
                (after.id, invitations.revoked_changes(before, work.now))
                for before, after in changes
            ),
        )
    )
    current = found | {after.id: after for _, after in changes}
    return [current[i] for i in invitations.unique(ids)]


# --- the invitee's side (the token is the credential) -------------------------------------


async def _invited(work: Work, token: str) -> Invited:
    """The invitation behind a link, if it can still be accepted. Every failure reads the
    same (invalid_token) and counts against the client's address: links are not guessable,
    but an address trying many is refused for a while."""
    address = (throttle.TOKEN_ADDRESS, work.ip or "unknown")
    await work.throttle.check(address)
    invited = await work.invitations.by_digest(work.keyring.digest(token))
    try:
        if invited is None:
            raise e.InvalidToken()
        invitations.ensure_acceptable(invited.invitation, work.now)
    except e.InvalidToken:
        work.throttle.failed(address)
        raise
    return invited


async def preview(work: Work, token: str) -> Preview:
    """What a link offers, and whether its email already has an account."""
    invited = await _invited(work, token)
    accounts = await work.invitations.user_ids_by_email([invited.invitation.email])
    return Preview(
        invited=invited, existing_account=email_key(invited.invitation.email) in accounts
    )


async def accept(work: Work, answer: Acceptance) -> NewSession:
    """Become a user (or prove an existing account), get the offered roles, and a session.
    The link is judged again under the tree lock: the claim succeeds only while it is still
    pending with this token, so a link revoked, resent or used meanwhile is refused."""
    invitation = (await _invited(work, answer.token)).invitation
    found = await work.users.by_email(invitation.email)
    password_hash: str | None = None
    if found is not None:
        invitations.check_existing_account_answer(
            {"first_name": answer.first_name, "last_name": answer.last_name, "phone": answer.phone}
        )
        user, stored = found
        account = (throttle.LOGIN_ACCOUNT, email_key(user.email))
        await work.throttle.check(account)
        if not await work.passwords.verify(answer.password, stored):
            work.throttle.failed(account)
            raise e.InvalidCredentials("the password does not match the account of this email")
        # Accepting logs the account in: it asks for the same second factor login does.
        await work.second_factor.check(user, answer.otp, account, assertion=answer.webauthn)
    else:
        user = invitations.new_invitee(
            invitation,
            id=new_id(),
            first_name=answer.first_name,
            last_name=answer.last_name,
            phone=answer.phone,
            password=answer.password,
            now=work.now,
            min_password_length=await policy_cases.required_password_length(
                work, None, [(o.tenant_id, o.include_descendants) for o in invitation.offers]
            ),
        )
        password_hash = await work.passwords.hash(answer.password)
    # Hashing is done: only now take the locks, tree first (as every access change does).
    await work.tenants.lock_tree(invitation.root_id)
    if not await work.invitations.claim(invitation.id, work.keyring.digest(answer.token), work.now):
        raise e.InvalidToken()
    # Read the offers after the claim: an edit committed just before it is what was accepted.
    offers = (await work.invitations.made_in(invitation.tenant_id, [invitation.id]))[
        invitation.id
    ].offers
    tenant = await work.tenants.get(invitation.tenant_id)
    if tenant is None:  # deleting a tenant revokes its invitations first: not reached
        raise e.InvalidToken()
    actor = Actor(user_id=user.id, kind=ActorKind.SESSION)
    joined = await members.join(
        work,
        actor,
        root_id=invitation.root_id,
        user=user,
        password_hash=password_hash,
        offers=offers,
        tenant=tenant,
    )
    await work.invitations.set_accepted_user(invitation.id, user.id)
    if joined.created:
        await work.record(
            actor,
            Action.USER_CREATED,
            tenant=tenant,
            target_id=user.id,
            changes=created(user, ("email", "first_name", "last_name", "phone")),
        )
    await work.record(
        actor,
        Action.INVITATION_ACCEPTED,
        tenant=tenant,
        target_id=invitation.id,
        changes=invitations.accepted_changes(user.id),
    )
    return await start_session(work, user)
