"""The measures of SPEC §6, each returning plain figures for the report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.db import create_engine
from access_api.domain import access
from access_api.domain.access import Caller
from access_api.domain.audit import ActorKind
from access_api.domain.users import EXPORT_COLUMNS
from access_api.repositories import sqlite_csv
from access_api.repositories.scoped import ScopedRepository
from access_api.repositories.tenants import TenantRepository
from access_api.repositories.users import UserRepository
from access_api.services.keyring import Keyring
from bench.harness import Load, Server, cpu_seconds, rss_sampler, wrk_async
from bench.world import ADMIN_EMAIL, ADMIN_PASSWORD, Msp, settings_for

DURATION = float(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = 16


async def throughput(server: Server, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """Requests per second at CONNECTIONS in flight, after a short warm-up."""
    url = server.base_url + path
    await wrk_async(url, seconds=2, connections=CONNECTIONS, headers=headers)
    cpu_before = server.cpu_seconds()
    async with rss_sampler(server) as rss:
        load = await wrk_async(url, seconds=DURATION, connections=CONNECTIONS, headers=headers)
    cpu = server.cpu_seconds() - cpu_before
    if load.non_2xx or load.errors:
        raise RuntimeError(f"{server.name} {path}: {load.non_2xx} non-2xx, {load.errors} errors")
    return {
        **load.as_dict(),
        # The server's own CPU per request: comparable across runs on a busy shared machine,
        # where requests per second are not.
        "cpu_ms_per_request": round(cpu * 1000 / max(load.requests, 1), 3),
        "rss_max_mb": round(max(rss), 1),
    }


ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


async def in_turn(
    ceiling: Server,
    ceiling_path: str,
    routes: dict[str, tuple[Server, str, dict[str, str]]],
    rounds: int = ROUNDS,
) -> dict[str, dict[str, Any]]:
    """The ceiling and each of our routes measured in turn, `rounds` times over (ceiling,
    route, route, ceiling, route, route, ...), so each ratio is taken between measures seconds
    apart rather than one measure of each a minute apart: on a shared machine, whose speed
    drifts by a tenth or more within a minute, a single pair measures the drift as much as
    the code. Each figure is the median of its rounds, each ratio the median of the rounds'
    ratios; every round's requests per second are kept."""
    runs: dict[str, list[dict[str, Any]]] = {"ceiling": [], **{name: [] for name in routes}}
    for _ in range(rounds):
        runs["ceiling"].append(await throughput(ceiling, ceiling_path, {}))
        for name, (server, path, headers) in routes.items():
            runs[name].append(await throughput(server, path, headers))
    figures = {name: _median_of(loads) for name, loads in runs.items()}
    for name in routes:
        pairs = list(zip(runs["ceiling"], runs[name], strict=True))
        figures[name]["ratio_to_ceiling"] = ratio(
            statistics.median(ours["rps"] / theirs["rps"] for theirs, ours in pairs), 1
        )
        figures[name]["cpu_ratio_to_ceiling"] = ratio(
            statistics.median(
                theirs["cpu_ms_per_request"] / ours["cpu_ms_per_request"] for theirs, ours in pairs
            ),
            1,
        )
    return figures


