"""One transaction per request, committed before the response leaves, with idempotency keys.

A route class rather than a yield dependency: the idempotent answer must be stored in the same
transaction as the change it answers, and only the route handler sees the rendered response.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, get_args
from uuid import UUID

from fastapi import Depends, HTTPException, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security.base import SecurityBase
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.db import close, finish, stale_connection
from access_api.domain.dry_run import WouldChange
from access_api.domain.errors import (
    Conflict,
    DomainError,
    FieldError,
    IdempotencyKeyReused,
    ValidationFailed,
)
from access_api.errors import domain_problem
from access_api.pagination import cursor_filters, filters_of
from access_api.repositories.idempotency import IN_PROGRESS, IdempotencyRepository
from access_api.state import AppState
from access_api.use_cases import dry_run
from access_api.use_cases.work import Work

log = logging.getLogger("access_api.routing")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_REPLAYED_HEADERS = ("content-type", "etag", "location", "retry-after", "www-authenticate")
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
MAX_ATTEMPTS = 3
_SEAL = "idempotency"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def methods_on(request: Request) -> dict[int, set[str]]:
    """The methods routes answer on this request's path, by how many parameters their path
    has (a literal path, fewer, takes precedence over a parametrized one)."""
    path = request.scope.get("path", "")
    found: dict[int, set[str]] = {}
    for route in iter_route_contexts(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and route.methods and regex.match(path):
            found.setdefault(str(route.path).count("{"), set()).update(route.methods)
    return found


def _is_uuid(value: Any) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def _retryable(error: DBAPIError) -> bool:
    if stale_connection(error):
        return True
    orig = error.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _RETRYABLE_SQLSTATES:
        return True
    cause = getattr(orig, "__cause__", None)
    return getattr(cause, "sqlstate", None) in _RETRYABLE_SQLSTATES


class _Idempotency:
    """The Idempotency-Key of one request: scoped to its credential, bound to its content."""

    def __init__(self, request: Request, key: str, body: bytes, state: AppState) -> None:
        credential = request.headers.get("authorization", "")
        self.principal = (
            state.keyring.digest(f"idempotency:{credential}") if credential else "public"
        )
        self.key = key
        fingerprint = b"\n".join(
            [request.method.encode(), request.url.path.encode(), request.url.query.encode(), body]
        )
        self.request_hash = hashlib.sha256(fingerprint).hexdigest()
        self.state = state
        now = state.clock.now()
        self.now = now
        self.expires_at = now + timedelta(hours=state.settings.idempotency_retention_hours)

    def pack(self, response: Response) -> bytes:
        headers = {
            name: value for name, value in response.headers.items() if name in _REPLAYED_HEADERS
        }
        payload = json.dumps(
            {"headers": headers, "body": bytes(response.body).decode("utf-8", "replace")}
        ).encode()
        # Sealed: a first answer may carry a secret shown once (a new API key, a session).
        return self.state.keyring.seal(payload, _SEAL)

    def unpack(self, status: int, blob: bytes) -> Response:
        payload = json.loads(self.state.keyring.unseal(blob, _SEAL))
        headers = dict(payload["headers"])
        headers["Idempotent-Replayed"] = "true"
        return Response(content=payload["body"].encode(), status_code=status, headers=headers)

    async def claim(self, session: AsyncSession) -> Response | None:
        remembered = await IdempotencyRepository(session).claim(
            self.principal, self.key, self.request_hash, self.now, self.expires_at
        )
        if remembered is None:
            return None
        if remembered.request_hash != self.request_hash:
            raise IdempotencyKeyReused()
        if remembered.status_code == IN_PROGRESS:
            raise Conflict("a request with this Idempotency-Key is still being processed")
        return self.unpack(remembered.status_code, remembered.response)

    async def complete(self, session: AsyncSession, response: Response) -> None:
        await IdempotencyRepository(session).complete(
            self.principal, self.key, response.status_code, self.pack(response)
        )

    async def remember_refusal(self, request: Request, error: DomainError) -> None:
        response = domain_problem(request, error)
        async with self.state.database.session() as session:
            await IdempotencyRepository(session).remember(
                self.principal,
                self.key,
                self.request_hash,
                response.status_code,
                self.pack(response),
                self.now,
                self.expires_at,
            )
            await session.commit()


# Control characters (C0, DEL, C1) are refused in every string; tab, newline and carriage
# return only outside names. Names also refuse bidi overrides and zero-width characters, which
# make one name look like another.
_CONTROL_CLASS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_NAME_UNSAFE_CLASS = r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_CONTROL = re.compile(f"[{_CONTROL_CLASS}]")
_NAME_UNSAFE = re.compile(f"[{_NAME_UNSAFE_CLASS}]")
# The same rules, as the contract states them (JSON Schema `pattern`, see main.py).
TEXT_PATTERN = f"^[^{_CONTROL_CLASS}]*$"
NAME_PATTERN = f"^[^{_NAME_UNSAFE_CLASS}]*$"


def text_pattern(field: str) -> str:
    return NAME_PATTERN if field.endswith("name") else TEXT_PATTERN


def _refuse(field: str, code: str, message: str) -> ValidationFailed:
    return ValidationFailed([FieldError(field, code, message)])


def _screen_text(field: str, value: str) -> None:
    pattern = _NAME_UNSAFE if field.rsplit(".", 1)[-1].endswith("name") else _CONTROL
    if pattern.search(value):
        raise _refuse(field, "invalid_characters", "must not contain control characters")


def _screen_json(value: Any, field: str) -> None:
    if isinstance(value, str):
        _screen_text(field or "body", value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _screen_text(f"{field}.{key}" if field else key, key)
            _screen_json(item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _screen_json(item, f"{field}.{index}" if field else str(index))


def _whole_numbers(value: Any) -> Any:
    """JSON has one number type: 60.0 is the integer 60 (as JSON Schema says), 60.5 is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _refuse(key, "duplicate_key", "appears more than once in the JSON object")
        found[key] = value
    return found


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def screen_times(request: Request, names: tuple[str, ...]) -> None:
    """A time in a query is an ISO 8601 date-time with its offset (`Z` for UTC): not a number
    of seconds, not a local time of unknown zone; and a range (since, until) does not end
    before it starts."""
    found: dict[str, datetime] = {}
    for name in names:
        value = request.query_params.get(name)
        if value is None:
            continue
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None or "T" not in value.upper():
            raise _refuse(
                name, "invalid_datetime", "must be an ISO 8601 date-time with an offset or Z"
            )
        found[name] = parsed
    if "since" in found and "until" in found and found["since"] > found["until"]:
        raise _refuse("since", "invalid_range", "must not be after until")


