"""Two-factor resets (seeds 000, 003): an admin asks, the user confirms or denies by email."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, Request, status
from pydantic import BaseModel, Field

from access_api.dependencies import (
    Access,
    Audit,
    Now,
    Outbox,
    State,
    Throttling,
    TwoFactors,
    Users,
    after_commit,
    client_ip,
    requires,
)
from access_api.domain import errors as e
from access_api.domain import throttle, two_factor
from access_api.domain.access import Scope
from access_api.domain.audit import Actor, ActorKind
from access_api.domain.mail import link, two_factor_reset_mail
from access_api.domain.permissions import Permission
from access_api.domain.two_factor import Reset, ResetStatus
from access_api.domain.users import TwoFactor, User
from access_api.errors import problem_responses
from access_api.ids import new_id
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
    split_sort,
)
from access_api.services.keyring import new_token

router = api_router(prefix="/v1/tenants", tags=["two-factor"], responses=SCOPED_PROBLEMS)
public_router = api_router(prefix="/v1/two-factor-resets", tags=["two-factor"])

ResetTwoFactor = Annotated[Scope, requires(Permission.TWO_FACTOR_RESET)]

RESET_LINK_PREFIX = "tfr"
TOKEN_MAX_LENGTH = 256
CONFIRM_PATH = "/two-factor-reset/confirm"
DENY_PATH = "/two-factor-reset/deny"


class ResetUser(BaseModel):
    id: UUID
    email: str
    first_name: str
    last_name: str


class ResetOut(BaseModel):
    id: UUID
    user: ResetUser
    requested_by: UUID | None
    status: ResetStatus
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None

    @classmethod
    def of(cls, reset: Reset, user: User, now: datetime) -> ResetOut:
        return cls(
            id=reset.id,
            user=ResetUser(
                id=user.id, email=user.email, first_name=user.first_name, last_name=user.last_name
            ),
            requested_by=reset.requested_by,
            status=reset.status_at(now),
            created_at=reset.created_at,
            expires_at=reset.expires_at,
            decided_at=reset.decided_at,
        )


class ResetRequest(Body):
    user_ids: list[UUID] = Field(min_length=1, max_length=1000)


class ResetItems(BaseModel):
    items: list[ResetOut]


class ResetAnswer(Body):
    token: str = Field(min_length=1, max_length=TOKEN_MAX_LENGTH)


class ResetAnswered(BaseModel):
    status: ResetStatus
    two_factor: TwoFactor


@router.get(
    "/{tenant_id}/two-factor-resets",
    summary="Reset requests made in this account: pending, confirmed, denied, expired",
)
async def list_resets(
    scope: ResetTwoFactor,
    factors: TwoFactors,
    users: Users,
    state: State,
    now: Now,
    status_: Annotated[ResetStatus | None, Query(alias="status")] = None,
    sort: Literal["created_at", "-created_at"] = "-created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[ResetOut]:
    _, descending = split_sort(sort)
    page = await factors.list_made_in(
        scope.tenant.id,
        status=status_,
        now=now,
        descending=descending,
        after=state.cursors.decode(cursor, sort),
        limit=limit,
    )
    people = await users.get_many(reset.user_id for reset in page.items)
    return page_of(
        page, lambda reset: ResetOut.of(reset, people[reset.user_id], now), state.cursors, sort
    )


@router.post(
    "/{tenant_id}/two-factor-resets",
    status_code=status.HTTP_201_CREATED,
    summary="Ask users to confirm the reset of their authenticator (each gets an email)",
    responses=problem_responses(
        e.CannotResetOwnTwoFactor, e.UserOutsideScope, e.TwoFactorNotEnabled, e.BulkRefused
    ),
)
async def request_resets(
    body: ResetRequest,
    scope: ResetTwoFactor,
    request: Request,
    state: State,
    grants: Access,
    users: Users,
    factors: TwoFactors,
    outbox: Outbox,
    audit: Audit,
    now: Now,
) -> ResetItems:
    tenant = scope.tenant
    ids = list(dict.fromkeys(body.user_ids))
    visible = await users.get_many(await grants.visible_from(tenant.id, tenant.root_id, ids, now))
    targets = two_factor.plan_resets(
        scope.caller,
        tenant.id,
        ids,
        visible=visible,
        grant_chains={
            user_id: await grants.grant_chains(user_id, tenant.root_id, now) for user_id in visible
        },
    )
    await factors.withdraw_pending((user.id for user in targets), now)
    requester = await users.get(scope.caller.user_id)
    made: list[tuple[Reset, str, str]] = []
    for user in targets:
        reset = Reset(
            id=new_id(),
            root_id=tenant.root_id,
            tenant_id=tenant.id,
            user_id=user.id,
            requested_by=scope.caller.user_id,
            status=ResetStatus.PENDING,
            created_at=now,
            expires_at=now + two_factor.RESET_LIFETIME,
            decided_at=None,
        )
        confirm, deny = new_token(RESET_LINK_PREFIX), new_token(RESET_LINK_PREFIX)
        made.append((reset, state.keyring.digest(confirm), state.keyring.digest(deny)))
        mail = two_factor_reset_mail(
            recipient=user.email,
            tenant_name=tenant.name,
            requested_by=f"{requester.first_name} {requester.last_name}" if requester else None,
            confirm_link=link(state.settings.public_url, CONFIRM_PATH, confirm),
            deny_link=link(state.settings.public_url, DENY_PATH, deny),
            expires_at=reset.expires_at,
        )
        await outbox.add([state.dispatcher.letters.queued(mail, now)])
        await audit.record(
            scope.caller.actor,
            "two_factor.reset_requested",
            tenant=tenant,
            target_type="user",
            target_id=user.id,
            changes={"reset_id": {"before": None, "after": str(reset.id)}},
        )
    await factors.insert_resets(made)
    after_commit(request, state.dispatcher.wake)
    return ResetItems(
        items=[ResetOut.of(reset, visible[reset.user_id], now) for reset, _, _ in made]
    )


async def _answer(
    answer: Literal["confirm", "deny"],
    body: ResetAnswer,
    request: Request,
    state: State,
    factors: TwoFactors,
    users: Users,
    throttling: Throttling,
    audit: Audit,
    now: datetime,
) -> ResetAnswered:
    address = (throttle.TOKEN_ADDRESS, client_ip(request) or "unknown")
    await throttling.check(address)
    reset = await factors.answer(state.keyring.digest(body.token), answer, now)
    if reset is None:
        throttling.failed(address)
        raise e.InvalidToken()
    if answer == "confirm":
        await factors.clear_totp(reset.user_id, now)
    user = await users.get(reset.user_id)
    if user is None:
        raise e.InvalidToken()
    await audit.record(
        # The user answers through a link from their mailbox, not a session: "system" kind.
        Actor(user_id=reset.user_id, kind=ActorKind.SYSTEM),
        f"two_factor.reset_{'confirmed' if answer == 'confirm' else 'denied'}",
        tenant=None,
        target_type="user",
        target_id=reset.user_id,
        changes={
            "status": {"before": "pending", "after": reset.status.value},
            **(
                {"two_factor": {"before": "totp", "after": user.two_factor.value}}
                if answer == "confirm"
                else {}
            ),
        },
    )
    return ResetAnswered(status=reset.status, two_factor=user.two_factor)


_ANSWER_PROBLEMS = problem_responses(e.InvalidToken, e.RateLimited, e.ValidationFailed)


@public_router.post(
    "/confirm",
    summary="The user confirms: their authenticator is cleared, sign-in falls back to email",
    responses=_ANSWER_PROBLEMS,
)
async def confirm_reset(
    body: ResetAnswer,
    request: Request,
    state: State,
    factors: TwoFactors,
    users: Users,
    throttling: Throttling,
    audit: Audit,
    now: Now,
) -> ResetAnswered:
    return await _answer("confirm", body, request, state, factors, users, throttling, audit, now)


@public_router.post(
    "/deny",
    summary="The user denies: nothing changes, and the request's links die",
    responses=_ANSWER_PROBLEMS,
)
async def deny_reset(
    body: ResetAnswer,
    request: Request,
    state: State,
    factors: TwoFactors,
    users: Users,
    throttling: Throttling,
    audit: Audit,
    now: Now,
) -> ResetAnswered:
    return await _answer("deny", body, request, state, factors, users, throttling, audit, now)