def _median_of(loads: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one throughput measure as one: medians, the largest RSS, the sums of counts."""
    return {
        "rounds": len(loads),
        "rounds_rps": [load["rps"] for load in loads],
        "requests": sum(load["requests"] for load in loads),
        "seconds": round(sum(load["seconds"] for load in loads), 2),
        **{
            key: round(statistics.median(load[key] for load in loads), 3)
            for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request")
        },
        "non_2xx": sum(load["non_2xx"] for load in loads),
        "errors": sum(load["errors"] for load in loads),
        "rss_max_mb": max(load["rss_max_mb"] for load in loads),
    }


async def paced(
    server: Server, path: str, headers: dict[str, str], every: float = 0.024, seconds: float = 6
) -> dict[str, Any]:
    """One request at a time, one every `every` seconds (about the pace at which a login
    storm's event loop sees each of its logins), and its event-loop thread's CPU per request,
    beside the same back to back from one client. Not a §6 row: it shows what a request costs
    a loop woken for it alone, caches cold, on this machine; a login pays it whatever its
    own code."""
    loop_thread = f"{server.pid}/task/{server.pid}"
    figures: dict[str, Any] = {"every_ms": round(every * 1000)}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        for _ in range(200):  # warm-up
            (await client.get(path, headers=headers)).raise_for_status()
        for label, pause in (("paced", every), ("back_to_back", 0.0)):
            requests, before = 0, cpu_seconds(loop_thread)
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                (await client.get(path, headers=headers)).raise_for_status()
                requests += 1
                if pause:
                    await asyncio.sleep(pause)
            spent = cpu_seconds(loop_thread) - before
            figures[f"{label}_loop_cpu_ms_per_request"] = round(spent * 1000 / requests, 3)
    return figures


async def list_page_p50(server: Server, msp: Msp) -> dict[str, Any]:
    """One request at a time, so p50 is the latency of the query plan, not of a queue."""
    path = f"/v1/tenants/{msp.root_id}/users?sort=last_name&two_factor=disabled&limit=50"
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.get(path, headers=msp.api_key)
        answer.raise_for_status()
        assert len(answer.json()["items"]) == 50, answer.text
        cursor = answer.json()["next_cursor"]
        deeper = await client.get(path + f"&cursor={cursor}", headers=msp.api_key)
        deeper.raise_for_status()
    load = await wrk_async(server.base_url + path, seconds=5, connections=1, headers=msp.api_key)
    return {"path": path, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "requests": load.requests}


SCIM_PAGE = 100


async def scim_pages(server: Server, msp: Msp, tenant_id: UUID, size: int) -> dict[str, Any]:
    """A SCIM Users page of 100 of a directory of `size`, one request at a time: the first page
    (startIndex=1), a cursor page from the middle (RFC 9865), and the last page by startIndex,
    which skips over the index (given as information: only a cursor promises a flat cost)."""
    users = f"/scim/v2/tenants/{tenant_id}/Users"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        middle = await client.get(f"{users}?startIndex={size // 2}&count=1", headers=msp.api_key)
        middle.raise_for_status()
        cursor = UUID(middle.json()["Resources"][0]["id"]).hex
        paths = {
            "first": f"{users}?startIndex=1&count={SCIM_PAGE}",
            "cursor": f"{users}?count={SCIM_PAGE}&cursor={cursor}",
            "deep_start_index": f"{users}?startIndex={max(size - SCIM_PAGE + 1, 1)}"
            f"&count={SCIM_PAGE}",
        }
        for name, path in paths.items():
            answer = await client.get(path, headers=msp.api_key)
            answer.raise_for_status()
            page = answer.json()
            if page["totalResults"] != size or len(page["Resources"]) != SCIM_PAGE:
                raise RuntimeError(
                    f"SCIM {name}: {page['totalResults']} in all and "
                    f"{len(page['Resources'])} on the page, expected {size} and {SCIM_PAGE}"
                )
    figures: dict[str, Any] = {"directory": size}
    for name, path in paths.items():
        cpu_before = server.cpu_seconds()
        load = await wrk_async(
            server.base_url + path, seconds=5, connections=1, headers=msp.api_key
        )
        cpu = server.cpu_seconds() - cpu_before
        if load.non_2xx or load.errors:
            raise RuntimeError(f"SCIM {name}: {load.non_2xx} non-2xx, {load.errors} errors")
        figures[name] = {
            "path": path,
            "p50_ms": load.p50_ms,
            "p99_ms": load.p99_ms,
            "requests": load.requests,
            # The server's own CPU per page: steadier than latency on a shared machine (the
            # database's share of the work is not in it).
            "cpu_ms_per_request": round(cpu * 1000 / max(load.requests, 1), 3),
        }
    return figures


async def export(server: Server, msp: Msp, expected_rows: int) -> dict[str, Any]:
    """Stream the whole export, discarding it as it arrives; the server's RSS is sampled.
    First a warm-up, as for every measure: the same route for one row. The export is the
    first request of a freshly started server, whose first request builds FastAPI's routes,
    opens a connection and compiles statements (about 0.15 s of CPU, once per process); on
    SQLite it also waits for the statistics refresh the server starts with (ANALYZE holds
    the write lock the export's audit event needs: seconds at 1M users)."""
    rows = 0
    path = f"/v1/tenants/{msp.root_id}/users/export"
    # RSS growth counts from before the warm-up: what the first request builds is not hidden.
    rss_before = server.rss_mb()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=600) as client:
        cpu_before = server.cpu_seconds()
        warm = await client.get(path, params={"ids": str(msp.admin_id)}, headers=msp.api_key)
        warm.raise_for_status()
        warm_up_cpu = server.cpu_seconds() - cpu_before
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=600) as client,
        rss_sampler(server, every=0.02) as rss,
    ):
        started = time.perf_counter()
        cpu_before = server.cpu_seconds()
        async with client.stream("GET", path, headers=msp.api_key) as answer:
            answer.raise_for_status()
            async for chunk in answer.aiter_raw():
                rows += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu_before
    rows -= 1  # the header
    if rows != expected_rows:
        raise RuntimeError(f"export gave {rows} rows, expected {expected_rows}")
    return {
        "rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        # Rows per second of the server's own CPU: what the rate would be with a core to itself
        # (PostgreSQL's work for the query is not in it).
        "rows_per_server_cpu_s": round(rows / max(cpu, 1e-9)),
        "warm_up_cpu_s": round(warm_up_cpu, 2),
        "rss_before_mb": round(rss_before, 1),
        "rss_growth_mb": round(max(rss) - rss_before, 1),
    }


