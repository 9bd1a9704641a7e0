"""One unit of work per attempt of a request, whoever asks for it: the `Work` dependency, the
tenant scope (dependencies.requires, which takes it straight from the request) and GET /v1/me
share it, so a request's clock, events and hooks are one; a retried attempt, on a new session,
gets a new one. And the scope, which no longer solves `Bearer`, still documents the bearer
requirement on its routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request

from access_api.cli import openapi_document
from access_api.dependencies import work_of
from tests.conftest import sqlite_database
from tests.live import live_client, state_of


async def test_one_unit_of_work_per_attempt(tmp_path: Path) -> None:
    async with sqlite_database(tmp_path) as url, live_client(url) as client:
        state = state_of(client)
        request = Request(
            {
                "type": "http",
                "app": client.app,  # type: ignore[attr-defined]
                "method": "GET",
                "path": "/",
                "headers": [(b"user-agent", b"tests")],
                "query_string": b"",
                "client": ("127.0.0.1", 50000),
                "state": {},
            }
        )
        request.state.after_commit = []
        request.state.after_refusal = []
        async with state.database.reads() as first_session:
            request.state.session = first_session
            work = work_of(request)
            assert work_of(request) is work
            assert work.session is first_session
            assert work.user_agent == "tests"
            async with state.database.reads() as second_session:
                request.state.session = second_session  # the request's retry
                again = work_of(request)
                assert again is not work
                assert again.session is second_session
                assert work_of(request) is again


def test_routes_in_a_tenant_still_document_the_bearer_requirement() -> None:
    paths = openapi_document()["paths"]
    for path, method in (
        ("/v1/tenants/{tenant_id}", "get"),
        ("/v1/tenants/{tenant_id}", "patch"),
        ("/v1/tenants/{tenant_id}/users", "get"),
        ("/v1/tenants/{tenant_id}/invitations", "post"),
    ):
        assert paths[path][method]["security"] == [{"HTTPBearer": []}], (method, path)
