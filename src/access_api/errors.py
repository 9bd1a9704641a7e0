"""Errors at the edge: one table from domain error to HTTP status, rendered as RFC 9457."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from access_api.domain import errors as e

log = logging.getLogger("access_api.errors")

PROBLEM_JSON = "application/problem+json"

STATUS: dict[type[e.DomainError], int] = {
    e.Unauthenticated: 401,
    e.InvalidCredentials: 401,
    e.NoAccess: 403,
    e.Forbidden: 403,
    e.TenantDisabled: 403,
    e.TwoFactorRequired: 403,
    e.IpNotAllowed: 403,
    e.WouldLockYouOut: 422,
    e.NotFound: 404,
    e.CannotDeleteSelf: 403,
    e.CannotChangeOwnAccess: 403,
    e.CannotResetOwnTwoFactor: 403,
    e.LastAdmin: 409,
    e.PrivilegeEscalation: 403,
    e.UserOutsideScope: 403,
    e.EmailImmutable: 422,
    e.TenantImmutableField: 422,
    e.DomainPrefixTaken: 409,
    e.InvalidParent: 422,
    e.ConfirmationRequired: 422,
    e.HasChildren: 409,
    e.CannotDisableRoot: 422,
    e.InvitationExists: 409,
    e.InvalidToken: 400,
    e.TwoFactorNotEnabled: 409,
    e.InvitationNotPending: 409,
    e.RoleImmutable: 403,
    e.RoleInUse: 409,
    e.RoleKeyTaken: 409,
    e.ValidationFailed: 422,
    e.PreconditionFailed: 412,
    e.IdempotencyKeyReused: 422,
    e.Conflict: 409,
    e.BulkRefused: 422,
    e.OtpRequired: 401,
    e.RateLimited: 429,
    e.ApiKeyExpired: 409,
    e.AgentDeregistered: 409,
    e.AgentUserWithoutAccess: 422,
    e.TwoFactorEnabled: 409,
    e.TotpNotEnrolling: 409,
    e.InvalidOtp: 401,
    e.SsoNotConfigured: 404,
    e.SsoDomainTaken: 409,
    e.SsoRequired: 401,
    e.SsoDiscoveryFailed: 422,
    e.ScimGroupUnknown: 422,
    e.ScimUserExists: 409,
    e.InvalidFilter: 400,
    e.InvalidCursor: 400,
    e.CannotResetOwnPassword: 403,
    e.EmailTaken: 409,
    e.PasskeyRejected: 422,
}

# Problems the edge raises itself, not the domain.
EDGE_PROBLEMS: dict[str, tuple[int, str]] = {
    "method_not_allowed": (405, "This method is not allowed on this resource"),
    "not_acceptable": (406, "Not acceptable"),
    "request_timeout": (408, "The request took too long to arrive"),
    "payload_too_large": (413, "The request body is too large"),
    "unsupported_media_type": (415, "Send the body as application/json"),
    "database_unavailable": (503, "The database is unavailable; retry shortly"),
    "schema_behind": (503, "The database schema is behind this release"),
    "internal_error": (500, "Something went wrong on our side"),
}


class ProblemItem(BaseModel):
    field: str | None = None
    id: str | None = None
    code: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: `code` is stable and meant for programs, `detail` for people."""

    type: str = Field(examples=["/problems/not_found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    request_id: str | None = None
    errors: list[ProblemItem] | None = None
    methods: list[str] | None = Field(
        default=None, description="otp_required: the second factors this user may answer with"
    )
    webauthn: dict[str, Any] | None = Field(
        default=None,
        description="otp_required: passkey request options (navigator.credentials.get)",
    )


def status_of(error: e.DomainError) -> int:
    if isinstance(error, e.BulkRefused):
        statuses = {status_of(item.error) for item in error.errors}
        return statuses.pop() if len(statuses) == 1 else STATUS[e.BulkRefused]
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[ProblemItem] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    body = Problem(
        type=f"/problems/{code}",
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        code=code,
        request_id=getattr(request.state, "request_id", None),
        errors=errors,
        **(extensions or {}),
    )
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="access-api"')
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=all_headers,
    )


def domain_problem(request: Request, error: e.DomainError) -> JSONResponse:
    items: list[ProblemItem] | None = None
    code, title = error.code, error.title
    if isinstance(error, e.ValidationFailed):
        items = [ProblemItem(field=f.field, code=f.code, message=f.message) for f in error.errors]
    elif isinstance(error, e.BulkRefused):
        items = [
            ProblemItem(id=str(item.id), code=item.error.code, message=item.error.detail)
            for item in error.errors
        ]
        if error.shared is not None:
            code, title = error.shared.code, error.shared.title
    # The domain says how long to wait; saying it as an HTTP header is the edge's business.
    headers = (
        {"Retry-After": str(error.retry_after_seconds)}
        if isinstance(error, e.RateLimited)
        else None
    )
    return problem(
        request,
        status=status_of(error),
        code=code,
        title=title,
        detail=error.detail,
        errors=items,
        headers=headers,
        extensions=getattr(error, "extensions", None),
    )


def _field_of(location: Iterable[Any]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_problem(request: Request, error: RequestValidationError) -> JSONResponse:
    # Never echo the input back: it may be a password.
    items = [
        ProblemItem(field=_field_of(item["loc"]), code=item["type"], message=item["msg"])
        for item in error.errors()
    ]
    return problem(
        request,
        status=422,
        code="validation_error",
        title=e.ValidationFailed.title,
        detail="; ".join(f"{i.field}: {i.message}" for i in items),
        errors=items,
    )


def _http_problem(request: Request, error: StarletteHTTPException) -> JSONResponse:
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }
    code = codes.get(error.status_code, "http_error")
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    title = e.NotFound.title if code == "not_found" else EDGE_PROBLEMS.get(code, (0, "Error"))[1]
    return problem(
        request,
        status=error.status_code,
        code=code,
        title=title,
        detail=title if code == "payload_too_large" else str(error.detail or title),
        headers=headers,
    )


def allowed_methods(request: Request) -> str:
    """Every method the most specific routes on this path answer (Starlette names only the
    first route's)."""
    from access_api.routing import methods_on  # noqa: PLC0415 - routing imports this module

    found = methods_on(request)
    return ", ".join(sorted(found[min(found)])) if found else ""


def edge_problem(request: Request, code: str, detail: str | None = None) -> JSONResponse:
    status, title = EDGE_PROBLEMS[code]
    return problem(request, status=status, code=code, title=title, detail=detail or title)


def unavailable_problem(request: Request) -> JSONResponse:
    status, title = EDGE_PROBLEMS["database_unavailable"]
    return problem(
        request,
        status=status,
        code="database_unavailable",
        title=title,
        detail=title,
        headers={"Retry-After": "5"},
    )


def is_unavailable(error: BaseException) -> bool:
    """Is this the database being down or stalled, as opposed to a bug?"""
    if isinstance(error, PoolTimeout | TimeoutError | ConnectionError | OSError):
        return True
    if isinstance(error, OperationalError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        name = type(error.orig).__name__ if error.orig is not None else ""
        return (
            any(
                hint in name
                for hint in ("Connection", "CannotConnectNow", "Timeout", "TooManyConnections")
            )
            or "timeout" in str(error.orig).lower()
        )
    return False


def install(app: FastAPI) -> None:
    # Starlette picks the handler by the exception's class (along its MRO), so each handler
    # only ever sees its own family; the isinstance checks are for the type checker.
    async def on_domain(request: Request, error: Exception) -> JSONResponse:
        if not isinstance(error, e.DomainError):
            raise error
        return domain_problem(request, error)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        if not isinstance(error, RequestValidationError):
            raise error
        return validation_problem(request, error)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        if not isinstance(error, StarletteHTTPException):
            raise error
        return _http_problem(request, error)

    async def on_database(request: Request, error: Exception) -> JSONResponse:
        if is_unavailable(error):
            log.warning("database unavailable: %s", type(error).__name__)
            return unavailable_problem(request)
        return internal_problem(request, error)

    app.add_exception_handler(e.DomainError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # Registered by class so they are answered, not re-raised as crashes (Starlette re-raises
    # whatever reaches its catch-all handler, after answering 500).
    for family in (DBAPIError, PoolTimeout, TimeoutError, OSError):
        app.add_exception_handler(family, on_database)

    async def on_bug(request: Request, error: Exception) -> JSONResponse:
        return internal_problem(request, error)

    # A bug: answered as a problem with no trace, then re-raised by Starlette for the server log.
    app.add_exception_handler(Exception, on_bug)


def internal_problem(request: Request, error: BaseException) -> JSONResponse:
    # Passed explicitly: this may run after the request's logging context has ended.
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled error", exc_info=error, extra={"request_id": request_id})
    status, title = EDGE_PROBLEMS["internal_error"]
    return problem(
        request,
        status=status,
        code="internal_error",
        title=title,
        detail="The error was logged with this request's id",
    )


def problem_responses(*errors: type[e.DomainError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: each status a route can answer with, the codes behind it, as problem+json."""
    by_status: dict[int, list[str]] = {}
    for error in errors:
        by_status.setdefault(STATUS[error], []).append(error.code)
    return {
        status: {
            "description": "Problem: " + ", ".join(f"`{code}`" for code in sorted(codes)),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status, codes in sorted(by_status.items())
    }