async def export_floor(url: str, msp: Msp, passes: int = 2) -> dict[str, Any]:
    """The least an export of these rows can cost on this machine: the export's own query
    (the service's SQL for the whole tree, every column) run straight on the driver in this
    process, with nothing else: no HTTP, no session, no SQLAlchemy. On PostgreSQL its COPY,
    its output counted and dropped; on SQLite the query's rows fetched in batches, then again
    with the service's own line rendering (sqlite_csv) and encoding. The best of `passes`."""
    engine = create_engine(settings_for(url))
    try:
        async with AsyncSession(engine) as session:
            root = await TenantRepository(session).get(msp.root_id)
            if root is None:
                raise RuntimeError("the bench's MSP has no root tenant")
            sql = UserRepository(session).export_sql(
                root, columns=EXPORT_COLUMNS, ids=None, now=datetime.now(UTC)
            )
    finally:
        await engine.dispose()
    if url.startswith("postgresql"):
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        rates = [await _copy_alone(dsn, sql) for _ in range(passes)]
        return {"copy_alone_rows_per_s": max(rates)}
    path = url.split(":///", 1)[1]
    alone, rendered = [], []
    for _ in range(passes):
        alone.append(await asyncio.to_thread(_sqlite_rows_per_s, path, sql, False))
        rendered.append(await asyncio.to_thread(_sqlite_rows_per_s, path, sql, True))
    return {"query_alone_rows_per_s": max(alone), "query_and_lines_rows_per_s": max(rendered)}


async def _copy_alone(dsn: str, sql: str) -> int:
    rows = 0

    async def sink(chunk: bytes) -> None:
        nonlocal rows
        rows += chunk.count(b"\n")

    connection = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await connection.copy_from_query(sql, output=sink, format="csv", header=True)
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return round((rows - 1) / elapsed)


def _sqlite_rows_per_s(path: str, sql: str, lines: bool, batch: int = 1000) -> int:
    lines_of = sqlite_csv.lines_for(EXPORT_COLUMNS)
    connection = sqlite3.connect(path)
    try:
        rows = 0
        started = time.perf_counter()
        cursor = connection.execute(sql)
        while partition := cursor.fetchmany(batch):
            rows += len(partition)
            if lines:
                rendered = lines_of(partition)
                rendered.append("")
                "\n".join(rendered).encode()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    return round(rows / elapsed)


