"""Prometheus metrics by route template and status, at the cost of a counter and a histogram.

prometheus-fastapi-instrumentator found each request's route template by matching the path
against every route of the app again (about 60 regular expressions here) and kept five metric
families per request; `python -m bench.metrics_cost` measures both. FastAPI already puts the
matched route in the ASGI scope, so its template costs nothing here.

    http_requests_total{handler, method, status}        counter
    http_request_duration_seconds{handler, method}      histogram

`handler` is the route template (`/v1/tenants/{tenant_id}`), or "none" for a path no route
matched: a raw path would let any caller mint new series.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access_api.domain.errors import Unauthenticated
from access_api.errors import problem_responses
from access_api.services.traffic import Traffic

EXCLUDED = frozenset({"/metrics"})
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "none"


class RequestMetrics:
    """Pure ASGI middleware: a clock read at each end, two metric updates. The duration runs
    until the response has been sent, streamed bodies included. It also counts the requests in
    flight (`traffic`), which background delivery gives way to."""

    def __init__(
        self, app: ASGIApp, registry: CollectorRegistry, traffic: Traffic | None = None
    ) -> None:
        self.app = app
        self.registry = registry
        self.traffic = traffic or Traffic()
        self.requests = Counter(
            "http_requests_total",
            "Requests by route template, method and status",
            ("handler", "method", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request's arrival to its response's start, by route template",
            ("handler", "method"),
            buckets=BUCKETS,
            registry=registry,
        )
        # Labelled children are looked up once per (handler, method, status), then reused.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["metrics"] = self.registry
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        traffic = self.traffic
        traffic.started()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            traffic.ended()
            elapsed = time.perf_counter() - started
            handler = getattr(scope.get("route"), "path", None) or UNMATCHED
            if handler not in EXCLUDED:
                self._observe(handler, scope["method"], status, elapsed)

    def _observe(self, handler: str, method: str, status: int, elapsed: float) -> None:
        key = (handler, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(handler, method, str(status))
        counter.inc()
        timer = self._timers.get(key[:2])
        if timer is None:
            timer = self._timers[key[:2]] = self.duration.labels(handler, method)
        timer.observe(elapsed)


router = APIRouter(tags=["operations"])


async def _metrics_token(request: Request) -> None:
    """With ACCESS_API_METRICS_TOKEN set, /metrics answers only to that bearer token."""
    expected = request.app.state.access.settings.metrics_token
    if expected is None:
        return
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise Unauthenticated("/metrics needs the metrics bearer token")


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    description="Endpoint that serves Prometheus metrics.",
    dependencies=[Depends(_metrics_token)],
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **problem_responses(Unauthenticated),
    },
)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.scope["state"]["metrics"]
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
