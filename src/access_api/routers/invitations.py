"""Invitations (seeds 001, 003): invite, list, edit, resend, delete; preview and accept a link."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from fastapi import Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, Field

from access_api.dependencies import (
    Access,
    Audit,
    Invitations,
    Locked,
    Now,
    Outbox,
    SecondFactors,
    Sessions,
    State,
    Tenants,
    Throttling,
    Users,
    Work,
    after_commit,
    client_ip,
    requires,
)
from access_api.domain import access, invitations, throttle
from access_api.domain import errors as e
from access_api.domain.audit import Actor, ActorKind, created
from access_api.domain.invitations import (
    Invitation,
    InvitationStatus,
    InviteFacts,
    Offer,
    OfferContext,
)
from access_api.domain.mail import accept_invitation_link, invitation_mail
from access_api.domain.permissions import Permission
from access_api.domain.tenants import Tenant
from access_api.domain.users import PASSWORD_MAX_LENGTH, email_key
from access_api.errors import problem_responses
from access_api.ids import new_id
from access_api.repositories.invitations import InvitationRepository, Invited
from access_api.repositories.outbox import QueuedMail
from access_api.routers.auth import Token
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    IdList,
    Limit,
    ListPage,
    api_router,
    check_if_match,
    page_of,
    split_sort,
    with_etag,
)
from access_api.services.keyring import new_token
from access_api.services.throttle import Throttle
from access_api.state import AppState
from access_api.use_cases import auth as auth_cases

router = api_router(prefix="/v1/tenants", tags=["invitations"], responses=SCOPED_PROBLEMS)
public_router = api_router(prefix="/v1/invitations", tags=["invitations"])

ReadInvitations = Annotated[access.Scope, requires(Permission.INVITATIONS_READ)]
WriteInvitations = Annotated[access.Scope, requires(Permission.INVITATIONS_WRITE)]

INVITATION_PREFIX = "inv"
TOKEN_MAX_LENGTH = 256


# --- models -------------------------------------------------------------------------------


class OfferIn(Body):
    tenant_id: UUID | None = Field(
        default=None,
        description="An account at or below the context; defaults to the context itself "
        "(from a client's dashboard, the grant is on that client)",
    )
    roles: list[str] = Field(min_length=1, max_length=access.MAX_ROLES_PER_GRANT)
    include_descendants: bool = Field(
        default=False, description="Also every account below it, present and future"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="The granted access ends then (future only); null: lasting"
    )


class InviteRequest(Body):
    emails: list[str] = Field(min_length=1, max_length=invitations.MAX_EMAILS)
    authorizations: list[OfferIn] = Field(min_length=1, max_length=invitations.MAX_OFFERS)
    expires_in_days: int = Field(
        default=invitations.EXPIRES_IN_DAYS_DEFAULT,
        ge=invitations.EXPIRES_IN_DAYS_MIN,
        le=invitations.EXPIRES_IN_DAYS_MAX,
    )


class InvitationPatch(Body):
    authorizations: list[OfferIn] = Field(min_length=1, max_length=invitations.MAX_OFFERS)
    email: str | None = Field(
        default=None, description="Fixed at creation: only the current value is accepted"
    )


class OfferOut(BaseModel):
    tenant_id: UUID
    roles: list[str]
    include_descendants: bool
    expires_at: datetime | None = None


class InvitationOut(BaseModel):
    id: UUID
    email: str
    status: InvitationStatus = Field(description="expired once pending past expires_at")
    tenant_id: UUID = Field(description="The account the invitation was made in")
    authorizations: list[OfferOut]
    invited_by: UUID | None
    expires_in_days: int
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    sent_count: int
    last_sent_at: datetime | None
    accepted_at: datetime | None
    accepted_user_id: UUID | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, invitation: Invitation, now: datetime) -> InvitationOut:
        return cls(
            id=invitation.id,
            email=invitation.email,
            status=invitation.status_at(now),
            tenant_id=invitation.tenant_id,
            authorizations=[
                OfferOut(
                    tenant_id=offer.tenant_id,
                    roles=sorted(offer.roles),
                    include_descendants=offer.include_descendants,
                    expires_at=offer.expires_at,
                )
                for offer in invitation.offers
            ],
            invited_by=invitation.invited_by,
            expires_in_days=invitation.expires_in_days,
            expires_at=invitation.expires_at,
            created_at=invitation.created_at,
            updated_at=invitation.updated_at,
            sent_count=invitation.sent_count,
            last_sent_at=invitation.last_sent_at,
            accepted_at=invitation.accepted_at,
            accepted_user_id=invitation.accepted_user_id,
            revoked_at=invitation.revoked_at,
        )


class InviteOutcome(BaseModel):
    email: str
    outcome: Literal["invited", "granted"] = Field(
        description="invited: an invitation was emailed; granted: the email belongs to a user "
        "of this organization, who got the roles at once, with no email (seed 003)"
    )
    invitation: InvitationOut | None = None
    user_id: UUID | None = None


class InviteResult(BaseModel):
    items: list[InviteOutcome]


class InvitationItems(BaseModel):
    items: list[InvitationOut]


class PreviewTenant(BaseModel):
    id: UUID
    name: str


class PreviewInviter(BaseModel):
    first_name: str
    last_name: str
    email: str


class InvitationPreview(BaseModel):
    email: str
    tenant: PreviewTenant = Field(description="The account that invites")
    invited_by: PreviewInviter | None
    expires_at: datetime
    existing_account: bool = Field(
        description="true: accept with {token, password} of that account; false: with "
        "{token, first_name, last_name, password, phone?}"
    )


class AcceptRequest(Body):
    token: str = Field(min_length=1, max_length=TOKEN_MAX_LENGTH)
    otp: str | None = Field(
        default=None,
        max_length=64,
        description="For an existing account with two-factor on, when otp_required",
    )
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    phone: str | None = Field(default=None, max_length=40)


InvitationSort = Literal[
    "created_at", "-created_at", "email", "-email", "expires_at", "-expires_at"
]  # fmt: skip


# --- helpers ------------------------------------------------------------------------------


def _normalized_emails(emails: list[str]) -> list[str]:
    problems: list[e.FieldError] = []
    normalized: list[str] = []
    for index, email in enumerate(emails):
        try:
            normalized.append(validate_email(email, check_deliverability=False).normalized)
        except EmailNotValidError as error:
            problems.append(e.FieldError(f"emails.{index}", "invalid_email", str(error)))
    if problems:
        raise e.ValidationFailed(problems)
    return normalized


def _offers(items: list[OfferIn], scope: access.Scope) -> list[Offer]:
    return [
        Offer(
            tenant_id=item.tenant_id or scope.tenant.id,
            roles=frozenset(item.roles),
            include_descendants=item.include_descendants,
            expires_at=item.expires_at,
        )
        for item in items
    ]


async def _offer_context(
    scope: access.Scope, offers: list[Offer], tenants: Tenants, grants: Access, now: datetime
) -> OfferContext:
    """Where the caller may offer access (at or below the context) and what they hold there."""
    tenant_ids = {offer.tenant_id for offer in offers}
    roles = await grants.roles(scope.tenant.root_id)
    held = await grants.held_on(scope.caller.user_id, tenant_ids)
    return OfferContext(
        caller=scope.caller,
        reachable_tenants=await tenants.at_or_below(scope.tenant.id, tenant_ids),
        caller_standing={
            tenant_id: access.standing(held[tenant_id], roles, now, scope.caller.permission_limit)
            for tenant_id in tenant_ids
        },
        roles=roles,
    )


async def _mail_for(
    invitation: Invitation, token: str, tenant: Tenant, state: AppState, users: Users
) -> QueuedMail:
    inviter = await users.get(invitation.invited_by) if invitation.invited_by else None
    mail = invitation_mail(
        recipient=invitation.email,
        tenant_name=tenant.name,
        inviter_name=f"{inviter.first_name} {inviter.last_name}" if inviter else None,
        inviter_email=inviter.email if inviter else None,
        accept_link=accept_invitation_link(state.settings.public_url, token),
        expires_at=invitation.expires_at,
    )
    return state.dispatcher.letters.queued(mail, invitation.updated_at)


async def _invited(
    token: str,
    request: Request,
    state: AppState,
    repo: InvitationRepository,
    throttling: Throttle,
    now: datetime,
) -> tuple[Invited, Invitation]:
    """The invitation behind a link, if it can still be accepted. Every failure reads the
    same (invalid_token) and counts against the client's address: links are not guessable,
    but an address trying many is refused for a while."""
    address = (throttle.TOKEN_ADDRESS, client_ip(request) or "unknown")
    await throttling.check(address)
    invited = await repo.by_digest(state.keyring.digest(token))
    try:
        if invited is None:
            raise e.InvalidToken()
        return invited, invitations.ensure_acceptable(invited.invitation, now)
    except e.InvalidToken:
        throttling.failed(address)
        raise


async def _found(
    repo: InvitationRepository, scope: access.Scope, invitation_id: UUID, *, lock: bool = False
) -> Invitation:
    found = await repo.made_in(scope.tenant.id, [invitation_id], for_update=lock)
    if invitation_id not in found:
        raise e.NotFound(f"no invitation {invitation_id} here")
    return found[invitation_id]


# --- tenant-scoped routes -----------------------------------------------------------------


@router.get("/{tenant_id}/invitations", summary="List the invitations made in this account")
async def list_invitations(
    scope: ReadInvitations,
    repo: Invitations,
    state: State,
    now: Now,
    status_: Annotated[InvitationStatus | None, Query(alias="status")] = None,
    q: Annotated[str | None, Query(max_length=320, description="Part of the email")] = None,
    sort: InvitationSort = "-created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[InvitationOut]:
    field, descending = split_sort(sort)
    page = await repo.list_made_in(
        scope.tenant.id,
        status=status_,
        q=q,
        now=now,
        sort=field,
        descending=descending,
        after=state.cursors.decode(cursor, sort),
        limit=limit,
    )
    return page_of(page, lambda invitation: InvitationOut.of(invitation, now), state.cursors, sort)


@router.post(
    "/{tenant_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    summary="Invite emails; users of this organization are granted the roles at once",
    responses=problem_responses(
        e.InvitationExists, e.PrivilegeEscalation, e.CannotChangeOwnAccess, e.BulkRefused
    ),
)
async def invite(
    body: InviteRequest,
    scope: WriteInvitations,
    locked: Locked,
    request: Request,
    state: State,
    repo: Invitations,
    outbox: Outbox,
    tenants: Tenants,
    grants: Access,
    users: Users,
    audit: Audit,
    now: Now,
) -> InviteResult:
    emails = _normalized_emails(body.emails)
    offers = _offers(body.authorizations, scope)
    invitations.check_emails(emails)
    invitations.check_offer_shape(offers)
    scope = await locked(scope, Permission.INVITATIONS_WRITE)
    root_id = scope.tenant.root_id
    context = await _offer_context(scope, offers, tenants, grants, now)
    accounts = await repo.user_ids_by_email(emails)
    members = await grants.members_among(root_id, accounts.values())
    member_ids = {key: user_id for key, user_id in accounts.items() if user_id in members}
    plan = invitations.plan_invitations(
        emails,
        offers,
        context,
        InviteFacts(
            members=member_ids,
            current=await grants.grants(
                (user_id, offer.tenant_id) for user_id in member_ids.values() for offer in offers
            ),
            open_invitations=await repo.open_for(scope.tenant.id, emails),
        ),
        now,
    )
    await repo.close_expired([invitation.id for invitation in plan.expire], now)
    made: list[tuple[Invitation, str]] = []
    mails: list[QueuedMail] = []
    for email in plan.invite:
        invitation = invitations.new_invitation(
            id=new_id(),
            root_id=root_id,
            tenant_id=scope.tenant.id,
            email=email,
            invited_by=scope.caller.user_id,
            offers=offers,
            expires_in_days=body.expires_in_days,
            now=now,
        )
        token = new_token(INVITATION_PREFIX)
        made.append((invitation, state.keyring.digest(token)))
        mails.append(await _mail_for(invitation, token, scope.tenant, state, users))
    await repo.insert(made, context.roles)
    await outbox.add(mails)
    await grants.apply(plan.grant_changes, root_id=root_id, roles_by_key=context.roles, now=now)
    for invitation, _ in made:
        await audit.record(
            scope.caller.actor,
            "invitation.created",
            tenant=scope.tenant,
            target_type="invitation",
            target_id=invitation.id,
            changes=invitations.created_changes(invitation),
        )
    for change in plan.grant_changes:
        await audit.record(
            scope.caller.actor,
            "authorization.granted",
            tenant=scope.tenant,
            target_type="user",
            target_id=change.user_id,
            changes=access.grant_changes(change),
        )
    if mails:
        after_commit(request, state.dispatcher.wake)
    by_email = {invitation.email: invitation for invitation, _ in made}
    granted = dict(plan.granted)
    return InviteResult(
        items=[
            InviteOutcome(email=email, outcome="granted", user_id=granted[email])
            if email in granted
            else InviteOutcome(
                email=email,
                outcome="invited",
                invitation=InvitationOut.of(by_email[email], now),
            )
            for email in emails
        ]
    )


@router.get("/{tenant_id}/invitations/{invitation_id}", summary="Get an invitation")
async def get_invitation(
    invitation_id: UUID, scope: ReadInvitations, repo: Invitations, response: Response, now: Now
) -> InvitationOut:
    out = InvitationOut.of(await _found(repo, scope, invitation_id), now)
    with_etag(response, out)
    return out


@router.patch(
    "/{tenant_id}/invitations/{invitation_id}",
    summary="Change a pending invitation's authorizations (its email is fixed)",
    responses=problem_responses(
        e.InvitationNotPending, e.EmailImmutable, e.PrivilegeEscalation, e.PreconditionFailed
    ),
)
async def edit_invitation(
    invitation_id: UUID,
    body: InvitationPatch,
    scope: WriteInvitations,
    request: Request,
    response: Response,
    repo: Invitations,
    tenants: Tenants,
    grants: Access,
    audit: Audit,
    now: Now,
) -> InvitationOut:
    current = await _found(repo, scope, invitation_id, lock=True)
    check_if_match(request, InvitationOut.of(current, now))
    offers = _offers(body.authorizations, scope)
    context = await _offer_context(scope, offers, tenants, grants, now)
    updated, changes = invitations.edit(current, offers, context, now, email=body.email)
    if changes:
        await repo.replace_offers(updated, context.roles)
        await audit.record(
            scope.caller.actor,
            "invitation.updated",
            tenant=scope.tenant,
            target_type="invitation",
            target_id=updated.id,
            changes=changes,
        )
    out = InvitationOut.of(updated, now)
    with_etag(response, out)
    return out


@router.post(
    "/{tenant_id}/invitations/resend",
    summary="Resend invitations: a new link each (the old one dies) and a new expiry",
    responses=problem_responses(e.InvitationNotPending, e.InvitationExists, e.BulkRefused),
)
async def resend_invitations(
    body: IdList,
    scope: WriteInvitations,
    request: Request,
    state: State,
    repo: Invitations,
    outbox: Outbox,
    tenants: Tenants,
    users: Users,
    audit: Audit,
    now: Now,
) -> InvitationItems:
    # The tree lock orders a revival against a new invitation for the same email.
    await tenants.lock_tree(scope.tenant.root_id)
    found = await repo.made_in(scope.tenant.id, body.ids, for_update=True)
    pending = await repo.open_for(scope.tenant.id, [i.email for i in found.values()])
    resent = invitations.plan_resend(
        body.ids, found, {key: other.id for key, other in pending.items()}, now
    )
    mails: list[QueuedMail] = []
    for invitation in resent:
        token = new_token(INVITATION_PREFIX)
        await repo.resend(invitation, state.keyring.digest(token))
        mails.append(await _mail_for(invitation, token, scope.tenant, state, users))
        before = found[invitation.id]
        await audit.record(
            scope.caller.actor,
            "invitation.resent",
            tenant=scope.tenant,
            target_type="invitation",
            target_id=invitation.id,
            changes={
                "status": {"before": before.status_at(now).value, "after": "pending"},
                "expires_at": {
                    "before": before.expires_at.isoformat(),
                    "after": invitation.expires_at.isoformat(),
                },
                "sent_count": {"before": before.sent_count, "after": invitation.sent_count},
            },
        )
    await outbox.add(mails)
    after_commit(request, state.dispatcher.wake)
    return InvitationItems(items=[InvitationOut.of(invitation, now) for invitation in resent])


@router.post(
    "/{tenant_id}/invitations/delete",
    summary="Delete (revoke) invitations: their links stop working at once",
    responses=problem_responses(e.InvitationNotPending, e.BulkRefused),
)
async def delete_invitations(
    body: IdList, scope: WriteInvitations, repo: Invitations, audit: Audit, now: Now
) -> InvitationItems:
    found = await repo.made_in(scope.tenant.id, body.ids, for_update=True)
    changes = invitations.plan_revoke(body.ids, found, now)
    for before, after in changes:
        await repo.revoke(after)
        await audit.record(
            scope.caller.actor,
            "invitation.revoked",
            tenant=scope.tenant,
            target_type="invitation",
            target_id=after.id,
            changes={"status": {"before": before.status_at(now).value, "after": "revoked"}},
        )
    current = found | {after.id: after for _, after in changes}
    return InvitationItems(
        items=[InvitationOut.of(current[i], now) for i in invitations.unique(body.ids)]
    )


# --- the invitee's side (public: the token is the credential) -----------------------------


@public_router.get(
    "/preview",
    summary="What an invitation link offers, before accepting it",
    responses=problem_responses(e.InvalidToken, e.ValidationFailed),
)
async def preview_invitation(
    token: Annotated[str, Query(min_length=1, max_length=TOKEN_MAX_LENGTH)],
    request: Request,
    state: State,
    repo: Invitations,
    throttling: Throttling,
    now: Now,
) -> InvitationPreview:
    invited, invitation = await _invited(token, request, state, repo, throttling, now)
    accounts = await repo.user_ids_by_email([invitation.email])
    inviter = invited.inviter
    return InvitationPreview(
        email=invitation.email,
        tenant=PreviewTenant(id=invitation.tenant_id, name=invited.tenant_name),
        invited_by=PreviewInviter(
            first_name=inviter.first_name, last_name=inviter.last_name, email=inviter.email
        )
        if inviter
        else None,
        expires_at=invitation.expires_at,
        existing_account=email_key(invitation.email) in accounts,
    )


@public_router.post(
    "/accept",
    status_code=status.HTTP_201_CREATED,
    summary="Accept an invitation: become a user (or prove an existing account), get the "
    "offered roles, and a session",
    description="A new person sends token, first_name, last_name, password (and phone). An "
    "email that already has an account sends only token and that account's password. The "
    "answer is a session, as from login (201: a session was created).",
    responses=problem_responses(
        e.InvalidToken,
        e.InvalidCredentials,
        e.OtpRequired,
        e.RateLimited,
        e.ValidationFailed,
        e.Conflict,
    ),
)
async def accept_invitation(
    body: AcceptRequest,
    request: Request,
    state: State,
    throttling: Throttling,
    second_factor: SecondFactors,
    repo: Invitations,
    tenants: Tenants,
    grants: Access,
    users: Users,
    sessions: Sessions,
    audit: Audit,
    work: Work,
    now: Now,
) -> Token:
    digest = state.keyring.digest(body.token)
    _, invitation = await _invited(body.token, request, state, repo, throttling, now)
    found = await users.by_email(invitation.email)
    password_hash: str | None = None
    if found is not None:
        invitations.check_existing_account_answer(body.model_dump(exclude={"otp"}))
        user, stored = found
        account = (throttle.LOGIN_ACCOUNT, email_key(user.email))
        await throttling.check(account)
        if not await state.passwords.verify(body.password, stored):
            throttling.failed(account)
            raise e.InvalidCredentials("the password does not match the account of this email")
        # Accepting logs the account in: it asks for the same second factor login does.
        await second_factor.check(user, body.otp, account)
    else:
        user = invitations.new_invitee(
            invitation,
            id=new_id(),
            first_name=body.first_name,
            last_name=body.last_name,
            phone=body.phone,
            password=body.password,
            now=now,
        )
        password_hash = await state.passwords.hash(body.password)
    root_id = invitation.root_id
    # Hashing is done: only now take the locks, tree first (as every access change does).
    await tenants.lock_tree(root_id)
    if not await repo.claim(invitation.id, digest, now):
        raise e.InvalidToken()
    if password_hash is not None and not await repo.insert_user_once(user, password_hash):
        raise e.Conflict(
            "an account for this email was created a moment ago; accept again with its password"
        )
    await repo.set_accepted_user(invitation.id, user.id)
    # Read the offers after the claim: an edit committed just before it is what was accepted.
    offers = (await repo.made_in(invitation.tenant_id, [invitation.id]))[invitation.id].offers
    await grants.add_member(root_id, user.id, now)
    changes = invitations.union_changes(
        user.id, offers, await grants.grants((user.id, o.tenant_id) for o in offers), now
    )
    await grants.apply(changes, root_id=root_id, roles_by_key=await grants.roles(root_id), now=now)
    tenant = await tenants.get(invitation.tenant_id)
    actor = Actor(user_id=user.id, kind=ActorKind.SESSION)
    if password_hash is not None:
        await audit.record(
            actor,
            "user.created",
            tenant=tenant,
            target_type="user",
            target_id=user.id,
            changes=created(user, ("email", "first_name", "last_name", "phone")),
        )
    await audit.record(
        actor,
        "invitation.accepted",
        tenant=tenant,
        target_type="invitation",
        target_id=invitation.id,
        changes={
            "status": {"before": "pending", "after": "accepted"},
            "accepted_user_id": {"before": None, "after": str(user.id)},
        },
    )
    for change in changes:
        await audit.record(
            actor,
            "authorization.granted",
            tenant=tenant,
            target_type="user",
            target_id=user.id,
            changes=access.grant_changes(change),
        )
    return Token.of(await auth_cases.start_session(work, user))
