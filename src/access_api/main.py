"""The application factory: routers, error handlers, middleware, metrics and lifespan."""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access_api import collector, errors, metrics
from access_api.db import (
    SQLITE_STATISTICS_CHECK_SECONDS,
    SQLITE_STATISTICS_EVERY_SECONDS,
    Database,
)
from access_api.logs import redact_query, request_id_var
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
    scim,
    sessions,
    sso,
    tenants,
    two_factor,
    two_factor_resets,
    users,
    webhooks,
)
from access_api.routing import text_pattern
from access_api.scim import app as scim_app
from access_api.services.clock import Clock, SystemClock
from access_api.services.keyring import Keyring
from access_api.services.mailer import Dispatcher, stop_in_time
from access_api.services.passwords import Passwords
from access_api.services.traffic import Traffic
from access_api.services.webhooks import webhook_dispatcher
from access_api.settings import Settings, get_settings
from access_api.state import AppState

VERSION = "0.1.0"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class _RequestIds:
    """Ids for requests that bring none: 32 hex digits, this process's random half and a
    count. Unique without a system call per request (os.urandom's getrandom was 1.5% of
    GET /v1/me's samples under load); an id identifies a request in logs, it guards nothing."""

    def __init__(self) -> None:
        self._restart()
        # A worker forked from a process that made this one gets a prefix of its own.
        os.register_at_fork(after_in_child=self._restart)

    def _restart(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFFFFFF:016x}"


_new_request_id = _RequestIds()
access_log = logging.getLogger("access_api.access")

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
    carry tokens and personal data, so no cache may keep them. Log one line per request (its
    id, route template, status, duration; credentials in the query redacted), and a bug's
    traceback under the request's id, answered here as a 500 problem. Record its metrics
    (`metrics.Recorder`): here rather than in a middleware of their own, whose layer cost more
    than the recording (4.2 us of /healthz's 57 in process, for about 1.5 us of work)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int | None = None,
        recorder: metrics.Recorder | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else _new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        recorder = self.recorder
        if recorder is not None:
            state["metrics"] = recorder.registry
            recorder.traffic.started()
        token = request_id_var.set(request_id)
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Added to the raw list (no answer of this app sets the first two itself):
                # Starlette's MutableHeaders costs eight times as much (1.7 us against 0.2).
                headers = message["headers"] = list(message.get("headers", ()))
                headers += (
                    (b"x-request-id", request_id.encode("latin-1")),
                    (b"x-content-type-options", b"nosniff"),
                )
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
            await send(message)

        try:
            if self._declares_too_much(scope):
                # Refused before reading a byte. A streamed body is cut by FastAPI's limit
                # while read (max_body_size on each router, below).
                await errors.edge_problem(Request(scope), "payload_too_large")(
                    scope, receive, send_with_headers
                )
            else:
                await self.app(scope, receive, send_with_headers)
        except Exception as error:
            if status:
                raise
            await errors.internal_problem(Request(scope, receive), error)(
                scope, receive, send_with_headers
            )
        finally:
            elapsed = time.perf_counter() - started_at
            if recorder is not None:
                recorder.ended(scope, status or 500, elapsed)
            _log_request(scope, status, elapsed)
            request_id_var.reset(token)

    def _declares_too_much(self, scope: Scope) -> bool:
        if self.max_body_bytes is None:
            return False
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) > self.max_body_bytes
        return False


