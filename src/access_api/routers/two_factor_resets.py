"""Two-factor resets (seeds 000, 003): an admin asks, the user confirms or denies by email."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, status
from pydantic import BaseModel, Field

from access_api.dependencies import Work, requires
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.permissions import Permission
from access_api.domain.two_factor import ResetStatus
from access_api.domain.users import TwoFactor
from access_api.errors import problem_responses
from access_api.routers.common import (
    MAX_BULK_IDS,
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
    split_sort,
)
from access_api.use_cases import two_factor_resets as resets
from access_api.use_cases.two_factor_resets import Answered, ResetOf

router = api_router(prefix="/v1/tenants", tags=["two-factor"], responses=SCOPED_PROBLEMS)
public_router = api_router(prefix="/v1/two-factor-resets", tags=["two-factor"])

ResetTwoFactor = Annotated[Scope, requires(Permission.TWO_FACTOR_RESET)]

TOKEN_MAX_LENGTH = 256


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
    def of(cls, found: ResetOf) -> ResetOut:
        reset, user = found.reset, found.user
        return cls(
            id=reset.id,
            user=ResetUser(
                id=user.id, email=user.email, first_name=user.first_name, last_name=user.last_name
            ),
            requested_by=reset.requested_by,
            status=found.status,
            created_at=reset.created_at,
            expires_at=reset.expires_at,
            decided_at=reset.decided_at,
        )


class ResetRequest(Body):
    user_ids: list[UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


class ResetItems(BaseModel):
    items: list[ResetOut]


class ResetAnswer(Body):
    token: str = Field(min_length=1, max_length=TOKEN_MAX_LENGTH)


class ResetAnswered(BaseModel):
    status: ResetStatus
    two_factor: TwoFactor

    @classmethod
    def of(cls, answered: Answered) -> ResetAnswered:
        return cls(status=answered.status, two_factor=answered.two_factor)


@router.get(
    "/{tenant_id}/two-factor-resets",
    summary="Reset requests made in this account: pending, confirmed, denied, expired",
)
async def list_resets(
    scope: ResetTwoFactor,
    work: Work,
    status_: Annotated[ResetStatus | None, Query(alias="status")] = None,
    sort: Literal["created_at", "-created_at"] = "-created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[ResetOut]:
    _, descending = split_sort(sort)
    after = work.state.cursors.decode(cursor, sort)
    page = await resets.list_made_in(
        work, scope, status=status_, descending=descending, after=after, limit=limit
    )
    return page_of(page, ResetOut.of, work.state.cursors, sort)


@router.post(
    "/{tenant_id}/two-factor-resets",
    status_code=status.HTTP_201_CREATED,
    summary="Ask users to confirm the reset of their authenticator (each gets an email)",
    responses=problem_responses(
        e.CannotResetOwnTwoFactor, e.UserOutsideScope, e.TwoFactorNotEnabled, e.BulkRefused
    ),
)
async def request_resets(body: ResetRequest, scope: ResetTwoFactor, work: Work) -> ResetItems:
    made = await resets.request(work, scope, body.user_ids)
    return ResetItems(items=[ResetOut.of(found) for found in made])


_ANSWER_PROBLEMS = problem_responses(e.InvalidToken, e.RateLimited, e.ValidationFailed)


@public_router.post(
    "/confirm",
    summary="The user confirms: their authenticator is cleared, sign-in falls back to email",
    responses=_ANSWER_PROBLEMS,
)
async def confirm_reset(body: ResetAnswer, work: Work) -> ResetAnswered:
    return ResetAnswered.of(await resets.confirm(work, body.token))


@public_router.post(
    "/deny",
    summary="The user denies: nothing changes, and the request's links die",
    responses=_ANSWER_PROBLEMS,
)
async def deny_reset(body: ResetAnswer, work: Work) -> ResetAnswered:
    return ResetAnswered.of(await resets.deny(work, body.token))
