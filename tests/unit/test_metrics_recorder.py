"""The request metrics' recorder exposes what prometheus_client's Counter and Histogram would:
the same names, labels, cumulative `le` buckets (a bound counts values up to and including
it), count and sum."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from access_api.metrics import BUCKETS, Recorder
from access_api.services.traffic import Traffic

DURATIONS = (0.005, 0.0051, 0.3, 20.0, 0.0)


def _lines(registry: CollectorRegistry) -> set[str]:
    return {
        line
        for line in generate_latest(registry).decode().splitlines()
        if line and "_created" not in line
    }


def test_the_exposition_is_prometheus_clients() -> None:
    ours = CollectorRegistry()
    recorder = Recorder(ours, Traffic())
    theirs = CollectorRegistry()
    requests = Counter(
        "http_requests_total",
        "Requests by route template, method and status",
        ("handler", "method", "status"),
        registry=theirs,
    )
    duration = Histogram(
        "http_request_duration_seconds",
        "Time from the request's arrival to its response's start, by route template",
        ("handler", "method"),
        buckets=BUCKETS,
        registry=theirs,
    )
    route = SimpleNamespace(path="/v1/tenants/{tenant_id}")
    for status, elapsed in zip((200, 200, 404, 200, 500), DURATIONS, strict=True):
        recorder.traffic.started()
        recorder.ended({"route": route, "method": "GET"}, status, elapsed)
        requests.labels(route.path, "GET", str(status)).inc()
        duration.labels(route.path, "GET").observe(elapsed)
    recorder.traffic.started()
    recorder.ended({"method": "POST"}, 404, 0.01)  # no route matched
    requests.labels("none", "POST", "404").inc()
    duration.labels("none", "POST").observe(0.01)
    recorder.traffic.started()
    recorder.ended({"route": SimpleNamespace(path="/metrics"), "method": "GET"}, 200, 0.01)
    assert _lines(ours) == _lines(theirs)
    assert recorder.traffic.in_flight == 0
