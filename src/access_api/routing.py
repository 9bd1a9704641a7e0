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
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.db import stale_connection
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


class TransactionalRoute(APIRoute):
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
            response = await handler(request)
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
