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
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString
from starlette.types import Scope

from access_api.domain.errors import Unauthenticated
from access_api.errors import problem_responses
from access_api.services.traffic import Traffic

EXCLUDED = frozenset({"/metrics"})
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "none"
# The buckets' upper bounds as the exposition writes them ("le"), the last one +Inf.
_BOUNDS = (*(floatToGoString(bound) for bound in BUCKETS), "+Inf")  # type: ignore[no-untyped-call]


class Recorder:
    """The request metrics, recorded by the request middleware (main.RequestContext) as each
    request ends, with no layer of their own. The duration runs until the response has been
    sent, streamed bodies included. It also counts the requests in flight (`traffic`), which
    background delivery gives way to.

    Plain numbers, exposed as metric families when the registry is collected (a custom
    collector): prometheus_client's Counter and Histogram take a lock per update (three per
    request), and recording through them cost 4.4 us of /healthz's 38 in process, against
    about 1 this way. Every update and every collection runs on the event loop's thread (the
    /metrics route is a coroutine), so nothing here needs a lock."""

    def __init__(self, registry: CollectorRegistry, traffic: Traffic | None = None) -> None:
        self.registry = registry
        self.traffic = traffic or Traffic()
        self._requests: dict[tuple[str, str, int], int] = {}
        # (handler, method) -> per-bucket counts (not cumulative; the last one is +Inf), sum
        self._durations: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        registry.register(self)

    def ended(self, scope: Scope, status: int, elapsed: float) -> None:
        """One request has ended (its in-flight count included)."""
        self.traffic.ended()
        handler = getattr(scope.get("route"), "path", None) or UNMATCHED
        if handler in EXCLUDED:
            return
        method = scope["method"]
        key = (handler, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        timed = self._durations.get(key[:2])
        if timed is None:
            timed = self._durations[key[:2]] = ([0] * (len(BUCKETS) + 1), [0.0])
        timed[0][bisect_left(BUCKETS, elapsed)] += 1
        timed[1][0] += elapsed

    def collect(self) -> Iterator[Metric]:
        """The families as prometheus_client's Counter and Histogram would expose them."""
        requests = CounterMetricFamily(
            "http_requests",
            "Requests by route template, method and status",
            labels=("handler", "method", "status"),
        )
        for (handler, method, status), count in sorted(self._requests.items()):
            requests.add_metric((handler, method, str(status)), count)
        yield requests
        durations = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time from the request's arrival to its response's start, by route template",
            labels=("handler", "method"),
        )
        for (handler, method), (counts, total) in sorted(self._durations.items()):
            cumulative = list(accumulate(counts))
            durations.add_metric(
                (handler, method), list(zip(_BOUNDS, cumulative, strict=True)), total[0]
            )
        yield durations


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
