"""HTTP conventions every route follows: problems, idempotency, request ids, health, metrics."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import fastapi.routing
import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import iter_route_contexts
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from access_api.db import Database
from access_api.main import create_app
from access_api.repositories.orm import audit_events, idempotency_keys, tenants
from access_api.routing import TransactionalRoute
from tests.api.conftest import Msp, World, assert_problem
from tests.conftest import settings_for
from tests.mail import SmtpServer


class TestProblems:
    async def test_unknown_routes_and_methods_are_problems(self, world: World) -> None:
        assert_problem(await world.client.get("/v1/nowhere"), 404, "not_found")
        response = await world.client.delete("/healthz")
        assert_problem(response, 405, "method_not_allowed")

    async def test_malformed_json_is_a_validation_problem(self, world: World, msp: Msp) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            content=b"{not json",
            headers={**msp.admin.headers, "Content-Type": "application/json"},
        )
        assert_problem(response, 422, "validation_error")

    async def test_a_malformed_tenant_id_is_a_validation_problem(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.get("/v1/tenants/not-a-uuid", headers=msp.admin.headers)
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["field"] == "path.tenant_id"

    async def test_every_problem_type_is_documented(self, world: World) -> None:
        catalog = (await world.client.get("/problems")).json()
        codes = {entry["code"] for entry in catalog}
        assert {"not_found", "last_admin", "validation_error", "database_unavailable"} <= codes
        one = await world.client.get("/problems/last_admin")
        assert one.json() == {
            "code": "last_admin",
            "status": 409,
            "title": "The account must keep at least one administrator",
        }

    async def test_answers_carry_a_request_id_and_are_not_cached(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.get(
            f"/v1/tenants/{msp.id}",
            headers={**msp.admin.headers, "X-Request-ID": "trace-42"},
        )
        assert response.headers["x-request-id"] == "trace-42"
        assert response.headers["cache-control"] == "no-store"
        missing = await world.client.get(
            "/v1/tenants/00000000-0000-0000-0000-000000000000", headers=msp.admin.headers
        )
        assert missing.json()["request_id"] == missing.headers["x-request-id"]


class TestCommitBeforeAnswer:
    async def test_a_failed_commit_is_never_a_false_success(
        self, world: World, msp: Msp, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def lost_connection(session: AsyncSession) -> None:
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost"))

        before = await world.snapshot()
        monkeypatch.setattr(AsyncSession, "commit", lost_connection)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={"kind": "client", "name": "Acme", "domain_prefix": "acme-lost"},
            headers=msp.admin.headers,
        )
        monkeypatch.undo()
        assert_problem(response, 503, "database_unavailable")
        assert await world.snapshot() == before
        assert await world.count(audit_events, audit_events.c.action == "tenant.created") == 1


class TestIdempotency:
    async def test_a_retry_with_the_same_key_replays_the_first_answer(
        self, world: World, msp: Msp
    ) -> None:
        url = f"/v1/tenants/{msp.id}/clients"
        body = {"kind": "client", "name": "Acme", "domain_prefix": "acme-idem"}
        headers = {**msp.admin.headers, "Idempotency-Key": "create-acme-1"}
        first = await world.client.post(url, json=body, headers=headers)
        again = await world.client.post(url, json=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotent-replayed"] == "true"
        assert await world.count(tenants, tenants.c.domain_prefix == "acme-idem") == 1

    async def test_the_same_key_with_another_body_is_refused(self, world: World, msp: Msp) -> None:
        headers = {**msp.admin.headers, "Idempotency-Key": "create-2"}
        await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={"kind": "client", "name": "Acme", "domain_prefix": "acme-k2"},
            headers=headers,
        )
        before = await world.snapshot()
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={"kind": "client", "name": "Other", "domain_prefix": "other-k2"},
            headers=headers,
        )
        assert_problem(response, 422, "idempotency_key_reused")
        assert await world.snapshot() == before

    async def test_a_refusal_is_replayed_too(self, world: World, msp: Msp) -> None:
        await world.tenant(msp.id, msp.admin, prefix="taken")
        url = f"/v1/tenants/{msp.id}/clients"
        body = {"kind": "client", "name": "Dup", "domain_prefix": "taken"}
        headers = {**msp.admin.headers, "Idempotency-Key": "dup-1"}
        first = await world.client.post(url, json=body, headers=headers)
        assert_problem(first, 409, "domain_prefix_taken")
        again = await world.client.post(url, json=body, headers=headers)
        assert again.status_code == 409
        assert again.headers["idempotent-replayed"] == "true"

    async def test_keys_are_scoped_to_the_credential(self, world: World, msp: Msp) -> None:
        other = await world.msp(name="Other")
        for who, parent, prefix in ((msp.admin, msp.id, "one-k"), (other.admin, other.id, "two-k")):
            response = await world.client.post(
                f"/v1/tenants/{parent}/clients",
                json={"kind": "client", "name": "X", "domain_prefix": prefix},
                headers={**who.headers, "Idempotency-Key": "shared-key"},
            )
            assert response.status_code == 201
            assert "idempotent-replayed" not in response.headers

    async def test_stored_answers_are_sealed(self, world: World, msp: Msp) -> None:
        await world.client.post(
            "/v1/auth/login",
            json={"email": msp.admin.email, "password": msp.admin.password},
            headers={"Idempotency-Key": "login-1"},
        )
        (stored,) = await world.rows(sa.select(idempotency_keys.c.response))
        assert b"aas_" not in stored.response
        assert b"access_token" not in stored.response

    async def test_an_invalid_key_is_refused(self, world: World, msp: Msp) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json={"kind": "client", "name": "X", "domain_prefix": "bad-key"},
            headers={**msp.admin.headers, "Idempotency-Key": "x" * 300},
        )
        assert_problem(response, 422, "validation_error")


class TestOperations:
    async def test_health_and_readiness(self, world: World) -> None:
        assert (await world.client.get("/healthz")).json() == {"status": "ok"}
        assert (await world.client.get("/readyz")).json() == {"status": "ready"}

    async def test_metrics_count_requests_by_route_template_and_status(
        self, world: World, msp: Msp
    ) -> None:
        await world.client.get(f"/v1/tenants/{msp.id}", headers=msp.admin.headers)
        await world.client.get("/v1/tenants/not-a-uuid", headers=msp.admin.headers)
        text = (await world.client.get("/metrics")).text
        assert (
            'http_requests_total{handler="/v1/tenants/{tenant_id}",method="GET",status="200"} 1.0'
            in text
        )
        assert (
            'http_requests_total{handler="/v1/tenants/{tenant_id}",method="GET",status="422"} 1.0'
            in text
        )
        assert "http_request_duration_seconds_bucket" in text


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Spans of this process, kept in memory: the global tracer provider is set once per
    process (OpenTelemetry refuses a second), as an operator's setup would set it."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


class TestOpenTelemetry:
    """FastAPI's instrumentation runs only with ACCESS_API_OPENTELEMETRY: a configured provider
    alone records nothing (off, it costs nothing per request)."""

    @pytest.mark.parametrize("turned_on", [False, True])
    async def test_request_spans_only_when_turned_on(
        self,
        backend: tuple[str, str],
        connection: AsyncConnection,
        smtp: SmtpServer,
        spans: InMemorySpanExporter,
        turned_on: bool,
    ) -> None:
        spans.clear()
        app = create_app(
            settings_for(backend[1], smtp_url=smtp.url, opentelemetry=turned_on),
            database=Database.bound_to(connection),
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/healthz")).json() == {"status": "ok"}
                missing = await client.get("/v1/nowhere")
        assert missing.status_code == 404
        routes = {(span.attributes or {}).get("http.route") for span in spans.get_finished_spans()}
        if turned_on:
            assert "/healthz" in routes
        else:
            assert spans.get_finished_spans() == ()


class TestSolvedDirectly:
    """A route whose endpoint takes only the request (GET /v1/me) is called without FastAPI's
    handler; one that takes only a tenant's scope is answered without FastAPI solving its
    dependency (routing.TransactionalRoute._solved_directly) when the tenant id is written
    as FastAPI writes it (lowercase, hyphenated); written otherwise, FastAPI solves it. Both
    must answer alike, refusals included."""

    def test_the_routes_solved_so_are_the_ones_expected(self, world: World) -> None:
        routes = [
            getattr(context, "original_route", context)
            for context in iter_route_contexts(world.app.router.routes)
        ]
        solved = {
            (method, route.path, route._request_only, route._scope_only is not None)
            for route in routes
            if isinstance(route, TransactionalRoute)
            and (route._request_only or route._scope_only is not None)
            for method in route.methods or ()
        }
        assert solved == {
            ("GET", "/v1/tenants/{tenant_id}", None, True),
            ("GET", "/v1/me", "request", False),
        }

    async def test_both_ways_answer_alike(self, world: World, msp: Msp) -> None:
        client = await world.tenant(msp.id, msp.admin)
        outsider = await world.msp("Elsewhere MSP")
        reader = await world.user(msp.id, [(client["id"], ["read_only"], False)])
        cases = {
            "admin, the client": (client["id"], msp.admin.headers, 200),
            "admin, the root": (str(msp.id), msp.admin.headers, 200),
            "a reader of the client": (client["id"], reader.headers, 200),
            "a reader, the root": (str(msp.id), reader.headers, 404),
            "another MSP's admin": (client["id"], outsider.admin.headers, 404),
            "no credential": (client["id"], {}, 401),
            "an unknown key": (client["id"], {"Authorization": "Bearer aak_nothing"}, 401),
            "no such tenant": (str(uuid4()), msp.admin.headers, 404),
        }
        for case, (tenant_id, headers, status) in cases.items():
            direct = await world.client.get(f"/v1/tenants/{tenant_id}", headers=headers)
            solved = await world.client.get(f"/v1/tenants/{tenant_id.upper()}", headers=headers)
            assert direct.status_code == solved.status_code == status, case
            apart = ("instance", "request_id")  # the path as written; each request's own
            assert _without(direct.json(), apart) == _without(solved.json(), apart), case
            assert direct.headers.get("etag") == solved.headers.get("etag"), case
            if status == 200:
                assert direct.json()["id"] == tenant_id
                assert direct.headers["etag"]

    async def test_an_id_written_otherwise_is_solved_by_fastapi(
        self, world: World, msp: Msp
    ) -> None:
        braced = await world.client.get(f"/v1/tenants/{{{msp.id}}}", headers=msp.admin.headers)
        plain = await world.client.get(f"/v1/tenants/{msp.id.hex}", headers=msp.admin.headers)
        for response in (braced, plain):
            assert response.status_code == 200, response.text
            assert response.json()["id"] == str(msp.id)
        short = await world.client.get(f"/v1/tenants/{msp.id.hex[:-1]}", headers=msp.admin.headers)
        body = assert_problem(short, 422, "validation_error")
        assert body["errors"][0]["field"] == "path.tenant_id"


def _without(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in keys}


async def test_fastapi_solves_nothing_for_an_id_written_as_it_writes_it(
    world: World, msp: Msp, monkeypatch: pytest.MonkeyPatch
) -> None:
    solved: list[str] = []
    solve = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]

    async def counted(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    direct = await world.client.get(f"/v1/tenants/{msp.id}", headers=msp.admin.headers)
    assert direct.status_code == 200
    assert solved == []
    upper = str(msp.id).upper()
    assert (await world.client.get(f"/v1/tenants/{upper}", headers=msp.admin.headers)).is_success
    assert solved == [f"/v1/tenants/{upper}"]
    me = await world.client.get("/v1/me", headers=msp.admin.headers)
    assert me.status_code == 200
    assert me.headers["content-type"] == "application/json"
    assert me.json()["id"] == str(msp.admin.user_id)
    assert_problem(await world.client.get("/v1/me"), 401, "unauthenticated")
    assert solved == [f"/v1/tenants/{upper}"]