def _log_request(scope: Scope, status: int, seconds: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return  # nothing to build the line for (the log level is above INFO)
    route = scope.get("route")
    template = getattr(route, "path", None)
    query = redact_query(scope.get("query_string", b"").decode("latin-1"))
    target = scope["path"] + (f"?{query}" if query else "")
    duration_ms = round(seconds * 1000, 1)
    access_log.info(
        "%s %s %s %.1fms",
        scope["method"],
        target,
        status,
        duration_ms,
        extra={
            "method": scope["method"],
            "path": target,
            "client": (scope.get("client") or ("-",))[0],
            "route": template,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": scope["state"].get("request_id"),
        },
    )


READ_METHODS = frozenset({"GET", "HEAD"})
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class ReadRoutes(BaseRoute):
    """Every GET route of the included routers, copied, as one node at the head of the app's
    router, which only a GET or HEAD enters: it answers such a request with the route it was
    before, without passing through that route's included router, and lets every other
    request by without trying a single copy.

    FastAPI 0.165 keeps an included router as a node of its own that a request passes through
    (matched twice, its inclusion context applied), and wraps each of its routes in the body
    limit. A GET reads no body, and the node and the limit cost 13 us of the 63 us of the
    smallest request in process (/healthz: 32 us on a bare FastAPI app, 40 us through an
    included router, 46 us with the limit), about a twentieth of GET /v1/me under load. The
    copies, when they stood one by one at the head of the router, made every other request try
    them all first: 59 us for POST /v1/auth/login to find its route, 124 us for POST
    …/invitations.

    Within the node, the copies are kept by their path's first two segments: a request tries
    only those whose literal start its path has, in the order the included routers give them
    (a route can match no path that does not start as its own). So the order among GETs is
    kept, a GET path with no GET route goes on to the router (a 405 with every method of its
    path, as before: errors.allowed_methods), and another method on a GET route's path finds
    its own route or the original GET route, partially, as before. The copies stay out of the
    OpenAPI document and of `iter_route_contexts`: the included routes describe them.

    With OpenTelemetry on, FastAPI's routing is left as it is (no copies): a span is named
    after the route that FastAPI saw selected, which this node is not."""

    _KEPT = 512  # start sets of candidates remembered (paths are the client's to choose)

    def __init__(self, routes: list[APIRoute]) -> None:
        self.routes = routes
        # What each route's paths start with: its path up to its first parameter.
        self._starts = [route.path.split("{", 1)[0] for route in routes]
        self._candidates: dict[tuple[str, bool], list[APIRoute]] = {}

    def _candidates_for(self, path: str) -> list[APIRoute]:
        """The routes that can match a path, in their order: those whose start the path has,
        told by its first two segments (and whether more follow), without reading further."""
        parts = path.split("/", 3)
        start, more = "/".join(parts[:3]), len(parts) > 3
        found = self._candidates.get((start, more))
        if found is None:
            found = [
                route
                for route, its in zip(self.routes, self._starts, strict=True)
                if (
                    start.startswith(its)
                    if len(its) <= len(start)
                    else more and its.startswith(start + "/")
                )
            ]
            if len(self._candidates) < self._KEPT:
                self._candidates[start, more] = found
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in READ_METHODS:
            return Match.NONE, {}
        # Served under a prefix, which the path carries: try them all.
        candidates = self.routes if scope.get("root_path") else self._candidates_for(scope["path"])
        for route in candidates:
            match, child_scope = route.matches(scope)
            # A partial match (HEAD where only GET is declared) is left to the route itself,
            # in its included router, where it is the same partial match as here.
            if match is Match.FULL:
                return match, child_scope
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The copy that matched put itself in the scope (APIRoute.matches: "route").
        await scope["route"].handle(scope, receive, send)


def _reads_first(app: FastAPI, routers: list[APIRouter]) -> None:
    """Every GET route, also on the app's own router, ahead of everything (ReadRoutes)."""
    reads: list[APIRoute] = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and (route.methods or set()) <= READ_METHODS:
                if route.body_field is not None:
                    raise RuntimeError(f"GET {route.path} reads a body: it cannot skip the limit")
                read = copy.copy(route)
                read.include_in_schema = False
                reads.append(read)
    app.router.routes.insert(0, ReadRoutes(reads))


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    keyring = Keyring(settings.secret)  # fails fast on an unsafe secret
    traffic = Traffic()  # requests in flight, counted by RequestContext

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
        if delivering is not None:
            dispatcher.give_way_to(traffic, settings.outbox_give_way_seconds)
            hooks.give_way_to(traffic, settings.outbox_give_way_seconds)
        hooking = (
            asyncio.create_task(hooks.run(stop), name="webhook-dispatcher")
            if delivering is not None
            else None
        )
        maintaining = (
            asyncio.create_task(
                db.keep_statistics(
                    stop, SQLITE_STATISTICS_EVERY_SECONDS, SQLITE_STATISTICS_CHECK_SECONDS
                ),
                name="sqlite-statistics",
            )
            if database is None
            else None
        )
        collector.tune_for_serving(settings.gc_tuning)
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

    # /docs and /redoc with Swagger UI and ReDoc served from the package, not from a CDN: they
    # work on a network without the internet, and no third party sees who reads them.
    app = FastAPIOffline(
        title="access-api",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served with their assets by pages.install_docs: no CDN needed
        redoc_url=None,
        # FastAPI's OpenTelemetry instrumentation only when asked for: left on with no
        # provider configured, it asks on each request whether one has been (6 us of
        # /healthz's 66 in process, where Prometheus metrics are already kept).
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
    )
    errors.install(app)
    # GET /v1/me first: FastAPI tries the included routers in order, each with all its routes,
    # and the busiest route matched first saves a twentieth of its CPU. No two routers share a
    # path (the me router's are literal), so the order changes nothing else but the order of
    # openapi.yaml's paths.
    routers = [
        me.router,
        health.router,
        problems.router,
        auth.router,
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
        sso.router,
        sso.public_router,
        scim.router,
        password_resets.public_router,
        password_resets.router,
        sessions.router,
        sessions.admin_router,
        passkeys.router,
        email_changes.router,
    ]
    if settings.hosted_pages:
        routers.append(pages.router)
    for router in routers:
        # FastAPI's body limit, per route rather than app-wide: the app-wide one answers a
        # too-large Content-Length in plain text whatever the app sends, while a route's
        # refusal while reading reaches errors.py (HTTPException 413) as a problem.
        # RequestContext refuses a too-large Content-Length up front, as a problem.
        app.include_router(router, max_body_size=settings.max_body_bytes)
    if not settings.opentelemetry:
        _reads_first(app, routers)
    pages.install_docs(app)
    app.mount("/scim/v2", scim_app.create(app))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match"],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
        )
    app.include_router(metrics.router)
    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.max_body_bytes,
        recorder=metrics.Recorder(CollectorRegistry(), traffic),
    )
    _document_problems(app)
    return app


