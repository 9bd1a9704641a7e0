"""Invitations (seed 001): offers of grants to an email, made in one tenant, accepted once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from access_api.domain import access
from access_api.domain.access import Caller, Grant, GrantChange, Role, Standing
from access_api.domain.audit import Changes
from access_api.domain.errors import (
    CannotChangeOwnAccess,
    DomainError,
    EmailImmutable,
    FieldError,
    InvalidToken,
    InvitationExists,
    InvitationNotPending,
    ItemError,
    NotFound,
    ValidationFailed,
    raise_if_any,
)
from access_api.domain.users import (
    PASSWORD_MIN_LENGTH,
    User,
    check_password,
    email_key,
    new_user,
)

MAX_EMAILS = 100
EXPIRES_IN_DAYS_MIN = 1
EXPIRES_IN_DAYS_MAX = 30
EXPIRES_IN_DAYS_DEFAULT = 7
MAX_OFFERS = 1000
# A link's token: "inv_" and a random part; anything much longer is not one of ours.
TOKEN_PREFIX = "inv"  # noqa: S105 - a prefix, not a secret
TOKEN_MAX_LENGTH = 256
# An email address (RFC 5321 path limit), also the longest search text over emails.
EMAIL_MAX_LENGTH = 320
# A second-factor code given when accepting as an existing account with two-factor on.
OTP_MAX_LENGTH = 64

# Offers have no user yet: the privilege check judges the grant, not who would receive it.
_INVITEE = UUID(int=0)


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """Roles offered on one tenant; with include_descendants, on everything below it too."""

    tenant_id: UUID
    roles: frozenset[str]
    include_descendants: bool
    expires_at: datetime | None = None  # time-limited access: the grant ends then

    def as_grant(self, user_id: UUID = _INVITEE) -> Grant:
        return Grant(
            user_id=user_id,
            tenant_id=self.tenant_id,
            roles=self.roles,
            include_descendants=self.include_descendants,
            expires_at=self.expires_at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Inviter:
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitation:
    id: UUID
    root_id: UUID
    tenant_id: UUID
    email: str
    status: InvitationStatus
    invited_by: UUID | None
    expires_in_days: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    accepted_user_id: UUID | None
    revoked_at: datetime | None
    sent_count: int
    last_sent_at: datetime | None
    offers: tuple[Offer, ...]

    @property
    def email_key(self) -> str:
        return email_key(self.email)

    def status_at(self, now: datetime) -> InvitationStatus:
        """A pending invitation past its expiry is expired, with no job needed to mark it."""
        if self.status is InvitationStatus.PENDING and self.expires_at <= now:
            return InvitationStatus.EXPIRED
        return self.status


@dataclass(frozen=True, slots=True, kw_only=True)
class Invited:
    """An invitation as its link shows it: with the inviting tenant and who invited."""

    invitation: Invitation
    tenant_name: str
    inviter: Inviter | None


def new_invitation(
    *,
    id: UUID,
    root_id: UUID,
    tenant_id: UUID,
    email: str,
    invited_by: UUID,
    offers: Sequence[Offer],
    expires_in_days: int,
    now: datetime,
) -> Invitation:
    return Invitation(
        id=id,
        root_id=root_id,
        tenant_id=tenant_id,
        email=email,
        status=InvitationStatus.PENDING,
        invited_by=invited_by,
        expires_in_days=check_expires_in_days(expires_in_days),
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(days=expires_in_days),
        accepted_at=None,
        accepted_user_id=None,
        revoked_at=None,
        sent_count=1,
        last_sent_at=now,
        offers=_sorted(offers),
    )


def check_expires_in_days(days: int) -> int:
    if not EXPIRES_IN_DAYS_MIN <= days <= EXPIRES_IN_DAYS_MAX:
        raise ValidationFailed(
            [
                FieldError(
                    "expires_in_days",
                    "out_of_range",
                    f"must be {EXPIRES_IN_DAYS_MIN}-{EXPIRES_IN_DAYS_MAX} days",
                )
            ]
        )
    return days


def _sorted(offers: Iterable[Offer]) -> tuple[Offer, ...]:
    return tuple(sorted(offers, key=lambda offer: str(offer.tenant_id)))


# --- judging offers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferContext:
    """The facts offers are judged against.

    reachable_tenants: the offered tenants that are at or below the context.
    caller_standing: what the caller holds on each offered tenant.
    roles: the tree's roles by key.
    """

    caller: Caller
    reachable_tenants: frozenset[UUID]
    caller_standing: Mapping[UUID, Standing]
    roles: Mapping[str, Role]


def check_offer_shape(
    offers: Sequence[Offer], field: str = "authorizations", now: datetime | None = None
) -> None:
    """An offer names each tenant once and at least one role there: an invitation to no
    access would make a user who can do nothing. Time-limited access ends in the future."""
    problems: list[FieldError] = [
        FieldError(f"{field}.{index}.expires_at", "in_the_past", "must be in the future")
        for index, offer in enumerate(offers)
        if now is not None and offer.expires_at is not None and offer.expires_at <= now
    ]
    if not offers:
        problems.append(FieldError(field, "too_short", "offer at least one authorization"))
    seen: set[UUID] = set()
    for index, offer in enumerate(offers):
        if offer.tenant_id in seen:
            problems.append(FieldError(f"{field}.{index}", "duplicate", "the same account twice"))
        seen.add(offer.tenant_id)
        if not offer.roles:
            problems.append(
                FieldError(f"{field}.{index}.roles", "too_short", "offer at least one role")
            )
        elif len(offer.roles) > access.MAX_ROLES_PER_GRANT:
            problems.append(
                FieldError(
                    f"{field}.{index}.roles",
                    "too_many",
                    f"at most {access.MAX_ROLES_PER_GRANT} roles",
                )
            )
    if problems:
        raise ValidationFailed(problems)


def _ensure_known_roles(
    offers: Sequence[Offer], context: OfferContext, field: str = "authorizations"
) -> None:
    access.ensure_known_roles(
        [(f"{field}.{index}.roles", offer.roles) for index, offer in enumerate(offers)],
        context.roles,
    )


def judge_offers(
    offers: Sequence[Offer],
    context: OfferContext,
    before: Mapping[UUID, Offer] | None = None,
) -> list[ItemError]:
    """Only tenants at or below the context, only the tree's roles, and nobody offers a role
    whose permissions they do not hold on that tenant (and, for include_descendants, below
    it): accepting an invitation must never give more than its author could grant. An edit
    (before) is judged on what it adds, so roles can be taken off by anyone who may edit.
    Refusals are named by tenant id."""
    errors: list[ItemError] = []
    for offer in offers:
        try:
            if offer.tenant_id not in context.reachable_tenants:
                raise NotFound(f"no account {offer.tenant_id} here")
            earlier = (before or {}).get(offer.tenant_id)
            access.ensure_grantable(
                context.caller_standing.get(offer.tenant_id, access.NO_STANDING),
                offer.as_grant(),
                earlier.as_grant() if earlier is not None else None,
                context.roles,
            )
        except DomainError as refusal:
            errors.append(ItemError(offer.tenant_id, refusal))
    return errors


# --- inviting -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InviteFacts:
    """What the database knows about the invited emails.

    members: email key -> user id, for emails of users who belong to this tree.
    current: those members' existing grants on the offered tenants.
    open_invitations: stored-pending invitations made in the context, by email key.
    """

    members: Mapping[str, UUID]
    current: Mapping[tuple[UUID, UUID], Grant]
    open_invitations: Mapping[str, Invitation]


@dataclass(frozen=True, slots=True, kw_only=True)
class InvitePlan:
    invite: list[str]
    granted: list[tuple[str, UUID]]
    grant_changes: list[GrantChange]
    expire: list[Invitation]


def check_emails(emails: Sequence[str]) -> None:
    """The same address twice (in any case) is one person: say so rather than guess."""
    problems: list[FieldError] = []
    if not 1 <= len(emails) <= MAX_EMAILS:
        problems.append(FieldError("emails", "out_of_range", f"1-{MAX_EMAILS} addresses"))
    seen: set[str] = set()
    for index, email in enumerate(emails):
        key = email_key(email)
        if key in seen:
            problems.append(FieldError(f"emails.{index}", "duplicate", "this address twice"))
        seen.add(key)
    if problems:
        raise ValidationFailed(problems)


def plan_invitations(
    emails: Sequence[str],
    offers: Sequence[Offer],
    context: OfferContext,
    facts: InviteFacts,
    now: datetime,
) -> InvitePlan:
    """Invite several emails to the same offers at once (seed 001). An email that already
    belongs to a user of this tree is granted at once, with no invitation and no email
    (seed 003); inviting never removes access, so their roles become the union of what they
    had and what is offered. Nobody invites themself (they would change their own access),
    and an email with a pending invitation in this tenant is refused: resend that one. A
    pending invitation that has expired is closed so a new one can take its place. All
    refusals are reported together, by email or tenant id, and nothing happens (atomic)."""
    check_emails(emails)
    check_offer_shape(offers, now=now)
    _ensure_known_roles(offers, context)
    errors = judge_offers(offers, context)
    own = email_key(context.caller.email)
    invite: list[str] = []
    granted: list[tuple[str, UUID]] = []
    changes: list[GrantChange] = []
    expire: list[Invitation] = []
    for email in emails:
        key = email_key(email)
        if key == own:
            errors.append(ItemError(email, CannotChangeOwnAccess("you cannot invite yourself")))
            continue
        member = facts.members.get(key)
        if member is not None:
            granted.append((email, member))
            changes += union_changes(member, offers, facts.current, now)
            continue
        existing = facts.open_invitations.get(key)
        if existing is not None:
            if existing.status_at(now) is InvitationStatus.PENDING:
                errors.append(
                    ItemError(
                        email,
                        InvitationExists(
                            f"{email} already has a pending invitation here ({existing.id}); "
                            "resend it instead"
                        ),
                    )
                )
                continue
            expire.append(existing)
        invite.append(email)
    raise_if_any(errors)
    return InvitePlan(invite=invite, granted=granted, grant_changes=changes, expire=expire)


def union_changes(
    user_id: UUID,
    offers: Iterable[Offer],
    current: Mapping[tuple[UUID, UUID], Grant],
    now: datetime,
) -> list[GrantChange]:
    """Offered roles are added to what the user holds on each tenant, never replacing it; an
    offer reaching below its tenant widens the grant, a narrower one does not narrow it. An
    offer gives lasting access unless it carries an expiry; an offer with one gives
    time-limited access, and the grant it widens ends at the earlier of the two ends (a
    temporary offer never makes access lasting); a grant that had already ended counts as
    none, and an offer of nothing new leaves a grant as it is."""
    changes: list[GrantChange] = []
    for offer in offers:
        before = current.get((user_id, offer.tenant_id))
        live = before if before is not None and before.live(now) else None
        if (
            live is not None
            and offer.roles <= live.roles
            and (live.include_descendants or not offer.include_descendants)
        ):
            continue  # nothing new offered: what they hold stays as it is, end date included
        after = Grant(
            user_id=user_id,
            tenant_id=offer.tenant_id,
            roles=offer.roles | (live.roles if live else frozenset()),
            include_descendants=offer.include_descendants
            or (live.include_descendants if live else False),
            expires_at=(
                offer.expires_at
                if offer.expires_at is None or live is None
                else _earlier(offer.expires_at, live.expires_at)
            ),
        )
        if before is not None and (
            before.roles,
            before.include_descendants,
            before.expires_at,
        ) == (after.roles, after.include_descendants, after.expires_at):
            continue
        changes.append(GrantChange(before=before, after=after))
    return changes


def _earlier(one: datetime, other: datetime | None) -> datetime:
    """The earlier of two ends (None: never)."""
    return one if other is None else min(one, other)


# --- editing, resending, revoking ---------------------------------------------------------


def offers_changes(before: Sequence[Offer], after: Sequence[Offer]) -> Changes:
    return {"authorizations": {"before": _plain_offers(before), "after": _plain_offers(after)}}


def _plain_offers(offers: Sequence[Offer]) -> list[dict[str, object]]:
    return [
        {
            "tenant_id": str(offer.tenant_id),
            "roles": sorted(offer.roles),
            "include_descendants": offer.include_descendants,
            **({"expires_at": offer.expires_at.isoformat()} if offer.expires_at else {}),
        }
        for offer in _sorted(offers)
    ]


def created_changes(invitation: Invitation) -> Changes:
    """An invitation's creation as audit values (never its token)."""
    return {
        "email": {"before": None, "after": invitation.email},
        "expires_at": {"before": None, "after": invitation.expires_at.isoformat()},
        **offers_changes((), invitation.offers),
    }


