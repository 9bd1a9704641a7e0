"""One transaction per request, committed before the response leaves, with idempotency keys.

A route class rather than a yield dependency: the idempotent answer must be stored in the same
transaction as the change it answers, and only the route handler sees the rendered response.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.db import stale_connection
from access_api.domain.dry_run import WouldChange
from access_api.domain.errors import (
    Conflict,
    DomainError,
    FieldError,
    IdempotencyKeyReused,
    ValidationFailed,
)
from access_api.errors import domain_problem
from access_api.repositories.idempotency import IN_PROGRESS, IdempotencyRepository
from access_api.state import AppState
from access_api.use_cases import dry_run
from access_api.use_cases.work import Work

log = logging.getLogger("access_api.routing")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
_REPLAYED_HEADERS = ("content-type", "etag", "location", "retry-after", "www-authenticate")
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
MAX_ATTEMPTS = 3
_SEAL = "idempotency"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


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


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})  # what pydantic reads as true


async def _dry_run_option(
    request: Request,
    dry_run: Annotated[bool, Query(description=DRY_RUN_DESCRIPTION)] = False,
) -> None:
    request.state.dry_run = dry_run


class TransactionalRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        self.dry_runnable = any((method, path) in DRY_RUNNABLE for method in methods)
        if self.dry_runnable:
            kwargs["dependencies"] = [*(kwargs.get("dependencies") or []), Depends(_dry_run_option)]
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            state: AppState = request.app.state.access
            key = request.headers.get(IDEMPOTENCY_HEADER)
            idempotency: _Idempotency | None = None
            if key is not None and request.method not in SAFE_METHODS:
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
                    return await _once(request, handler, state, idempotency)
                except DBAPIError as error:
                    if attempt == MAX_ATTEMPTS or not _retryable(error):
                        raise
                    log.info("retrying after %s (attempt %d)", type(error.orig).__name__, attempt)
            raise AssertionError("unreachable")

        return run


async def _once(
    request: Request, handler: Handler, state: AppState, idempotency: _Idempotency | None
) -> Response:
    try:
        reads = request.method in SAFE_METHODS
        async with (state.database.reads if reads else state.database.session)() as session:
            request.state.session = session
            request.state.after_commit = []
            request.state.after_refusal = []
            if idempotency is not None:
                replay = await idempotency.claim(session)
                if replay is not None:
                    return replay
            rehearsal = await _rehearsal(request, session, state)
            response = await handler(request)
            if getattr(request.state, "dry_run", False):
                # Described, then rolled back as the session closes uncommitted: nothing the
                # change wrote is kept, and no after-commit hook (mail, webhooks) runs.
                return await _rehearsed(request, session, state, rehearsal, response)
            if idempotency is not None and response.status_code < 500:
                await idempotency.complete(session, response)
            await session.commit()
    except DomainError as error:
        # What a refusal must leave behind even so (a failed attempt, counted for throttling)
        # is written now, in transactions of its own: the request's rolled back as it closed.
        for record in request.state.after_refusal:
            await record()
        # A refusal is an answer too: a retry with the same key gets it again rather than
        # running the request a second time.
        if idempotency is not None and not isinstance(error, IdempotencyKeyReused | Conflict):
            await idempotency.remember_refusal(request, error)
        raise
    for hook in request.state.after_commit:
        hook()
    return response


@dataclass(frozen=True, slots=True)
class _Rehearsal:
    work: Work
    tenant_id: UUID
    before: frozenset[UUID]


async def _rehearsal(request: Request, session: AsyncSession, state: AppState) -> _Rehearsal | None:
    """A dry run notes who can do anything in the tree before the change runs."""
    wanted = request.query_params.get("dry_run", "").lower() in _TRUE
    if not (wanted and getattr(request.scope.get("route"), "dry_runnable", False)):
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