async def permission_decision(
    url: str, msp: Msp, rounds: int = 2000, dsn: str | None = None
) -> dict[str, Any]:
    """The decision alone, in this process, as a request in a tenant's context makes it
    (auth.credentials.in_tenant): the API key's digest, the one statement that reads the key
    and the scope's facts together (repositories/scoped.py, on the fast path), and the pure
    domain judgement, for the client two levels below the root where the admin's grant lies.
    In autocommit, as the service runs its reads (Database.reads): one round trip, no BEGIN.

    With dsn, beside each decision the same statement alone, prepared on a connection of its
    own straight on asyncpg (no pool, no decoding, no judgement), taken in turn with the
    decisions so both see the same machine: what the database and the transport alone cost,
    the part of the decision no code of ours can take away."""
    engine = create_engine(settings_for(url)).execution_options(isolation_level="AUTOCOMMIT")
    keyring = Keyring(settings_for(url).secret)
    token = msp.api_key["Authorization"].removeprefix("Bearer ")
    timings: list[float] = []
    alone: list[float] = []
    statement = await _statement_alone(engine, dsn, keyring.digest(token), msp) if dsn else None
    try:
        async with AsyncSession(engine) as session:
            scoped = ScopedRepository(session)
            for n in range(rounds + 200):
                now = datetime.now(UTC)
                started = time.perf_counter()
                found = await scoped.by_api_key(keyring.digest(token), msp.client_id, now)
                if found is None or not found.member:
                    raise RuntimeError("the bench's API key does not reach the client")
                caller = Caller(
                    user_id=found.key.user_id,
                    email=found.email,
                    credential=ActorKind.API_KEY,
                    credential_id=found.key.id,
                    root_id=msp.root_id,
                    ip="127.0.0.1",
                )
                access.require(access.resolve_scope(caller, found.facts, now), "tenants.read")
                if n >= 200:  # warm-up
                    timings.append((time.perf_counter() - started) * 1000)
                await session.rollback()
                if statement is not None:
                    started = time.perf_counter()
                    if len(await statement.fetch()) != 1:
                        raise RuntimeError("the decision's statement alone found no key")
                    if n >= 200:
                        alone.append((time.perf_counter() - started) * 1000)
    finally:
        if statement is not None:
            await statement.close()
        await engine.dispose()
    figures: dict[str, Any] = {
        "rounds": rounds,
        "depth": 2,
        "statement": "credential and scope together (repositories/scoped.py)",
        **_percentiles(timings),
    }
    if alone:
        figures["statement_alone"] = _percentiles(alone)
    return figures


def _percentiles(timings: list[float]) -> dict[str, float]:
    timings = sorted(timings)
    return {
        "p50_ms": round(statistics.median(timings), 3),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 3),
    }


@dataclass
class _Alone:
    """A statement prepared with its arguments on a connection of its own."""

    connection: asyncpg.Connection
    prepared: Any
    arguments: list[Any]

    async def fetch(self) -> list[Any]:
        return list(await self.prepared.fetch(*self.arguments))

    async def close(self) -> None:
        await self.connection.close()


async def _statement_alone(engine: Any, dsn: str, digest: str, msp: Msp) -> _Alone:
    """The decision's statement as the service sends it (its SQL and its processed arguments,
    from repositories/fast.py), prepared once on a plain asyncpg connection."""
    from access_api.repositories.scoped import _BY_API_KEY  # noqa: PLC0415

    compiled = _BY_API_KEY._compile(engine.sync_engine.dialect)
    values = {**compiled.fixed, "digest": digest, "tenant_id": msp.client_id}
    values["now"] = datetime.now(UTC)
    arguments = []
    for name in compiled.names:
        process = compiled.bind[name]
        value = values[name]
        arguments.append(process(value) if process is not None and value is not None else value)
    connection = await asyncpg.connect(dsn, timeout=5, server_settings={"jit": "off"})
    return _Alone(connection, await connection.prepare(compiled.sql), arguments)


async def round_trip(dsn: str, rounds: int = 3000) -> dict[str, Any]:
    """One round trip to PostgreSQL and nothing else (`SELECT 1` on asyncpg), in this process:
    wall time and CPU per round trip. What every statement of a request pays on top of its
    own work, and what the transport (TCP on loopback, or a Unix socket) decides."""
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        for _ in range(200):  # warm-up
            await connection.fetchval("SELECT 1")
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            await connection.fetchval("SELECT 1")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await connection.close()
    return {
        "rounds": rounds,
        "wall_us": round(wall * 1e6 / rounds, 1),
        "cpu_us": round(cpu * 1e6 / rounds, 1),
    }


