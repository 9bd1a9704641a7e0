"""A verified change of the caller's email address."""

from __future__ import annotations

from datetime import datetime

from fastapi import status
from pydantic import BaseModel, Field

from access_api.dependencies import CurrentCaller, Work
from access_api.domain import errors as e
from access_api.domain.users import PASSWORD_MAX_LENGTH
from access_api.errors import problem_responses
from access_api.routers.common import Body, api_router
from access_api.use_cases import email_changes

router = api_router(prefix="/v1/me/email", tags=["me"])


class EmailChangeRequest(Body):
    new_email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)


class EmailChangePending(BaseModel):
    new_email: str
    expires_at: datetime = Field(description="When the confirmation link stops working")


class EmailChangeConfirm(Body):
    token: str = Field(min_length=1, max_length=200)


class EmailChanged(BaseModel):
    email: str


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask to change my email: a link goes to the new address, a notice to the old",
    responses=problem_responses(e.Unauthenticated, e.Forbidden, e.EmailTaken, e.ValidationFailed),
)
async def request_email_change(
    body: EmailChangeRequest, caller: CurrentCaller, work: Work
) -> EmailChangePending:
    change = await email_changes.request(work, caller, body.new_email, body.password)
    return EmailChangePending(new_email=change.new_email, expires_at=change.expires_at)


@router.post(
    "/confirm",
    summary="Confirm a change of email with the link's token (public: the link is the proof)",
    responses=problem_responses(e.InvalidToken, e.EmailTaken, e.RateLimited, e.ValidationFailed),
)
async def confirm_email_change(body: EmailChangeConfirm, work: Work) -> EmailChanged:
    user = await email_changes.confirm(work, body.token)
    return EmailChanged(email=user.email)
