"""The application factory: routers, error handlers, middleware, metrics and lifespan."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access_api import errors, metrics
from access_api.db import SQLITE_STATISTICS_EVERY_SECONDS, Database
from access_api.logs import request_id_var
from access_api.pagination import Cursors
from access_api.routers import (
    access,
    agents,
    api_keys,
    audit,
    auth,
    authorizations,
    email_changes,
    health,
    invitations,
    me,
    pages,
    passkeys,
    password_resets,
    policies,
    problems,
    roles,
    sessions,
    tenants,
    two_factor,
    two_factor_resets,
    users,
    webhooks,
)
from access_api.services.clock import Clock, SystemClock
from access_api.services.keyring import Keyring
from access_api.services.mailer import Dispatcher, stop_in_time
from access_api.services.passwords import Passwords
from access_api.services.webhooks import webhook_dispatcher
from access_api.settings import Settings, get_settings
from access_api.state import AppState

VERSION = "0.1.0"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

DESCRIPTION = """
Multi-tenant user and access management for managed service providers.

Authenticate with `Authorization: Bearer <token>`: a session token from `POST /v1/auth/login`,
a user API key, or an agent token. Tenant-scoped calls live under `/v1/tenants/{tenant_id}/…`:
that tenant is the context in which permissions are checked.

Errors are RFC 9457 `application/problem+json` with a stable `code`. Lists are keyset-paginated
(`limit`, `cursor`, `sort`). Mutations accept an `Idempotency-Key` header; single-resource GETs
return an `ETag` and PATCH honours `If-Match`.
"""


class RequestContext:
    """Give every request an id (X-Request-ID, echoed) and secure-by-default headers: answers
    carry tokens and personal data, so no cache may keep them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers.setdefault("Cache-Control", "no-store")
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_id_var.reset(token)


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    keyring = Keyring(settings.secret)  # fails fast on an unsafe secret

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database.connect(settings)
        the_clock = clock or SystemClock()
        dispatcher = Dispatcher(database=db, keyring=keyring, clock=the_clock, settings=settings)
        hooks = webhook_dispatcher(dispatcher, db, keyring, the_clock, settings)
        app.state.access = AppState(
            settings=settings,
            database=db,
            keyring=keyring,
            passwords=Passwords(),
            clock=the_clock,
            cursors=Cursors(keyring),
            dispatcher=dispatcher,
            webhooks=hooks,
        )
        # An injected database (tests) gets no background dispatcher: they deliver explicitly.
        stop = asyncio.Event()
        delivering = (
            asyncio.create_task(dispatcher.run(stop), name="mail-dispatcher")
            if settings.mail_dispatcher and database is None
            else None
        )
        hooking = (
            asyncio.create_task(hooks.run(stop), name="webhook-dispatcher")
            if delivering is not None
            else None
        )
        maintaining = (
            asyncio.create_task(
                db.keep_statistics(stop, SQLITE_STATISTICS_EVERY_SECONDS), name="sqlite-statistics"
            )
            if database is None
            else None
        )
        try:
            yield
        finally:
            if delivering is not None:
                await stop_in_time(delivering, stop)
            if hooking is not None:
                await stop_in_time(hooking, stop)
            if maintaining is not None:
                stop.set()
                await maintaining
            await dispatcher.close()
            if database is None:
                await db.dispose()

    app = FastAPI(
        title="access-api",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served with their assets by pages.install_docs: no CDN needed
        redoc_url=None,
    )
    errors.install(app)
    for router in (
        health.router,
        problems.router,
        auth.router,
        me.router,
        two_factor.router,
        tenants.router,
        users.router,
        authorizations.router,
        roles.catalog,
        roles.router,
        audit.router,
        invitations.router,
        invitations.public_router,
        api_keys.router,
        agents.router,
        agents.agent_router,
        two_factor_resets.router,
        two_factor_resets.public_router,
        webhooks.router,
        webhooks.catalog_router,
        access.router,
        policies.router,
    ):
        app.include_router(router)
    app.include_router(password_resets.public_router)
    app.include_router(password_resets.router)
    app.include_router(sessions.router)
    app.include_router(sessions.admin_router)
    app.include_router(passkeys.router)
    app.include_router(email_changes.router)
    if settings.hosted_pages:
        app.include_router(pages.router)
    pages.install_docs(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match"],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
        )
    app.include_router(metrics.router)
    app.add_middleware(metrics.RequestMetrics, registry=CollectorRegistry())
    app.add_middleware(RequestContext)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Every route refers to the Problem schema; make sure the document defines it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = errors.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