def check_edit_request(invitation: Invitation, *, email: str | None, offers_given: bool) -> None:
    """The email is fixed (422 email_immutable, whatever else the body holds); an edit that
    keeps the email must say the new offers."""
    if email is not None and email_key(email) != invitation.email_key:
        raise EmailImmutable(
            "an invitation's email cannot be changed; delete it and invite the right address"
        )
    if not offers_given:
        raise ValidationFailed(
            [FieldError("authorizations", "missing", "the offers that replace the current ones")]
        )


def edit(
    invitation: Invitation,
    offers: Sequence[Offer],
    context: OfferContext,
    now: datetime,
    *,
    email: str | None = None,
) -> tuple[Invitation, Changes]:
    """A pending invitation's offers can be replaced (seed 001: "edit the role of an invited
    user"); its email cannot: a wrong address is deleted and invited again. Sending the email
    back unchanged is harmless."""
    check_edit_request(invitation, email=email, offers_given=True)
    if invitation.status_at(now) is not InvitationStatus.PENDING:
        raise InvitationNotPending()
    check_offer_shape(offers, now=now)
    _ensure_known_roles(offers, context)
    raise_if_any(judge_offers(offers, context, before={o.tenant_id: o for o in invitation.offers}))
    after = _sorted(offers)
    if after == invitation.offers:
        return invitation, {}
    return replace(invitation, offers=after, updated_at=now), offers_changes(
        invitation.offers, after
    )


