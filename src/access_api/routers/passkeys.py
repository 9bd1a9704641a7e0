"""The caller's own passkeys (WebAuthn) and TOTP recovery codes: second factors."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import status
from pydantic import BaseModel, Field

from access_api.dependencies import CurrentCaller, Work
from access_api.domain import errors as e
from access_api.domain.recovery import PASSKEY_NAME_MAX_LENGTH, Passkey
from access_api.domain.users import PASSWORD_MAX_LENGTH
from access_api.errors import problem_responses
from access_api.routers.common import AUTHENTICATED_PROBLEMS, Body, api_router
from access_api.use_cases import passkeys, recovery_codes

router = api_router(prefix="/v1/me/two-factor", tags=["me"], responses=AUTHENTICATED_PROBLEMS)


class PasskeyOut(BaseModel):
    id: UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, passkey: Passkey) -> PasskeyOut:
        return cls(
            id=passkey.id,
            name=passkey.name,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
        )


class PasskeyList(BaseModel):
    items: list[PasskeyOut]


class NewPasskey(Body):
    name: str | None = Field(default=None, max_length=PASSKEY_NAME_MAX_LENGTH)
    credential: dict[str, Any] = Field(
        description="The PublicKeyCredential from navigator.credentials.create(), as JSON "
        "(base64url fields, as its toJSON() gives)"
    )


class PasswordConfirm(Body):
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Shown this once: each works once")


@router.post(
    "/webauthn/options",
    summary="Options for navigator.credentials.create() to register a passkey",
    responses=problem_responses(e.Forbidden),
)
async def passkey_options(caller: CurrentCaller, work: Work) -> dict[str, Any]:
    return await passkeys.options(work, caller)


@router.post(
    "/webauthn",
    status_code=status.HTTP_201_CREATED,
    summary="Register a passkey: the authenticator's answer to the options' challenge",
    responses=problem_responses(e.Forbidden, e.PasskeyRejected),
)
async def register_passkey(body: NewPasskey, caller: CurrentCaller, work: Work) -> PasskeyOut:
    return PasskeyOut.of(await passkeys.register(work, caller, body.name, body.credential))


@router.get("/webauthn", summary="My passkeys", responses=problem_responses(e.Forbidden))
async def list_passkeys(caller: CurrentCaller, work: Work) -> PasskeyList:
    return PasskeyList(items=[PasskeyOut.of(p) for p in await passkeys.list_mine(work, caller)])


@router.delete(
    "/webauthn/{passkey_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one of my passkeys",
    responses=problem_responses(e.Forbidden, e.NotFound),
)
async def delete_passkey(passkey_id: UUID, caller: CurrentCaller, work: Work) -> None:
    await passkeys.delete(work, caller, passkey_id)


@router.post(
    "/recovery-codes",
    summary="Replace my TOTP recovery codes with ten new ones (the old ones stop working)",
    responses=problem_responses(e.Forbidden, e.TwoFactorNotEnabled),
)
async def replace_recovery_codes(
    body: PasswordConfirm, caller: CurrentCaller, work: Work
) -> RecoveryCodes:
    return RecoveryCodes(recovery_codes=await recovery_codes.replace(work, caller, body.password))