async def login_storm(
    server: Server,
    dsn: str | None = None,
    probe_every: float | None = None,
    path: str = "/v1/auth/login",
) -> dict[str, Any]:
    """Correct logins as fast as they come, while /healthz is probed one request at a time:
    back to back by wrk (SPEC §6), or, with probe_every, one probe every so many seconds.
    Beside the rates, where the CPU went per login: the server's event-loop thread (everything
    but the hash, and the /healthz probes), its hashing threads, and PostgreSQL's backends: on
    a shared machine these say what the rates cannot (what is left for hashing). A probe back
    to back is a load of its own (thousands of requests a second on the same two cores)."""
    body = f'{{"email": "{ADMIN_EMAIL}", "password": "{ADMIN_PASSWORD}"}}'
    headers = {"Content-Type": "application/json"}
    loop_thread = f"{server.pid}/task/{server.pid}"
    backends_before = _cpu_of(await _backends(dsn)) if dsn else {}
    cpu_before = server.cpu_seconds(), cpu_seconds(loop_thread)
    async with rss_sampler(server) as rss:
        logins, health = await asyncio.gather(
            wrk_async(
                server.base_url + path,
                seconds=DURATION,
                connections=8,
                method="POST",
                body=body,
                headers=headers,
            ),
            _probe(server.base_url + "/healthz", probe_every),
        )
    cpu_after = server.cpu_seconds(), cpu_seconds(loop_thread)
    # Backends the pool opened during the storm count from zero.
    backends_after = _cpu_of(await _backends(dsn)) if dsn else {}
    postgres = sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in backends_after.items())
    if logins.non_2xx or logins.errors:
        raise RuntimeError(f"login storm: {logins.non_2xx} non-2xx, {logins.errors} errors")
    per_login = [
        round((after - before) * 1000 / max(logins.requests, 1), 2)
        for before, after in zip(cpu_before, cpu_after, strict=True)
    ]
    return {
        "logins_per_s": logins.rps,
        "login_p99_ms": logins.p99_ms,
        "healthz_p50_ms": health.p50_ms,
        "healthz_p99_ms": health.p99_ms,
        "healthz_requests": health.requests,
        "server_cpu_ms_per_login": per_login[0],
        "event_loop_cpu_ms_per_login": per_login[1],
        "hashing_threads_cpu_ms_per_login": round(per_login[0] - per_login[1], 2),
        "postgres_cpu_ms_per_login": (
            round(postgres * 1000 / max(logins.requests, 1), 2) if dsn else None
        ),
        "rss_max_mb": round(max(rss), 1),
    }


def beside_ceiling(storm: dict[str, Any], hashing: dict[str, Any]) -> dict[str, Any]:
    """A storm's figures with the hash ceiling's. With two cores busy, logins/s cannot pass
    2 s / (all the CPU a login costs: the server's, the probes' it served meanwhile and
    PostgreSQL's), nor can the ceiling pass 2 s / (a verification's CPU): their quotient is
    the best ratio this machine allows (the load generators' own CPU not even counted)."""
    spent = storm["server_cpu_ms_per_login"] + (storm["postgres_cpu_ms_per_login"] or 0)
    return {
        **storm,
        "hash_ceiling_per_s": hashing["verifications_per_s"],
        "ratio_to_hash_ceiling": ratio(storm["logins_per_s"], hashing["verifications_per_s"]),
        "hash_cpu_ms_per_verification": hashing["cpu_ms_per_verification"],
        "ratio_bound_by_cpu": ratio(hashing["cpu_ms_per_verification"], spent),
    }


async def _probe(url: str, every: float | None) -> Load | Probe:
    if every is None:
        return await wrk_async(url, seconds=DURATION, connections=1)
    return await paced_probe(url, DURATION, every)


@dataclass(frozen=True, slots=True)
class Probe:
    requests: int
    p50_ms: float
    p99_ms: float