def screen_parameters(request: Request) -> None:
    """No control character in a path or query parameter, on any route."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            _screen_text(name, value)
    if request.scope.get("query_string"):
        for name, value in request.query_params.multi_items():
            _screen_text(name, value)


async def screen_body(request: Request, body_type: TypeAdapter[Any]) -> None:
    """What FastAPI lets through and the contract does not: a body that is not JSON (415), bad
    JSON (422), a key twice, a control character, and lax values ("60" for a number, "yes" for
    a boolean): JSON bodies are validated strictly, by JSON's own types."""
    raw = await request.body()
    if not raw:
        return
    if not _is_json(request.headers.get("content-type")):
        raise HTTPException(415, "Send the body as application/json")
    try:
        document = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        # A validation problem like any other bad body (422, documented on every operation
        # with a body), never FastAPI's undocumented 400.
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"not valid JSON: {error}"}]
        ) from error
    _screen_json(document, "")
    try:
        body_type.validate_json(json.dumps(_whole_numbers(document)), strict=True)
    except PydanticValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        ) from error


# Changes that can be rehearsed with ?dry_run=true (SPEC §5.4): run for real in their
# transaction, described, rolled back. Listed here, by route, so every door to them (and the
# OpenAPI document) gets the option without each handler knowing of it.
DRY_RUNNABLE = frozenset(
    {
        ("PUT", "/v1/tenants/{tenant_id}/authorizations"),
        ("PUT", "/v1/tenants/{tenant_id}/users/{user_id}/authorizations"),
        ("POST", "/v1/tenants/{tenant_id}/users/delete"),
        ("POST", "/v1/tenants/{tenant_id}/clients/delete"),
        ("POST", "/v1/tenants/{tenant_id}/clients/disable"),
        ("POST", "/v1/tenants/{tenant_id}/invitations"),
        ("PATCH", "/v1/tenants/{tenant_id}/invitations/{invitation_id}"),
        ("POST", "/v1/tenants/{tenant_id}/invitations/resend"),
        ("POST", "/v1/tenants/{tenant_id}/invitations/delete"),
    }
)
DRY_RUN_DESCRIPTION = (
    "Check and describe the change without making it: the same refusals as the real call, "
    "and, instead of its answer, `{dry_run: true, would_change: {events, grants, "
    "users_losing_all_access, api_key_ids, agent_ids, sessions}, result}` (result: what the "
    "real call would answer). Nothing is kept: no audit event, no mail, no webhook."
)


