"""The GET routes' copies at the head of the app's router (main.ReadRoutes): a GET or HEAD
finds exactly the route that trying every copy in order would find, whatever its path; every
other method passes by."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.routing import Match

from access_api.main import ReadRoutes

PATHS = (
    "/healthz",
    "/problems",
    "/problems/{code}",
    "/v1/me",
    "/v1/me/tenants",
    "/v1/mex",
    "/v1/tenants/{tenant_id}",
    "/v1/tenants/{tenant_id}/users",
    "/v1/tenants/{tenant_id}/users/{user_id}",
    "/v1/tenants/export",
    "/v1/{anything}/c",
    "/v1/tenants-archive/{name:path}",
)
SEGMENTS = ("", "v1", "me", "tenants", "mex", "users", "export", "c", "x", "tenants-archive")


def _routes() -> list[APIRoute]:
    router = APIRouter()
    for path in PATHS:

        async def endpoint() -> None:
            return None

        router.add_api_route(path, endpoint, methods=["GET"], name=path)
    return [route for route in router.routes if isinstance(route, APIRoute)]


def _scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": root_path + path, "root_path": root_path}


def _every_copy_in_turn(routes: list[APIRoute], scope: dict[str, Any]) -> str | None:
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route.path
    return None


def _found(node: ReadRoutes, scope: dict[str, Any]) -> str | None:
    match, child_scope = node.matches(scope)
    if match is Match.NONE:
        return None
    assert match is Match.FULL
    path: str = child_scope["route"].path
    return path


def _paths() -> list[str]:
    """Every path of up to four segments drawn from SEGMENTS, with or without a last slash."""
    paths = []
    for depth in range(1, 5):
        for parts in itertools.product(SEGMENTS, repeat=depth):
            paths.append("/" + "/".join(parts))
    return paths


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_finds_the_route_every_copy_tried_in_turn_finds(method: str) -> None:
    routes = _routes()
    node = ReadRoutes(routes)
    found_some = 0
    for path in _paths():
        for root_path in ("", "/api"):
            scope = _scope(method, path, root_path)
            expected = _every_copy_in_turn(routes, scope)
            assert _found(node, scope) == expected, (path, root_path)
            found_some += expected is not None
    # The paths do reach the routes; a HEAD none (FastAPI adds no HEAD to a GET route: that is
    # a partial match, which the node leaves to the route in its included router).
    assert found_some > 100 if method == "GET" else found_some == 0


def test_the_first_route_in_order_wins_where_two_match() -> None:
    node = ReadRoutes(_routes())
    # "/v1/{anything}/c" comes after "/v1/tenants/{tenant_id}" and "/v1/me/tenants": the order
    # of the included routers is kept whatever the path's start.
    assert _found(node, _scope("GET", "/v1/tenants/c")) == "/v1/tenants/{tenant_id}"
    assert _found(node, _scope("GET", "/v1/other/c")) == "/v1/{anything}/c"
    assert _found(node, _scope("GET", "/v1/tenants-archive/a/b/c")) == (
        "/v1/tenants-archive/{name:path}"
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_any_other_method_passes_by_without_a_match(method: str) -> None:
    node = ReadRoutes(_routes())
    for path in ("/v1/me", "/v1/tenants/1", "/healthz"):
        assert node.matches(_scope(method, path)) == (Match.NONE, {})


def test_what_it_remembers_is_bounded_whatever_paths_clients_choose() -> None:
    node = ReadRoutes(_routes())
    for n in range(ReadRoutes._KEPT * 3):
        assert _found(node, _scope("GET", f"/v1/unknown-{n}/c")) == "/v1/{anything}/c"
    assert len(node._candidates) == ReadRoutes._KEPT