def unique(ids: Iterable[UUID]) -> list[UUID]:
    """Bulk lists are sets in intent: a repeated id is one item."""
    return list(dict.fromkeys(ids))


def plan_resend(
    ids: Sequence[UUID],
    found: Mapping[UUID, Invitation],
    pending_elsewhere: Mapping[str, UUID],
    now: datetime,
) -> list[Invitation]:
    """Resend (seed 001): a new link, the old one dead, a new expiry from now. It revives an
    expired invitation (the usual reason to resend), unless a newer pending one for the same
    email exists here (pending_elsewhere: email key -> that invitation's id). Accepted and
    revoked invitations are closed for good. Atomic over the ids."""
    errors: list[ItemError] = []
    resent: list[Invitation] = []
    for invitation_id in unique(ids):
        invitation = found.get(invitation_id)
        if invitation is None:
            errors.append(ItemError(invitation_id, NotFound(f"no invitation {invitation_id} here")))
            continue
        if invitation.status in (InvitationStatus.ACCEPTED, InvitationStatus.REVOKED):
            errors.append(ItemError(invitation_id, InvitationNotPending()))
            continue
        other = pending_elsewhere.get(invitation.email_key)
        if other is not None and other != invitation.id:
            errors.append(
                ItemError(
                    invitation_id,
                    InvitationExists(
                        f"{invitation.email} has a newer pending invitation here ({other})"
                    ),
                )
            )
            continue
        resent.append(
            replace(
                invitation,
                status=InvitationStatus.PENDING,
                expires_at=now + timedelta(days=invitation.expires_in_days),
                updated_at=now,
                sent_count=invitation.sent_count + 1,
                last_sent_at=now,
            )
        )
    raise_if_any(errors)
    return resent


