"""Single sign-on: a tenant's OpenID connection, and the browser's way through the IdP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import Query, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from access_api.dependencies import Work, requires
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.permissions import Permission
from access_api.domain.sso import Connection, Jit
from access_api.errors import problem_responses
from access_api.routers.common import SCOPED_PROBLEMS, Body, api_router
from access_api.use_cases import sso
from access_api.use_cases.auth import NewSession

router = api_router(prefix="/v1/tenants", tags=["sso"], responses=SCOPED_PROBLEMS)
public_router = api_router(prefix="/v1/auth/sso", tags=["sso"])

ManageSso = Annotated[Scope, requires(Permission.SSO_MANAGE)]


class JitSettings(Body):
    enabled: bool = False
    roles: list[str] = Field(default_factory=list, max_length=50)
    include_descendants: bool = False


class ConnectionBody(Body):
    issuer: str = Field(min_length=8, max_length=500, examples=["https://login.example.com"])
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Write-only: sealed at rest, never returned. Omit it to keep the current one",
    )
    domains: list[str] = Field(min_length=1, max_length=50, examples=[["acme.com"]])
    jit: JitSettings = Field(default_factory=JitSettings)
    enforce: bool = Field(
        default=False, description="Password login for these domains answers 401 sso_required"
    )


class JitView(BaseModel):
    enabled: bool
    roles: list[str]
    include_descendants: bool


class ConnectionView(BaseModel):
    id: UUID
    tenant_id: UUID
    issuer: str
    client_id: str
    client_secret_set: bool = True
    domains: list[str]
    jit: JitView
    enforce: bool
    redirect_uri: str = Field(description="The redirect URI to register at the IdP")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, c: Connection, redirect_uri: str) -> ConnectionView:
        return cls(
            id=c.id,
            tenant_id=c.tenant_id,
            issuer=c.issuer,
            client_id=c.client_id,
            domains=sorted(c.domains),
            jit=JitView(
                enabled=c.jit.enabled,
                roles=sorted(c.jit.roles),
                include_descendants=c.jit.include_descendants,
            ),
            enforce=c.enforce,
            redirect_uri=redirect_uri,
            created_at=c.created_at,
            updated_at=c.updated_at,
        )


class ExchangeBody(Body):
    code: str = Field(min_length=1, max_length=200)
    otp: str | None = Field(
        default=None, max_length=64, description="A two-factor code, when otp_required"
    )


class SsoToken(BaseModel):
    access_token: str = Field(description="Send as Authorization: Bearer <access_token>")
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    expires_at: datetime

    @classmethod
    def of(cls, started: NewSession) -> SsoToken:
        return cls(access_token=started.token, expires_at=started.expires_at)


@router.get("/{tenant_id}/sso", summary="The account's single sign-on connection")
async def get_connection(scope: ManageSso, work: Work) -> ConnectionView:
    return ConnectionView.of(await sso.get(work, scope), sso.redirect_uri(work))


@router.put(
    "/{tenant_id}/sso",
    summary="Create or replace the account's OpenID connection",
    responses=problem_responses(
        e.SsoDomainTaken, e.SsoDiscoveryFailed, e.PrivilegeEscalation, e.ValidationFailed
    ),
)
async def put_connection(body: ConnectionBody, scope: ManageSso, work: Work) -> ConnectionView:
    wanted = sso.ConnectionInput(
        issuer=body.issuer,
        client_id=body.client_id,
        client_secret=body.client_secret,
        domains=body.domains,
        jit=Jit(
            enabled=body.jit.enabled,
            roles=frozenset(body.jit.roles),
            include_descendants=body.jit.include_descendants,
        ),
        enforce=body.enforce,
    )
    return ConnectionView.of(await sso.put(work, scope, wanted), sso.redirect_uri(work))


@router.delete(
    "/{tenant_id}/sso",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove the account's OpenID connection",
)
async def delete_connection(scope: ManageSso, work: Work) -> None:
    await sso.delete(work, scope)


@public_router.get(
    "/start",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Begin a login at the IdP of an email's domain (or of an account's domain prefix)",
    responses=problem_responses(e.SsoNotConfigured, e.SsoDiscoveryFailed, e.ValidationFailed),
)
async def start(
    work: Work,
    email: Annotated[str | None, Query(max_length=320)] = None,
    domain_prefix: Annotated[str | None, Query(max_length=63)] = None,
) -> RedirectResponse:
    return RedirectResponse(await sso.start(work, email, domain_prefix), status.HTTP_302_FOUND)


@public_router.get(
    "/callback",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="The IdP's answer: on to {PUBLIC_URL}/sso/complete with a one-time code or an error",
    responses=problem_responses(e.ValidationFailed),
)
async def callback(
    work: Work,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> RedirectResponse:
    return RedirectResponse(await sso.callback(work, code, state, error), status.HTTP_302_FOUND)


@public_router.post(
    "/exchange",
    summary="Turn the one-time code from /sso/complete into a session",
    responses=problem_responses(
        e.InvalidToken, e.OtpRequired, e.InvalidCredentials, e.RateLimited, e.ValidationFailed
    ),
)
async def exchange(body: ExchangeBody, work: Work) -> SsoToken:
    return SsoToken.of(await sso.exchange(work, body.code, body.otp))