_BODY_PROBLEMS = {
    str(status): {
        "description": f"Problem: `{code}`",
        "content": {errors.PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for code, (status, _) in errors.EDGE_PROBLEMS.items()
    if code in ("payload_too_large", "unsupported_media_type")
}
_FREE_FORMATS = (None, "password")


def _state_text_rules(schema: dict[str, Any], field: str) -> None:
    """Add routing's text rule, as a JSON Schema pattern, to each free string in a schema."""
    free = schema.get("type") == "string" and schema.get("format") in _FREE_FORMATS
    if free and not {"enum", "const", "pattern"} & schema.keys():
        schema["pattern"] = text_pattern(field)
    for name, item in schema.get("properties", {}).items():
        _state_text_rules(item, name)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _state_text_rules(schema[key], field)
    for key in ("anyOf", "oneOf", "allOf"):
        for item in schema.get(key, []):
            _state_text_rules(item, field)


def _document_problems(app: FastAPI) -> None:
    """Every route refers to the Problem schema; make sure the document defines it. State
    what the edge enforces on every route: no control characters in strings (a `pattern`),
    and, on each operation with a body, 413 and 415."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = errors.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            for name, model in components.items():
                if name not in ("Problem", "ProblemItem"):  # answers echo what was sent
                    _state_text_rules(model, "")
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for parameter in operation.get("parameters", []):
                        _state_text_rules(parameter.get("schema", {}), parameter["name"])
                    if "requestBody" in operation:
                        operation["responses"].update(copy.deepcopy(_BODY_PROBLEMS))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