def resent_changes(before: Invitation, after: Invitation, now: datetime) -> Changes:
    """A resend as audit before/after values: pending again, a new expiry, one more send."""
    return {
        "status": {"before": before.status_at(now).value, "after": "pending"},
        "expires_at": {
            "before": before.expires_at.isoformat(),
            "after": after.expires_at.isoformat(),
        },
        "sent_count": {"before": before.sent_count, "after": after.sent_count},
    }


def revoked_changes(before: Invitation, now: datetime) -> Changes:
    return {"status": {"before": before.status_at(now).value, "after": "revoked"}}


def accepted_changes(user_id: UUID) -> Changes:
    return {
        "status": {"before": "pending", "after": "accepted"},
        "accepted_user_id": {"before": None, "after": str(user_id)},
    }


def plan_revoke(
    ids: Sequence[UUID], found: Mapping[UUID, Invitation], now: datetime
) -> list[tuple[Invitation, Invitation]]:
    """Delete (seed 001): the invitation is revoked and its link dies. An accepted invitation
    is history and stays; one already revoked is left as it is (a retry is harmless).
    Returns (before, after) of those that change. Atomic over the ids."""
    errors: list[ItemError] = []
    changes: list[tuple[Invitation, Invitation]] = []
    for invitation_id in unique(ids):
        invitation = found.get(invitation_id)
        if invitation is None:
            errors.append(ItemError(invitation_id, NotFound(f"no invitation {invitation_id} here")))
        elif invitation.status is InvitationStatus.ACCEPTED:
            errors.append(ItemError(invitation_id, InvitationNotPending()))
        elif invitation.status is not InvitationStatus.REVOKED:
            changes.append(
                (
                    invitation,
                    replace(
                        invitation,
                        status=InvitationStatus.REVOKED,
                        revoked_at=now,
                        updated_at=now,
                    ),
                )
            )
    raise_if_any(errors)
    return changes