async def paced_probe(url: str, seconds: float, every: float) -> Probe:
    """GET url once every `every` seconds (on one kept-alive connection), timing each."""
    timings: list[float] = []
    async with httpx.AsyncClient(timeout=10) as client:
        deadline = time.perf_counter() + seconds
        while (started := time.perf_counter()) < deadline:
            (await client.get(url)).raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
    timings.sort()
    return Probe(
        requests=len(timings),
        p50_ms=round(statistics.median(timings), 2),
        p99_ms=round(timings[max(0, int(len(timings) * 0.99) - 1)], 2),
    )


async def _backends(dsn: str) -> list[int]:
    """The PostgreSQL backends serving the bench's database (the server's pooled ones)."""
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return [row["pid"] for row in rows]


def _cpu_of(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that ended meanwhile
            found[pid] = cpu_seconds(pid)
    return found


async def bulk_invitation(
    server: Server, msp: Msp, dsn: str, emails: int = 1000, label: str = "invitee"
) -> dict[str, Any]:
    """1,000 new emails invited on the client: ten requests of 100 (the per-request maximum).
    Besides the time, the CPU the server and PostgreSQL's backends spent meanwhile: together
    about the wall time, since the ten requests run one after the other."""
    batch = 100
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        # Warmed up first, like every other measure: a server's first request on a route
        # builds what FastAPI keeps for it.
        warm = await client.post(
            f"/v1/tenants/{msp.client_id}/invitations",
            json={
                "emails": [f"{label}-warm@bench.example.com"],
                "authorizations": [{"roles": ["read_only"]}],
            },
            headers=msp.api_key,
        )
        warm.raise_for_status()
        backends = await _backends(dsn)
        postgres_before = _cpu_of(backends)
        cpu_before = server.cpu_seconds()
        started = time.perf_counter()
        for start in range(0, emails, batch):
            answer = await client.post(
                f"/v1/tenants/{msp.client_id}/invitations",
                json={
                    "emails": [
                        f"{label}-{n:05d}@bench.example.com" for n in range(start, start + batch)
                    ],
                    "authorizations": [{"roles": ["read_only"]}],
                },
                headers=msp.api_key,
            )
            answer.raise_for_status()
            assert {item["outcome"] for item in answer.json()["items"]} == {"invited"}
        elapsed = time.perf_counter() - started
        # The server's CPU meanwhile (its mail dispatcher's included): on a busy shared
        # machine, comparable across runs where the wall time is not.
        cpu = server.cpu_seconds() - cpu_before
        postgres_after = _cpu_of(backends)
    postgres = sum(after - postgres_before.get(pid, after) for pid, after in postgres_after.items())
    return {
        "emails": emails,
        "requests": emails // batch,
        "seconds": round(elapsed, 3),
        "server_cpu_seconds": round(cpu, 3),
        "postgres_cpu_seconds": round(postgres, 3),
    }


async def outbox_drained(dsn: str, within_seconds: float = 120) -> None:
    """Wait until the server's dispatcher has delivered every queued mail, so what comes next
    is not measured beside deliveries left over from a measure before it."""
    connection = await asyncpg.connect(dsn)
    try:
        deadline = time.perf_counter() + within_seconds
        while time.perf_counter() < deadline:
            pending = await connection.fetchval(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
            )
            if not pending:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the outbox still holds {pending} mails after {within_seconds} s")
    finally:
        await connection.close()


def ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 2) if theirs else 0.0


ROOT_POLICY = {
    "allowed_ip_ranges": ["127.0.0.0/8", "::1/128"],
    "max_session_timeout_minutes": 120,
    "password_min_length": 14,
}


async def with_root_policy(server: Server, msp: Msp, url: str, rounds: int = 3) -> dict[str, Any]:
    """GET /v1/me, a read on the client and the permission decision alone (p50), without and
    with a security policy on the root (SPEC §5.2), alternating so a noisy neighbour weighs on
    both; medians of the rounds."""
    paths = {"me": "/v1/me", "inherited": f"/v1/tenants/{msp.client_id}"}
    figures: dict[str, dict[str, list[float]]] = {
        name: {"without": [], "with": []} for name in [*paths, "decision_p50_ms"]
    }
    policy_url = f"/v1/tenants/{msp.root_id}/security-policy"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        for _ in range(rounds):
            for label, body in (("without", {}), ("with", ROOT_POLICY)):
                (await client.put(policy_url, json=body, headers=msp.session)).raise_for_status()
                for name, path in paths.items():
                    load = await throughput(server, path, msp.api_key)
                    figures[name][label].append(load["rps"])
                decision = await permission_decision(url, msp, rounds=1000)
                figures["decision_p50_ms"][label].append(decision["p50_ms"])
        (await client.put(policy_url, json={}, headers=msp.session)).raise_for_status()
    report: dict[str, Any] = {}
    for name, runs in figures.items():
        without, with_policy = statistics.median(runs["without"]), statistics.median(runs["with"])
        report[name] = {
            "without": round(without, 3),
            "with": round(with_policy, 3),
            "ratio": ratio(with_policy, without),
        }
    return report


