"""Forgot password (public) and reset links sent by an admin."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import status
from pydantic import BaseModel, Field

from access_api.dependencies import Work, requires
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.permissions import Permission
from access_api.domain.users import PASSWORD_MAX_LENGTH
from access_api.errors import problem_responses
from access_api.routers.common import MAX_BULK_IDS, SCOPED_PROBLEMS, Body, api_router
from access_api.use_cases import password_resets

public_router = api_router(prefix="/v1/auth/password-reset", tags=["auth"])
router = api_router(prefix="/v1/tenants", tags=["users"], responses=SCOPED_PROBLEMS)


class ResetRequest(Body):
    email: str = Field(min_length=1, max_length=320)


class ResetConfirm(Body):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)


class ResetLinks(Body):
    user_ids: list[UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


class ResetAccepted(BaseModel):
    detail: str = (
        "If this email belongs to an account, a link to choose a new password is on its way"
    )


class LinksSent(BaseModel):
    user_ids: list[UUID] = Field(description="Each of these users was sent a reset link")


@public_router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Forgot password: email a reset link (the same answer whether or not the email "
    "has an account)",
    responses=problem_responses(e.RateLimited, e.ValidationFailed),
)
async def request_reset(body: ResetRequest, work: Work) -> ResetAccepted:
    await password_resets.request(work, body.email)
    return ResetAccepted()


@public_router.post(
    "/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password through a reset link; every session of the account ends",
    responses=problem_responses(e.InvalidToken, e.RateLimited, e.ValidationFailed),
)
async def confirm_reset(body: ResetConfirm, work: Work) -> None:
    await password_resets.confirm(work, body.token, body.new_password)


@router.post(
    "/{tenant_id}/users/password-resets",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send users a link to choose a new password (you never see or set it)",
    responses=problem_responses(
        e.CannotResetOwnPassword, e.UserOutsideScope, e.BulkRefused, e.NotFound
    ),
)
async def send_reset_links(
    body: ResetLinks,
    scope: Annotated[Scope, requires(Permission.USERS_WRITE)],
    work: Work,
) -> LinksSent:
    sent = await password_resets.send_links(work, scope, body.user_ids)
    return LinksSent(user_ids=[user.id for user in sent])
