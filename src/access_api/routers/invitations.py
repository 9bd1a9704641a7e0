"""Invitations (seeds 001, 003): invite, list, edit, resend, delete; preview and accept a link."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, Field

from access_api.dependencies import State, Work, requires
from access_api.domain import access, invitations, users
from access_api.domain import errors as e
from access_api.domain.invitations import Invitation, InvitationStatus
from access_api.domain.permissions import Permission
from access_api.domain.users import PASSWORD_MAX_LENGTH
from access_api.errors import problem_responses
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    IdList,
    Limit,
    ListPage,
    Phone,
    Token,
    api_router,
    check_if_match,
    page_of,
    split_sort,
    tagged,
)
from access_api.use_cases import invitations as invitation_cases
from access_api.use_cases.invitations import Acceptance, Outcome, Preview, Wanted

router = api_router(prefix="/v1/tenants", tags=["invitations"], responses=SCOPED_PROBLEMS)
public_router = api_router(prefix="/v1/invitations", tags=["invitations"])

ReadInvitations = Annotated[access.Scope, requires(Permission.INVITATIONS_READ)]
WriteInvitations = Annotated[access.Scope, requires(Permission.INVITATIONS_WRITE)]


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

    @staticmethod
    def wanted_or_none(items: list[OfferIn] | None) -> list[Wanted] | None:
        return None if items is None else OfferIn.wanted(items)

    @staticmethod
    def wanted(items: list[OfferIn]) -> list[Wanted]:
        return [
            Wanted(
                tenant_id=item.tenant_id,
                roles=tuple(item.roles),
                include_descendants=item.include_descendants,
                expires_at=item.expires_at,
            )
            for item in items
        ]


class InviteRequest(Body):
    emails: list[str] = Field(min_length=1, max_length=invitations.MAX_EMAILS)
    authorizations: list[OfferIn] = Field(min_length=1, max_length=invitations.MAX_OFFERS)
    expires_in_days: int = Field(
        default=invitations.EXPIRES_IN_DAYS_DEFAULT,
        ge=invitations.EXPIRES_IN_DAYS_MIN,
        le=invitations.EXPIRES_IN_DAYS_MAX,
    )


class InvitationPatch(Body):
    authorizations: list[OfferIn] | None = Field(
        default=None,
        min_length=1,
        max_length=invitations.MAX_OFFERS,
        description="Required: the offers that replace the current ones",
    )
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
        copied = {name: getattr(invitation, name) for name in _COPIED}
        return cls(
            **copied,
            status=invitation.status_at(now),
            authorizations=[
                OfferOut(
                    tenant_id=offer.tenant_id,
                    roles=sorted(offer.roles),
                    include_descendants=offer.include_descendants,
                    expires_at=offer.expires_at,
                )
                for offer in invitation.offers
            ],
        )


_COPIED = [name for name in InvitationOut.model_fields if name not in {"status", "authorizations"}]


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

    @classmethod
    def of(cls, outcomes: list[Outcome], now: datetime) -> InviteResult:
        return cls(
            items=[
                InviteOutcome(email=o.email, outcome="granted", user_id=o.user_id)
                if o.invitation is None
                else InviteOutcome(
                    email=o.email, outcome="invited", invitation=InvitationOut.of(o.invitation, now)
                )
                for o in outcomes
            ]
        )


class InvitationItems(BaseModel):
    items: list[InvitationOut]

    @classmethod
    def of(cls, found: list[Invitation], now: datetime) -> InvitationItems:
        return cls(items=[InvitationOut.of(invitation, now) for invitation in found])


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

    @classmethod
    def of(cls, preview: Preview) -> InvitationPreview:
        invitation, inviter = preview.invited.invitation, preview.invited.inviter
        return cls(
            email=invitation.email,
            tenant=PreviewTenant(id=invitation.tenant_id, name=preview.invited.tenant_name),
            invited_by=PreviewInviter(**asdict(inviter)) if inviter else None,
            expires_at=invitation.expires_at,
            existing_account=preview.existing_account,
        )


class AcceptRequest(Body):
    token: str = Field(min_length=1, max_length=invitations.TOKEN_MAX_LENGTH)
    otp: str | None = Field(
        default=None,
        max_length=invitations.OTP_MAX_LENGTH,
        description="For an existing account with two-factor on, when otp_required",
    )
    webauthn: dict[str, Any] | None = Field(
        default=None, description="A passkey's assertion, when otp_required offers webauthn"
    )
    first_name: str | None = Field(default=None, max_length=users.NAME_MAX_LENGTH)
    last_name: str | None = Field(default=None, max_length=users.NAME_MAX_LENGTH)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    phone: Phone | None = Field(default=None, max_length=users.PHONE_MAX_LENGTH)

    def answer(self) -> Acceptance:
        return Acceptance(**self.model_dump())


InvitationSort = Literal[
    "created_at", "-created_at", "email", "-email", "expires_at", "-expires_at"
]  # fmt: skip


# --- tenant-scoped routes -----------------------------------------------------------------


@router.get("/{tenant_id}/invitations", summary="List the invitations made in this account")
async def list_invitations(
    scope: ReadInvitations,
    work: Work,
    state: State,
    status_: Annotated[InvitationStatus | None, Query(alias="status")] = None,
    q: Annotated[
        str | None,
        Query(max_length=invitations.EMAIL_MAX_LENGTH, description="Part of the email"),
    ] = None,
    sort: InvitationSort = "-created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[InvitationOut]:
    field, descending = split_sort(sort)
    page = await invitation_cases.list_made_in(
        work,
        scope,
        status=status_,
        q=q,
        sort=field,
        descending=descending,
        after=state.cursors.decode(cursor, sort),
        limit=limit,
    )
    return page_of(page, lambda i: InvitationOut.of(i, work.now), state.cursors, sort)


@router.post(
    "/{tenant_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    summary="Invite emails; users of this organization are granted the roles at once",
    responses=problem_responses(
        e.InvitationExists, e.PrivilegeEscalation, e.CannotChangeOwnAccess, e.BulkRefused
    ),
)
async def invite(body: InviteRequest, scope: WriteInvitations, work: Work) -> InviteResult:
    outcomes = await invitation_cases.invite(
        work, scope, body.emails, OfferIn.wanted(body.authorizations), body.expires_in_days
    )
    return InviteResult.of(outcomes, work.now)


@router.get(
    "/{tenant_id}/invitations/{invitation_id}",
    summary="Get an invitation",
    response_model=InvitationOut,
)
async def get_invitation(invitation_id: UUID, scope: ReadInvitations, work: Work) -> Response:
    found = await invitation_cases.get(work, scope, invitation_id)
    return tagged(InvitationOut.of(found, work.now))


@router.patch(
    "/{tenant_id}/invitations/{invitation_id}",
    summary="Change a pending invitation's authorizations (its email is fixed)",
    responses=problem_responses(
        e.InvitationNotPending, e.EmailImmutable, e.PrivilegeEscalation, e.PreconditionFailed
    ),
    response_model=InvitationOut,
)
async def edit_invitation(
    invitation_id: UUID,
    body: InvitationPatch,
    scope: WriteInvitations,
    request: Request,
    work: Work,
) -> Response:
    updated = await invitation_cases.edit(
        work,
        scope,
        invitation_id,
        OfferIn.wanted_or_none(body.authorizations),
        email=body.email,
        expect=lambda current: check_if_match(request, InvitationOut.of(current, work.now)),
    )
    return tagged(InvitationOut.of(updated, work.now))


@router.post(
    "/{tenant_id}/invitations/resend",
    summary="Resend invitations: a new link each (the old one dies) and a new expiry",
    responses=problem_responses(e.InvitationNotPending, e.InvitationExists, e.BulkRefused),
)
async def resend_invitations(body: IdList, scope: WriteInvitations, work: Work) -> InvitationItems:
    return InvitationItems.of(await invitation_cases.resend(work, scope, body.ids), work.now)


@router.post(
    "/{tenant_id}/invitations/delete",
    summary="Delete (revoke) invitations: their links stop working at once",
    responses=problem_responses(e.InvitationNotPending, e.BulkRefused),
)
async def delete_invitations(body: IdList, scope: WriteInvitations, work: Work) -> InvitationItems:
    return InvitationItems.of(await invitation_cases.revoke(work, scope, body.ids), work.now)


# --- the invitee's side (public: the token is the credential) -----------------------------


class PreviewRequest(Body):
    token: str = Field(min_length=1, max_length=invitations.TOKEN_MAX_LENGTH)


@public_router.post(
    "/preview",
    summary="What an invitation link offers, before accepting it",
    description="The token goes in the body, where no access log keeps it.",
    responses=problem_responses(e.InvalidToken, e.ValidationFailed, e.RateLimited),
)
async def preview_invitation(body: PreviewRequest, work: Work) -> InvitationPreview:
    return InvitationPreview.of(await invitation_cases.preview(work, body.token))


@public_router.get(
    "/preview",
    summary="What an invitation link offers (deprecated: use POST, the token in the body)",
    description="Kept for one release: a token in a URL may be logged by any proxy on the way.",
    deprecated=True,
    responses=problem_responses(e.InvalidToken, e.ValidationFailed, e.RateLimited),
)
async def preview_invitation_by_query(
    token: Annotated[str, Query(min_length=1, max_length=invitations.TOKEN_MAX_LENGTH)],
    work: Work,
) -> InvitationPreview:
    return InvitationPreview.of(await invitation_cases.preview(work, token))


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
async def accept_invitation(body: AcceptRequest, work: Work) -> Token:
    return Token.of(await invitation_cases.accept(work, body.answer()))
