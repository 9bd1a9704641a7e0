"""What request metrics cost per request: the app without them, with
prometheus-fastapi-instrumentator (the previous choice), and with access_api.metrics.

    python -m bench.metrics_cost

CPU time of this process (other processes on a shared machine do not count), no network, no
database: ASGI calls straight into the real app (its full route table and middleware) for
`/healthz` and for a templated route refused before any query (401 without a credential), so
the difference between the variants is the instrumentation alone.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from access_api.main import RequestContext, create_app
from access_api.settings import Settings

PATHS = ("/healthz", "/v1/tenants/0b3a6a52-4c1e-4b8e-9a43-0f6c1f0e2b7d/users")
REQUESTS = 2000
ROUNDS = 5


def _app(directory: Path) -> FastAPI:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{directory / 'metrics-cost.db'}",
        secret_key="metrics-cost-" + "k" * 48,
        mail_dispatcher=False,
    )
    return create_app(settings)


def _without_metrics(app: FastAPI) -> FastAPI:
    """The same app, its RequestContext given no metrics recorder."""
    context: Any = RequestContext
    for middleware in app.user_middleware:
        if middleware.cls is context:
            middleware.kwargs = cast(Any, {**middleware.kwargs, "recorder": None})
    return app


def _with_instrumentator(app: FastAPI) -> FastAPI | None:
    try:
        from prometheus_client import CollectorRegistry  # noqa: PLC0415
        from prometheus_fastapi_instrumentator.middleware import (  # noqa: PLC0415
            PrometheusInstrumentatorMiddleware,
        )
    except ImportError:
        return None
    app = _without_metrics(app)
    options: dict[str, Any] = {
        "should_group_status_codes": False,
        "should_ignore_untemplated": False,
        "should_group_untemplated": True,
        "should_round_latency_decimals": False,
        "should_respect_env_var": False,
        "should_instrument_requests_inprogress": False,
        "excluded_handlers": ["/metrics"],
        "body_handlers": [],
        "round_latency_decimals": 4,
        "env_var_name": "ENABLE_METRICS",
        "inprogress_name": "http_requests_inprogress",
        "inprogress_labels": False,
        "registry": CollectorRegistry(),
    }
    context: Any = RequestContext
    at = next(i for i, m in enumerate(app.user_middleware) if m.cls is context)
    app.user_middleware.insert(at + 1, Middleware(PrometheusInstrumentatorMiddleware, **options))
    return app


async def _per_request_us(app: ASGIApp, path: str) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip

    for _ in range(200):  # warm up: the middleware stack is built on the first call
        await app(scope(), receive, send)
    started = time.process_time()
    for _ in range(REQUESTS):
        await app(scope(), receive, send)
    return (time.process_time() - started) / REQUESTS * 1e6


async def measure() -> dict[str, Any]:
    variants: dict[str, Callable[[FastAPI], FastAPI | None]] = {
        "lean": lambda app: app,
        "none": _without_metrics,
        "instrumentator": _with_instrumentator,
    }
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        apps: dict[str, FastAPI] = {}
        for name, variant in variants.items():
            app = variant(_app(Path(directory)))
            if app is None:
                report[name] = {"skipped": "prometheus-fastapi-instrumentator is not installed"}
            else:
                apps[name] = app
        async with AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            # Interleaved rounds, the best of each: a shared machine's noise only adds time.
            best: dict[str, dict[str, float]] = {name: {} for name in apps}
            for _ in range(ROUNDS):
                for name, app in apps.items():
                    for path in PATHS:
                        took = await _per_request_us(app, path)
                        best[name][path] = min(best[name].get(path, took), took)
            for name, figures in best.items():
                report[name] = {path: round(us, 1) for path, us in figures.items()}
    base = report["none"]
    for name in ("instrumentator", "lean"):
        figures = report[name]
        if "skipped" not in figures:
            figures["added_us"] = {path: round(figures[path] - base[path], 1) for path in PATHS}
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure()), indent=2))