# GETs that change more than one thing: run in a transaction, as other methods do, not in
# the autocommit of read-only requests (SSO's start and callback: the login kept for the
# callback; the person made just in time and the one-time code; an export's audit event and
# its webhook deliveries). A credential's last-use stamp, the only write of other GETs, is one
# statement.
WRITING_GETS = frozenset(
    {
        ("GET", "/v1/auth/sso/start"),
        ("GET", "/v1/auth/sso/callback"),
        ("GET", "/v1/tenants/{tenant_id}/users/export"),
    }
)


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})  # what pydantic reads as true


async def _dry_run_option(
    request: Request,
    dry_run: Annotated[bool, Query(description=DRY_RUN_DESCRIPTION)] = False,
) -> None:
    request.state.dry_run = dry_run


def _every_dependency(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _every_dependency(dependency)


def _takes_nothing(dependant: Dependant, *, but_path: bool = False) -> bool:
    """No parameter FastAPI would read off the request for it (a path one allowed with
    but_path), and none of its special ones but the request itself."""
    return not (
        (dependant.path_params and not but_path)
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


class TransactionalRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        self.dry_runnable = any((method, path) in DRY_RUNNABLE for method in methods)
        self.reads_only = methods <= SAFE_METHODS and not any(
            (method, path) in WRITING_GETS for method in methods
        )
        if self.dry_runnable:
            kwargs["dependencies"] = [*(kwargs.get("dependencies") or []), Depends(_dry_run_option)]
        super().__init__(path, endpoint, **kwargs)
        calls = [dependency.call for dependency in _every_dependency(self.dependant)]
        if not any(isinstance(call, SecurityBase) for call in calls) and any(
            getattr(call, "takes_bearer", False) for call in calls
        ):
            # A dependency that reads the bearer token off the request itself (the scope of
            # dependencies.requires) states what solving `Bearer` would have documented.
            self.openapi_extra = {"security": [{"HTTPBearer": []}], **(self.openapi_extra or {})}

    def _refuse_method_on_an_action(self, request: Request) -> None:
        """/invitations/delete is an action (POST), not the invitation whose id is "delete":
        another method there is 405 with the action's Allow, not a 422 about an id."""
        values = [request.path_params.get(name) for name in self._id_parameters]
        if all(value is None or _is_uuid(value) for value in values):
            return
        owners = methods_on(request)
        if owners and min(owners) < self.path_format.count("{"):
            raise HTTPException(405)

    @cached_property
    def _time_parameters(self) -> tuple[str, ...]:
        fields = self.dependant.query_params
        return tuple(
            field.alias
            for field in fields
            if datetime in (field.field_info.annotation, *get_args(field.field_info.annotation))
        )

    @cached_property
    def _id_parameters(self) -> tuple[str, ...]:
        return tuple(
            field.name
            for field in self.dependant.path_params
            if field.field_info.annotation is UUID
        )

    @cached_property
    def _answers_itself(self) -> bool:
        """The endpoint renders its own Response (FastAPI has nothing to serialize)."""
        return not self.dry_runnable and self.endpoint.__annotations__.get("return") in (
            Response,
            "Response",
        )

    @cached_property
    def _scope_only(self) -> Dependant | None:
        """The one dependency of a route whose endpoint takes a tenant's scope and nothing
        else (dependencies.requires, on the tenant_id of the path), or None."""
        own = self.dependant
        if (
            not self._answers_itself
            or not _takes_nothing(own)
            or own.request_param_name
            or len(own.dependencies) != 1
        ):
            return None
        (scope,) = own.dependencies
        solvable = (
            getattr(scope.call, "takes_bearer", False)
            and [field.name for field in scope.path_params] == ["tenant_id"]
            and scope.path_params[0].field_info.annotation is UUID
            and scope.request_param_name == "request"
            and _takes_nothing(scope, but_path=True)
            and not scope.dependencies
        )
        return scope if solvable else None

    @cached_property
    def _request_only(self) -> str | None:
        """The name of the one parameter of an endpoint that takes the request and nothing
        else (GET /v1/me), or None."""
        own = self.dependant
        if self._answers_itself and _takes_nothing(own) and not own.dependencies:
            return own.request_param_name
        return None

    def _solved_directly(self, handler: Handler) -> Handler:
        """A route whose endpoint takes only the request, or only the tenant's scope, is
        answered by calling the endpoint (and the scope's dependency) here, as FastAPI would
        with what it solved, without its solving (a twentieth of the read of a client under
        load). For the scope, anything but a tenant id as FastAPI itself writes it (an
        invalid one, to be refused) and any overridden dependency go to FastAPI's handler."""
        endpoint = self.endpoint
        request_name = self._request_only
        if request_name is not None:

            async def called_here(request: Request) -> Response:
                answer: Response = await endpoint(**{request_name: request})
                return answer

            return called_here
        scope = self._scope_only
        if scope is None or scope.call is None or scope.name is None:
            return handler
        resolve, name = scope.call, scope.name

        async def solved_here(request: Request) -> Response:
            given = request.path_params.get("tenant_id")
            if request.app.dependency_overrides or not (
                isinstance(given, str) and _CANONICAL_UUID.fullmatch(given)
            ):
                return await handler(request)
            answer: Response = await endpoint(
                **{name: await resolve(tenant_id=UUID(given), request=request)}
            )
            return answer

        return solved_here

    def get_route_handler(self) -> Handler:
        handler = self._solved_directly(super().get_route_handler())
        annotation: Any = self.body_field.field_info.annotation if self.body_field else None
        body_type = TypeAdapter[Any](annotation) if annotation is not None else None

        async def run(request: Request) -> Response:
            state: AppState = request.app.state.access
            self._refuse_method_on_an_action(request)
            screen_parameters(request)
            screen_times(request, self._time_parameters)
            cursor_filters.set(
                filters_of(request.query_params.multi_items())
                if request.scope.get("query_string")
                else ""
            )
            if body_type is not None and request.method not in SAFE_METHODS:
                await screen_body(request, body_type)
            idempotency: _Idempotency | None = None
            # Read for changes only (a missing header costs Starlette a KeyError raised).
            key = (
                None if request.method in SAFE_METHODS else request.headers.get(IDEMPOTENCY_HEADER)
            )
            if key is not None:
                if not _KEY_PATTERN.fullmatch(key):
                    raise ValidationFailed(
                        [
                            FieldError(
                                "Idempotency-Key",
                                "invalid_idempotency_key",
                                "must be 1-255 visible ASCII characters",
                            )
                        ]
                    )
                idempotency = _Idempotency(request, key, await request.body(), state)
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    return await _once(request, handler, state, idempotency, self.reads_only)
                except DBAPIError as error:
                    if attempt == MAX_ATTEMPTS or not _retryable(error):
                        raise
                    log.info("retrying after %s (attempt %d)", type(error.orig).__name__, attempt)
            raise AssertionError("unreachable")

        return run


async def _once(
    request: Request,
    handler: Handler,
    state: AppState,
    idempotency: _Idempotency | None,
    reads: bool,
) -> Response:
    # The request's state as the dict it is (dependencies.work_of reads it so).
    values = request.scope["state"]
    after_commit: list[Callable[[], None]] = []
    after_refusal: list[Callable[[], Awaitable[None]]] = []
    try:
        session = (state.database.reads if reads else state.database.session)()
        try:
            values["session"] = session
            values["after_commit"] = after_commit
            values["after_refusal"] = after_refusal
            if idempotency is not None:
                replay = await idempotency.claim(session)
                if replay is not None:
                    return replay
            rehearsal = await _rehearsal(request, session, state)
            response = await handler(request)
            if request.scope["state"].get("dry_run", False):
                # Described, then rolled back as the session closes uncommitted: nothing the
                # change wrote is kept, and no after-commit hook (mail, webhooks) runs.
                return await _rehearsed(request, session, state, rehearsal, response)
            if idempotency is not None and response.status_code < 500:
                await idempotency.complete(session, response)
            await finish(session)
        finally:
            await close(session)
    except DomainError as error:
        # What a refusal must leave behind even so (a failed attempt, counted for throttling)
        # is written now, in transactions of its own: the request's rolled back as it closed.
        for record in after_refusal:
            await record()
        # A refusal is an answer too: a retry with the same key gets it again rather than
        # running the request a second time.
        if idempotency is not None and not isinstance(error, IdempotencyKeyReused | Conflict):
            await idempotency.remember_refusal(request, error)
        raise
    for hook in after_commit:
        hook()
    return response


@dataclass(frozen=True, slots=True)
class _Rehearsal:
    work: Work
    tenant_id: UUID
    before: frozenset[UUID]


async def _rehearsal(request: Request, session: AsyncSession, state: AppState) -> _Rehearsal | None:
    """A dry run notes who can do anything in the tree before the change runs."""
    if not getattr(request.scope.get("route"), "dry_runnable", False):
        return None
    if request.query_params.get("dry_run", "").lower() not in _TRUE:
        return None
    try:
        tenant_id = UUID(str(request.path_params["tenant_id"]))
    except ValueError:
        return None  # the handler refuses the path as usual
    work = Work.over(session, state, now=state.clock.now())
    return _Rehearsal(work, tenant_id, await dry_run.reaching(work, tenant_id))


async def _rehearsed(
    request: Request,
    session: AsyncSession,
    state: AppState,
    rehearsal: _Rehearsal | None,
    response: Response,
) -> Response:
    if rehearsal is None:  # never commit a dry run, even one not noticed beforehand
        work = Work.over(session, state, now=state.clock.now())
        tenant_id = UUID(str(request.path_params["tenant_id"]))
        rehearsal = _Rehearsal(work, tenant_id, frozenset())
    request_id = str(getattr(request.state, "request_id", ""))
    work = rehearsal.work
    would = await dry_run.describe(
        work, rehearsal.tenant_id, work.now, request_id, rehearsal.before
    )
    await work.session.rollback()
    body = bytes(response.body)
    result = json.loads(body) if body else None
    return JSONResponse(
        {"dry_run": True, "would_change": _plain(would), "result": result}, status_code=200
    )


def _plain(would: WouldChange) -> dict[str, Any]:
    return {
        "events": [
            {
                "action": event.action,
                "tenant_id": str(event.tenant_id) if event.tenant_id else None,
                "target": {
                    "type": event.target_type,
                    "id": str(event.target_id) if event.target_id else None,
                },
                "changes": event.changes,
            }
            for event in would.events
        ],
        "grants": [
            {
                "user_id": str(g.user_id),
                "tenant_id": str(g.tenant_id),
                "change": g.change,
                "roles": {"before": g.roles_before, "after": g.roles_after},
                "include_descendants": {
                    "before": g.include_descendants_before,
                    "after": g.include_descendants_after,
                },
                "expires_at": g.expires_at_after,
            }
            for g in would.grants
        ],
        "users_losing_all_access": [str(u) for u in would.users_losing_all_access],
        "api_key_ids": [str(k) for k in would.api_key_ids],
        "agent_ids": [str(a) for a in would.agent_ids],
        "sessions": would.sessions,
    }
