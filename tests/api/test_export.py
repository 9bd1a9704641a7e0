"""CSV export (seed 003): streamed, chosen columns in order, formulas neutralized, flat memory."""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import secrets
import time
import tracemalloc
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from access_api.db import create_engine
from access_api.repositories.orm import audit_events, outbox, users
from access_api.services.clock import SystemClock
from tests.api.conftest import Msp, World, assert_problem
from tests.conftest import settings_for
from tests.live import count_rows, inserts_refused, live_client, live_msp, state_of
from tests.oidc.servers import serving
from tests.users_bulk import add_users


class TestExport:
    async def test_exports_chosen_columns_in_order_with_a_header(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        tech = await world.user(msp.id, [(client["id"], ["read_only"], False)], email="t@x.com")
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/users/export",
            params={"columns": "email,roles,user_id"},
            headers=msp.admin.headers,
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0] == ["email", "roles", "user_id"]
        assert rows[1:] == [
            [msp.admin.email, "admin", str(msp.admin.user_id)],
            ["t@x.com", "", str(tech.user_id)],
        ]
        (event,) = await world.rows(
            sa.select(audit_events).where(audit_events.c.action == "users.exported")
        )
        assert event.changes["columns"]["after"] == ["email", "roles", "user_id"]

    async def test_all_columns_by_default_and_only_selected_ids(
        self, world: World, msp: Msp
    ) -> None:
        tech = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/users/export",
            params={"ids": str(tech.user_id)},
            headers=msp.admin.headers,
        )
        header, row = csv.reader(io.StringIO(response.text))
        assert header == [
            "user_id", "email", "first_name", "last_name", "roles", "two_factor", "status",
            "created_at", "last_login_at",
        ]  # fmt: skip
        assert row[:2] == [str(tech.user_id), tech.email]
        assert row[4:7] == ["read_only", "disabled", "active"]

    async def test_cells_a_spreadsheet_would_run_are_neutralized(
        self, world: World, msp: Msp
    ) -> None:
        evil = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        for field, value in (("first_name", "=cmd|' /C calc'!A0"), ("last_name", "@SUM(1+1)")):
            await world.client.patch(
                f"/v1/tenants/{msp.id}/users/{evil.user_id}",
                json={field: value},
                headers=msp.admin.headers,
            )
        await world.client.patch(
            f"/v1/tenants/{msp.id}/users/{evil.user_id}",
            json={"phone": "+1 415 555 0123"},
            headers=msp.admin.headers,
        )
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/users/export",
            params={"columns": "first_name,last_name", "ids": str(evil.user_id)},
            headers=msp.admin.headers,
        )
        _, row = csv.reader(io.StringIO(response.text))
        assert row == ["'=cmd|' /C calc'!A0", "'@SUM(1+1)"]

    async def test_every_cell_byte_for_byte_on_either_database(
        self, world: World, msp: Msp
    ) -> None:
        """The body as bytes: roles sorted and joined by ';', only those held here; a member
        with no role left is no_access; times in UTC to the microsecond; no login yet is an
        empty cell; a comma or a quote is quoted. Each backend runs this, so both give these
        very bytes (PostgreSQL renders them with COPY, SQLite with the same rules in SQL)."""
        role = await world.client.post(
            f"/v1/tenants/{msp.id}/roles",
            json={"key": "auditor", "name": "Auditor", "permissions": ["users.read"]},
            headers=msp.admin.headers,
        )
        assert role.status_code == 201, role.text
        client = await world.tenant(msp.id, msp.admin)
        world.clock.advance(timedelta(microseconds=120_034))
        below = await world.user(
            msp.id, [(client["id"], ["read_only"], False)], email="below@x.com", login=False
        )
        world.clock.advance(timedelta(seconds=1, microseconds=5))
        many = await world.user(
            msp.id,
            [(msp.id, ["read_only", "auditor", "admin"], True), (client["id"], ["admin"], False)],
            email="many@x.com",
        )
        roleless = await world.user(msp.id, [], email="roleless@x.com", login=False)
        named = await world.client.patch(
            f"/v1/tenants/{msp.id}/users/{below.user_id}",
            json={"first_name": 'Smith, "Jr"'},
            headers=msp.admin.headers,
        )
        assert named.status_code == 200, named.text
        # No API writes these (SCIM may leave a name empty): straight into the table.
        await world.connection.execute(
            sa.update(users)
            .where(users.c.id == roleless.user_id)
            .values(first_name="Two\rlines", last_name="")
        )
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/users/export",
            params={"ids": ",".join(str(u.user_id) for u in (below, many, roleless))},
            headers=msp.admin.headers,
        )
        first = "2026-11-22T09:00:00.120034+00:00"
        then = "2026-11-22T09:00:01.120039+00:00"
        expected = (
            "user_id,email,first_name,last_name,roles,two_factor,status,created_at,"
            "last_login_at\n"
            f'{below.user_id},below@x.com,"Smith, ""Jr""",below,,disabled,active,{first},\n'
            f"{many.user_id},many@x.com,Test,many,admin;auditor;read_only,disabled,active,"
            f"{then},{then}\n"
            f'{roleless.user_id},roleless@x.com,"Two\rlines","",,disabled,no_access,{then},\n'
        )
        assert response.content == expected.encode()
        # A NULL alone on its line is an empty line; an empty string is "" (COPY's rules).
        alone = await world.client.get(
            f"/v1/tenants/{msp.id}/users/export",
            params={"columns": "last_login_at", "ids": str(below.user_id)},
            headers=msp.admin.headers,
        )
        assert alone.content == b"last_login_at\n\n"
        alone = await world.client.get(
            f"/v1/tenants/{msp.id}/users/export",
            params={"columns": "last_name", "ids": str(roleless.user_id)},
            headers=msp.admin.headers,
        )
        assert alone.content == b'last_name\n""\n'
        # On the client, "admin" comes from two grants (inherited from the root and held
        # there): once in the cell, as the other roles.
        below_too = await world.client.get(
            f"/v1/tenants/{client['id']}/users/export",
            params={"columns": "email,roles", "ids": f"{below.user_id},{many.user_id}"},
            headers=msp.admin.headers,
        )
        assert below_too.status_code == 200, below_too.text
        assert below_too.content == (
            b"email,roles\nbelow@x.com,read_only\nmany@x.com,admin;auditor;read_only\n"
        )

    async def test_unknown_columns_and_ids_are_refused(self, world: World, msp: Msp) -> None:
        before = await world.snapshot()
        for params, field in (
            ({"columns": "email,password_hash"}, "columns"),
            ({"ids": "nope"}, "ids"),
        ):
            response = await world.client.get(
                f"/v1/tenants/{msp.id}/users/export", params=params, headers=msp.admin.headers
            )
            problem = assert_problem(response, 422, "validation_error")
            assert problem["errors"][0]["field"] == field
        assert await world.snapshot() == before

    async def test_needs_users_export(self, world: World, msp: Msp) -> None:
        reader = await world.user(msp.id, [(msp.id, ["read_only"], True)])
        response = await world.client.get(
            f"/v1/tenants/{msp.id}/users/export", headers=reader.headers
        )
        assert_problem(response, 403, "forbidden")


