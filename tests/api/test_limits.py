"""Limits and strict input: what the edge refuses before any route runs, on every route."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from access_api.db import Database
from access_api.main import create_app
from access_api.repositories.orm import tenants
from access_api.services.clock import FrozenClock
from tests.api.conftest import Msp, World, assert_problem
from tests.conftest import settings_for

LIMIT = 4096


@pytest.fixture
async def app(
    backend: tuple[str, str], connection: AsyncConnection, clock: FrozenClock
) -> AsyncIterator[FastAPI]:
    """The app with a small body limit and a metrics token."""
    app = create_app(
        settings_for(backend[1], max_body_bytes=LIMIT, metrics_token="m" * 40),
        database=Database.bound_to(connection),
        clock=clock,
    )
    async with app.router.lifespan_context(app):
        yield app


def client_body(**fields: Any) -> dict[str, Any]:
    return {"kind": "client", "name": "Acme", "domain_prefix": "acme", **fields}


class TestBodySize:
    async def test_a_body_over_the_limit_is_refused_from_its_content_length(
        self, world: World, msp: Msp
    ) -> None:
        before = await world.count(tenants)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json=client_body(street_address="x" * (LIMIT + 1)),
            headers=msp.admin.headers,
        )
        assert_problem(response, 413, "payload_too_large")
        assert await world.count(tenants) == before

    async def test_login_refuses_a_large_body_before_reading_it(self, world: World) -> None:
        response = await world.client.post(
            "/v1/auth/login",
            content=b'{"email": "a@b.example", "password": "' + b"p" * LIMIT + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert_problem(response, 413, "payload_too_large")

    async def test_a_streamed_body_is_cut_at_the_limit(self, world: World, msp: Msp) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"kind": "client", "name": "Acme", "domain_prefix": "acme", "street_address": "'
            for _ in range(LIMIT // 512 + 2):
                yield b"y" * 512
            yield b'"}'

        before = await world.count(tenants)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            content=chunks(),
            headers={**msp.admin.headers, "Content-Type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        assert_problem(response, 413, "payload_too_large")
        assert await world.count(tenants) == before


class TestStrictBodies:
    async def test_a_body_that_is_not_json_is_415(self, world: World, msp: Msp) -> None:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = dict(msp.admin.headers)
            if content_type:
                headers["Content-Type"] = content_type
            response = await world.client.post(
                f"/v1/tenants/{msp.id}/clients",
                content=b'{"kind": "client", "name": "Acme", "domain_prefix": "acme"}',
                headers=headers,
            )
            assert_problem(response, 415, "unsupported_media_type")

    async def test_invalid_utf8_is_a_validation_problem_not_a_400(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            content=b'{"kind": "client", "name": "\xff\xfe"}',
            headers={**msp.admin.headers, "Content-Type": "application/json"},
        )
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["code"] == "json_invalid"

    async def test_duplicated_keys_are_refused(self, world: World, msp: Msp) -> None:
        before = await world.count(tenants)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            content=b'{"kind": "client", "name": "Acme", "name": "Evil", "domain_prefix": "a1"}',
            headers={**msp.admin.headers, "Content-Type": "application/json"},
        )
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0] == {
            "field": "name",
            "code": "duplicate_key",
            "message": "appears more than once in the JSON object",
        }
        assert await world.count(tenants) == before

    async def test_lax_values_are_refused(self, world: World, msp: Msp) -> None:
        admin = await world.user(msp.id, [(msp.id, ["admin"], True)], login=False)
        for field, value in (("session_timeout_minutes", "60"), ("session_timeout_minutes", 60.5)):
            response = await world.client.patch(
                f"/v1/tenants/{msp.id}/users/{admin.user_id}",
                json={field: value},
                headers=msp.admin.headers,
            )
            body = assert_problem(response, 422, "validation_error")
            assert body["errors"][0]["field"] == field

    async def test_json_strings_still_carry_ids_dates_and_enums(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients", json=client_body(), headers=msp.admin.headers
        )
        assert response.status_code == 201, response.text


class TestControlCharacters:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("name", "Acme\x00"),
            ("name", "Acme\u202eevil"),
            ("name", "Ac\u200bme"),
            ("name", "Acme\nDental"),
            ("street_address", "1 Main St\x00"),
            ("domain_prefix", "acme\x00"),
        ],
    )
    async def test_are_refused_in_body_strings(
        self, world: World, msp: Msp, field: str, value: str
    ) -> None:
        before = await world.count(tenants)
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json=client_body(**{field: value}),
            headers=msp.admin.headers,
        )
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["field"] == field
        assert body["errors"][0]["code"] == "invalid_characters"
        assert await world.count(tenants) == before

    async def test_a_street_address_may_have_lines(self, world: World, msp: Msp) -> None:
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/clients",
            json=client_body(street_address="1 Main St\nSpringfield"),
            headers=msp.admin.headers,
        )
        assert response.status_code == 201, response.text

    async def test_the_login_email_with_nul_is_422_not_500(self, world: World) -> None:
        response = await world.client.post(
            "/v1/auth/login", json={"email": "admin\x00@x.example", "password": "whatever"}
        )
        assert_problem(response, 422, "validation_error")

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/tenants/{t}/users?q=a%00b",
            "/v1/tenants/{t}/clients?q=%01",
            "/v1/tenants/{t}/audit-events?action=user.created%00",
            "/v1/tenants/{t}/roles/admin%00",
        ],
    )
    async def test_are_refused_in_query_and_path_parameters(
        self, world: World, msp: Msp, path: str
    ) -> None:
        response = await world.client.get(path.format(t=msp.id), headers=msp.admin.headers)
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["code"] == "invalid_characters"


class TestOperations:
    async def test_metrics_need_the_configured_token(self, world: World) -> None:
        assert_problem(await world.client.get("/metrics"), 401, "unauthenticated")
        wrong = await world.client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert_problem(wrong, 401, "unauthenticated")
        right = await world.client.get("/metrics", headers={"Authorization": f"Bearer {'m' * 40}"})
        assert right.status_code == 200
        assert right.headers["content-type"].startswith("text/plain")

    async def test_readyz_is_503_while_the_schema_is_behind(
        self, world: World, connection: AsyncConnection
    ) -> None:
        nested = await connection.begin_nested()
        try:
            await connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
            response = await world.client.get("/readyz")
            assert_problem(response, 503, "schema_behind")
        finally:
            await nested.rollback()
        assert (await world.client.get("/readyz")).json() == {"status": "ready"}

    async def test_one_log_line_per_request_with_its_route_and_no_token(
        self, world: World, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="access_api.access"):
            await world.client.get(
                "/v1/invitations/preview?token=secret-invitation-token&x=1",
                headers={"X-Request-ID": "log-42"},
            )
        lines = [r for r in caplog.records if r.name == "access_api.access"]
        assert len(lines) == 1
        line: Any = lines[0]
        assert line.route == "/v1/invitations/preview"
        assert line.request_id == "log-42"
        assert line.path == "/v1/invitations/preview?token=[redacted]&x=1"
        assert isinstance(line.duration_ms, float)
        assert "secret-invitation-token" not in caplog.text

    async def test_a_bug_is_logged_with_the_request_id(
        self, world: World, app: FastAPI, caplog: pytest.LogCaptureFixture
    ) -> None:
        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("boom")

        with caplog.at_level(logging.ERROR):
            response = await world.client.get("/boom", headers={"X-Request-ID": "bug-7"})
        assert_problem(response, 500, "internal_error")
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors
        assert all(getattr(r, "request_id", None) == "bug-7" for r in errors)
        assert errors[0].exc_info is not None


class TestDocs:
    @pytest.mark.parametrize("page", ["/docs", "/redoc"])
    async def test_are_served_whole_from_the_service(self, world: World, page: str) -> None:
        html = (await world.client.get(page)).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert assets
        assert not [asset for asset in assets if "//" in asset], "an asset from another host"
        for asset in assets:
            response = await world.client.get(asset)
            assert response.status_code == 200, asset
        assert "fonts.googleapis" not in html


class TestMethods:
    async def test_405_lists_every_method_of_the_resource(self, world: World, msp: Msp) -> None:
        response = await world.client.put("/v1/me", headers=msp.admin.headers)
        assert_problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "GET, PATCH"

    async def test_another_method_on_an_action_path_is_405_not_a_bad_id(
        self, world: World, msp: Msp
    ) -> None:
        response = await world.client.patch(
            f"/v1/tenants/{msp.id}/invitations/delete",
            json={"ids": [str(msp.id)]},
            headers=msp.admin.headers,
        )
        assert_problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
        malformed = await world.client.get(
            f"/v1/tenants/{msp.id}/invitations/not-an-id", headers=msp.admin.headers
        )
        assert_problem(malformed, 422, "validation_error")


class TestTimes:
    @pytest.mark.parametrize(
        ("query", "field", "code"),
        [
            ("until=0.5", "until", "invalid_datetime"),
            ("since=1700000000", "since", "invalid_datetime"),
            ("since=2026-11-01T00:00:00", "since", "invalid_datetime"),
            ("until=2026-11-01", "until", "invalid_datetime"),
            ("since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "since", "invalid_range"),
        ],
    )
    async def test_the_audit_range_is_refused_when_unclear(
        self, world: World, msp: Msp, query: str, field: str, code: str
    ) -> None:
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/audit-events?{query}", headers=msp.admin.headers
        )
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["field"] == field
        assert body["errors"][0]["code"] == code

    async def test_a_range_with_offsets_is_read(self, world: World, msp: Msp) -> None:
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/audit-events",
            params={"since": "2026-11-01T00:00:00+02:00", "until": "2026-12-01T00:00:00Z"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["items"]


class TestCursors:
    async def test_a_cursor_is_bound_to_its_filters(self, world: World, msp: Msp) -> None:
        for prefix in ("acme-one", "acme-two", "acme-three"):
            await world.tenant(msp.id, by=msp.admin, prefix=prefix)
        url = f"/v1/tenants/{msp.id}/clients"
        first = await world.client.get(
            url, params={"limit": 1, "q": "acme"}, headers=msp.admin.headers
        )
        cursor = first.json()["next_cursor"]
        assert cursor
        same = await world.client.get(
            url, params={"limit": 1, "q": "acme", "cursor": cursor}, headers=msp.admin.headers
        )
        assert same.status_code == 200, same.text
        other = await world.client.get(
            url, params={"limit": 1, "q": "one", "cursor": cursor}, headers=msp.admin.headers
        )
        body = assert_problem(other, 422, "validation_error")
        assert body["errors"][0]["code"] == "invalid_cursor"
        assert "filters" in body["errors"][0]["message"]