def hash_ceiling(seconds: float = DURATION, threads: int = 2) -> dict[str, Any]:
    """argon2id alone: password verifications per second on `threads` threads, nothing else
    running, at the parameters the service uses (a login verifies one hash)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from access_api.services.passwords import _HASHER  # noqa: PLC0415

    stored = _HASHER.hash(ADMIN_PASSWORD)
    deadline = time.perf_counter() + seconds

    def verify_until_deadline() -> tuple[int, float]:
        done, cpu = 0, time.thread_time()
        while time.perf_counter() < deadline:
            assert _HASHER.verify(ADMIN_PASSWORD, stored)
            done += 1
        return done, time.thread_time() - cpu

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        counts, cpu = zip(*pool.map(lambda _: verify_until_deadline(), range(threads)), strict=True)
    elapsed = time.perf_counter() - started
    return {
        "threads": threads,
        "verifications_per_s": round(sum(counts) / elapsed, 1),
        "cpu_ms_per_verification": round(sum(cpu) * 1000 / max(sum(counts), 1), 2),
    }


async def floor(server: Server, url: str, msp: Msp, rounds: int = 2000) -> dict[str, Any]:
    """What GET /v1/me and a read on a client cannot cost less than in this stack, to set beside
    the ceiling: /healthz through the same app (uvicorn, FastAPI and our middleware, no
    database, no credential), and each one's statement alone, in this process, in CPU per
    execution: /v1/me's through AsyncSession.execute and straight on asyncpg
    (repositories/fast.py, what the service uses), the read on a client's (the credential and
    the scope's facts, repositories/scoped.py) straight on asyncpg."""
    from access_api.repositories.me import _BY_API_KEY  # noqa: PLC0415
    from access_api.repositories.scoped import _BY_API_KEY as _SCOPE_BY_API_KEY  # noqa: PLC0415
    from access_api.services.keyring import Keyring  # noqa: PLC0415

    healthz = await throughput(server, "/healthz", {})
    settings = settings_for(url)
    digest = Keyring(settings.secret).digest(msp.api_key["Authorization"].split()[1])
    engine = create_engine(settings).execution_options(isolation_level="AUTOCOMMIT")
    figures: dict[str, Any] = {"healthz_cpu_ms_per_request": healthz["cpu_ms_per_request"]}
    try:
        async with AsyncSession(engine) as session:
            parameters = {"digest": digest, "now": datetime.now(UTC)}

            async def through_sqlalchemy() -> None:
                await session.execute(_BY_API_KEY.statement, parameters)

            async def through_asyncpg() -> None:
                await _BY_API_KEY.rows(session, parameters)

            in_client = {**parameters, "tenant_id": msp.client_id}

            async def scope_on_asyncpg() -> None:
                await _SCOPE_BY_API_KEY.rows(session, in_client)

            for label, run in (
                ("me_statement_cpu_ms_sqlalchemy", through_sqlalchemy),
                ("me_statement_cpu_ms_asyncpg", through_asyncpg),
                ("scope_statement_cpu_ms_asyncpg", scope_on_asyncpg),
            ):
                for _ in range(200):  # warm-up: compiled, prepared, cached
                    await run()
                started = time.process_time()
                for _ in range(rounds):
                    await run()
                per = (time.process_time() - started) * 1000 / rounds
                figures[label] = round(per, 3)
    finally:
        await engine.dispose()
    figures["paced"] = await paced(server, "/v1/me", msp.api_key)
    return figures