async def _drain(
    app: FastAPI, path: str, token: str, *, leave_after: int | None = None
) -> tuple[int, int, int]:
    """Call the ASGI app directly and throw each chunk away as it arrives, as a socket would:
    returns (status, bytes, rows) without ever holding the whole body. With leave_after, the
    client goes away once it has that many chunks of the body."""
    status, size, lines, chunks = 0, 0, 0, 0
    asked, finished = False, asyncio.Event()

    async def receive() -> dict[str, Any]:
        # The request once; then, like a client still connected, nothing until the end.
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, size, lines, chunks
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            size, lines, chunks = size + len(chunk), lines + chunk.count(b"\n"), chunks + 1
            if not message.get("more_body", False):
                finished.set()
            elif leave_after is not None and chunks >= leave_after:
                finished.set()
                await asyncio.sleep(3600)  # the socket is gone: nothing is written any more

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=60)
    return status, size, lines


class TestExportMemory:
    async def _peak(self, world: World, msp: Msp) -> tuple[int, int, int]:
        gc.collect()
        tracemalloc.start()
        try:
            status, size, lines = await _drain(
                world.app, f"/v1/tenants/{msp.id}/users/export", msp.admin.token
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert status == 200
        return peak, size, lines

    async def test_memory_stays_flat_whatever_the_number_of_users(
        self, world: World, msp: Msp
    ) -> None:
        client = await world.tenant(msp.id, msp.admin)
        now = world.clock.now()
        await add_users(world.connection, msp.id, client["id"], 5_000, now, prefix="a")
        small_peak, small_size, small_lines = await self._peak(world, msp)
        await add_users(world.connection, msp.id, client["id"], 20_000, now, prefix="b")
        large_peak, large_size, large_lines = await self._peak(world, msp)
        assert (small_lines, large_lines) == (5_002, 25_002)  # header, the admin, the users
        assert large_size > 4.5 * small_size
        # Five times the users, five times the bytes, and no more memory: a batch at a time.
        assert large_peak < 1.3 * small_peak + 1_000_000, (small_peak, large_peak)
        assert large_peak < 16_000_000, large_peak


class TestExportLeftEarly:
    @pytest.mark.parametrize("live_database", ["postgresql", "sqlite"], indirect=True)
    async def test_a_client_that_leaves_mid_export_leaves_nothing_behind(
        self, live_database: str
    ) -> None:
        """A client that leaves mid-export (PostgreSQL: COPY waiting for room in its queue;
        SQLite: a cursor between two batches) must not leave the statement running, a
        connection taken or broken, or an error unreported. Before, on PostgreSQL, the COPY's
        task waited forever for room in its queue and its connection was never given back."""
        async with live_client(live_database) as client:
            root, headers = await live_msp(client, f"left-{secrets.token_hex(3)}")
            engine = state_of(client).database.engine
            # On SQLite, a write transaction from the start: the server may be writing too.
            writer = engine.execution_options(sqlite_begin="IMMEDIATE")
            async with writer.begin() as connection:
                await add_users(connection, root, root, 20_000, SystemClock().now())
            # What the server's check does within a minute of an import (SQLite; taken on a
            # near-empty database, statistics make this export quadratic).
            await state_of(client).database.refresh_statistics()
            path = f"/v1/tenants/{root}/users/export"
            token = headers["Authorization"].removeprefix("Bearer ")
            loop = asyncio.get_running_loop()
            reported: list[dict[str, Any]] = []
            previous = loop.get_exception_handler()
            loop.set_exception_handler(lambda _loop, context: reported.append(context))
            try:
                status, _, lines = await _drain(client.app, path, token, leave_after=3)  # type: ignore[attr-defined]
                for _ in range(10):  # anything abandoned is finalized and collected
                    await asyncio.sleep(0.02)
                    gc.collect()
            finally:
                loop.set_exception_handler(previous)
            assert status == 200
            assert 1 < lines < 20_002  # the header and some lines, not everything
            assert reported == [], [(c.get("message"), c.get("exception")) for c in reported]
            if live_database.startswith("postgresql"):
                assert await _copies_running(engine) == 0
            # The pool is whole: exports and reads go on as before.
            for _ in range(3):
                again = await client.get(path, headers=headers)
                assert again.status_code == 200
                assert again.text.count("\n") == 20_002  # header, the admin, the users


async def _copies_running(engine: AsyncEngine, within_seconds: float = 5) -> int:
    """The export COPYs PostgreSQL still runs, once they had within_seconds to end."""
    deadline = time.monotonic() + within_seconds
    while True:
        async with engine.connect() as connection:
            running = (
                await connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                        " AND query LIKE 'COPY%' AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
        if running == 0 or time.monotonic() > deadline:
            return int(running)
        await asyncio.sleep(0.1)


class TestLongExport:
    async def test_an_export_may_outlast_the_per_statement_timeout(
        self, live_database: str
    ) -> None:
        """The statement timeout turns a stalled database into a quick 503; an export is one
        long statement by design and must not be cut off by it (PostgreSQL: COPY)."""
        engine = create_engine(settings_for(live_database))
        async with live_client(live_database, db_statement_timeout_seconds=0.05) as client:
            root, headers = await live_msp(client, "long-export")
            async with engine.begin() as connection:
                await add_users(connection, root, root, 30_000, SystemClock().now())
            await engine.dispose()
            lines = 0
            async with client.stream(
                "GET", f"/v1/tenants/{root}/users/export", headers=headers
            ) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_bytes():
                    lines += chunk.count(b"\n")
            assert lines == 30_002  # header, the admin, the users


class TestExportRecord:
    """An export is a GET that writes (its audit event and the event's webhook deliveries):
    both are kept or neither, on a database with real commits (read-only GETs run in
    autocommit on PostgreSQL; this one must not)."""

    @pytest.mark.parametrize("live_database", ["postgresql", "sqlite"], indirect=True)
    async def test_the_event_and_its_webhook_delivery_are_kept_together(
        self, live_database: str
    ) -> None:
        exported = audit_events.c.action == "users.exported"
        async with live_client(live_database, allow_http_webhooks=True) as client:
            msp_id, headers = await live_msp(client, f"exp-{secrets.token_hex(3)}")
            hook = await client.post(
                f"/v1/tenants/{msp_id}/webhooks",
                json={"url": "http://127.0.0.1:9/hook", "event_types": ["users.exported"]},
                headers=headers,
            )
            assert hook.status_code == 201, hook.text
            engine = state_of(client).database.engine
            with serving(live_database, allow_http_webhooks="true") as url:
                async with httpx.AsyncClient(base_url=url) as api:
                    path = f"/v1/tenants/{msp_id}/users/export"
                    async with inserts_refused(engine, "outbox"):
                        failed = await api.get(path, headers=headers)
                    assert failed.status_code == 500, failed.text
                    assert await count_rows(engine, audit_events, exported) == 0
                    assert await count_rows(engine, outbox) == 0

                    done = await api.get(path, headers=headers)
                    assert done.status_code == 200, done.text
                    assert "admin@" in done.text
                    assert await count_rows(engine, audit_events, exported) == 1
                    assert await count_rows(engine, outbox) == 1