# --- accepting ----------------------------------------------------------------------------


def ensure_acceptable(invitation: Invitation | None, now: datetime) -> Invitation:
    """Unknown, used, revoked and expired links get one and the same answer, so a link tells
    nothing about the invitation it was."""
    if invitation is None or invitation.status_at(now) is not InvitationStatus.PENDING:
        raise InvalidToken()
    return invitation


PROFILE_FIELDS = ("first_name", "last_name", "phone")


def check_existing_account_answer(fields: Mapping[str, object]) -> None:
    """An email that already has an account proves it with that account's password; a new
    profile would be silently dropped, so it is refused rather than ignored."""
    present = [name for name in PROFILE_FIELDS if fields.get(name) is not None]
    if present:
        raise ValidationFailed(
            [
                FieldError(
                    name,
                    "not_allowed",
                    "this email already has an account: send only token and its password",
                )
                for name in present
            ]
        )


def new_invitee(
    invitation: Invitation,
    *,
    id: UUID,
    first_name: str | None,
    last_name: str | None,
    phone: str | None,
    password: str,
    now: datetime,
    min_password_length: int = PASSWORD_MIN_LENGTH,
) -> User:
    """A person with no account yet becomes a user by accepting: their names, optional phone,
    and a password that passes the password rules (and the security policies where they are
    being given access); every problem is reported at once."""
    problems: list[FieldError] = []
    user: User | None = None
    try:
        user = new_user(
            id=id,
            email=invitation.email,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
            now=now,
        )
    except ValidationFailed as refusal:
        problems += refusal.errors
    try:
        check_password(password, email=invitation.email, min_length=min_password_length)
    except ValidationFailed as refusal:
        problems += refusal.errors
    if problems or user is None:
        raise ValidationFailed(problems)
    return user
