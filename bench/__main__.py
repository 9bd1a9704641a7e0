"""Run the SPEC §6 benchmarks and report each figure beside its target, ceiling and peer.

    python -m bench                      # 100k users (a few minutes)
    python -m bench --users 1000000      # the SPEC's scale (seeding takes a while)
    python -m bench --only export        # one measure

Everything runs on loopback against fresh databases that are dropped afterwards; the load comes
from wrk in a separate process. Results: bench/results/<time>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench import measures
from bench.harness import PEER_PYTHON, RESULTS, Server, free_port, serve, uvicorn_argv
from bench.wire import CountingProxy, counting_proxy
from bench.world import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Msp,
    bootstrap,
    build_msp,
    enrol,
    env_for,
    grow,
    postgres_database,
    settle,
    sqlite_database,
)

ALL = (
    "me",
    "inherited",
    "policy",
    "decision",
    "list",
    "scim",
    "export",
    "login",
    "invite",
    "trips",
    "floor",
    "sqlite",
)
SMALL = 1_000


def ours_argv(port: int) -> list[str]:
    """Our server as it ships (`access-api serve`, the Dockerfile's command): its HTTP
    protocol (a read deadline, a response's writes joined), no proxy headers believed and no
    Server header, rather than uvicorn's defaults."""
    return [sys.executable, "-m", "access_api.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip


def ours(url: str) -> Any:
    port = free_port()
    return serve("access-api", ours_argv(port), env_for(url), port, "/readyz")


async def decisions(url: str, dsn: str, msp: Msp, report: dict[str, Any]) -> None:
    """The permission decision (SPEC §6), and beside it one bare round trip to the same
    database (not a §6 row): what the decision's one statement pays before any work of its
    own, on this machine mostly the wake-up of a process on the other core."""
    report["permission_decision"] = await measures.permission_decision(url, msp, dsn=dsn)
    report["round_trip"] = await measures.round_trip(dsn)


async def postgres_suite(args: argparse.Namespace, report: dict[str, Any]) -> None:
    wanted = set(args.only)
    async with postgres_database("ours") as (url, dsn):
        await asyncio.to_thread(bootstrap, url)
        with ours(url) as server:
            msp = await build_msp(server.base_url)
            await grow(url, msp, SMALL, "small")
            if wanted & {"me", "inherited", "floor"}:
                port = free_port()
                ceiling_argv = uvicorn_argv(sys.executable, "bench.ceiling:app", port)
                with serve(
                    "ceiling", ceiling_argv, {"BENCH_CEILING_DSN": dsn}, port, "/one-query"
                ) as ceiling:
                    # /v1/me and the read on a client, each in turn with the ceiling.
                    routes = {
                        "me_api_key": (server, "/v1/me", msp.api_key),
                        "inherited_read": (server, f"/v1/tenants/{msp.client_id}", msp.api_key),
                    }
                    chosen = {"me": "me_api_key", "inherited": "inherited_read"}
                    report.update(
                        await measures.in_turn(
                            ceiling,
                            "/one-query",
                            {chosen[m]: routes[chosen[m]] for m in chosen if m in wanted},
                        )
                    )
                    if "floor" in wanted:
                        report["ceiling_paced"] = await measures.paced(ceiling, "/one-query", {})
            if "me" in wanted:
                report["peer"] = await peer_me()
                if "rps" in report["peer"]:
                    report["me_api_key"]["ratio_to_peer"] = measures.ratio(
                        report["me_api_key"]["rps"], report["peer"]["rps"]
                    )
                    report["me_api_key"]["cpu_ratio_to_peer"] = measures.ratio(
                        report["peer"]["cpu_ms_per_request"],
                        report["me_api_key"]["cpu_ms_per_request"],
                    )
            if "floor" in wanted:
                report["floor"] = await measures.floor(server, url, msp)
                if "ceiling" in report:
                    report["floor"]["ceiling_cpu_ms_per_request"] = report["ceiling"][
                        "cpu_ms_per_request"
                    ]
            if "policy" in wanted:
                report["root_policy"] = await measures.with_root_policy(server, msp, url)
            if "decision" in wanted:
                await decisions(url, dsn, msp, report)
            if "login" in wanted:
                await login_storms(server, dsn, report)
            if "invite" in wanted:
                report["bulk_invitation"] = await measures.bulk_invitation(server, msp, dsn)
                await measures.outbox_drained(dsn)
                # The same on a server whose outbox dispatcher is off (not a §6 row): what the
                # requests cost alone, without the 1,000 mails delivered meanwhile in the same
                # process (each mail a claim and a mark, in transactions of their own).
                quiet_env = {**env_for(url), "ACCESS_API_MAIL_DISPATCHER": "false"}
                port = free_port()
                argv = ours_argv(port)
                with serve("access-api-no-dispatcher", argv, quiet_env, port, "/readyz") as quiet:
                    report["bulk_invitation_without_dispatcher"] = await measures.bulk_invitation(
                        quiet, msp, dsn, label="quiet"
                    )
                await measures.outbox_drained(dsn)  # the running server delivers those too
            if "trips" in wanted:
                report["round_trips"] = await round_trips(url, dsn, msp)
            await sized(args, url, msp, server, "postgresql", report)


async def login_storms(server: Server, dsn: str, report: dict[str, Any]) -> None:
    """The login storm (SPEC §6) beside the hash ceiling, with the probe back to back and
    paced, and the same storms against the login ceiling."""
    # The hash ceiling first, in the same run, with the server idle.
    hashing = await asyncio.to_thread(measures.hash_ceiling)
    report["login_storm"] = measures.beside_ceiling(
        await measures.login_storm(server, dsn), hashing
    )
    # The same storm with /healthz probed every 20 ms instead of back to back: what
    # the login path reaches when the probe is not a load of its own (not a §6 row).
    report["login_storm_paced_probe"] = measures.beside_ceiling(
        await measures.login_storm(server, dsn, probe_every=0.02), hashing
    )
    # The login ceiling (bench/ceiling.py): the least a FastAPI login can do, one query,
    # the hash and the session kept, in the same storms: the ratio no login can pass here.
    port = free_port()
    ceiling_argv = uvicorn_argv(sys.executable, "bench.ceiling:app", port)
    with serve("ceiling", ceiling_argv, {"BENCH_CEILING_DSN": dsn}, port, "/healthz") as ceiling:
        report["login_ceiling_storm"] = measures.beside_ceiling(
            await measures.login_storm(ceiling, dsn, path="/login"), hashing
        )
        report["login_ceiling_storm_paced_probe"] = measures.beside_ceiling(
            await measures.login_storm(ceiling, dsn, probe_every=0.02, path="/login"),
            hashing,
        )
    for storm in ("login_storm", "login_storm_paced_probe"):
        report[storm]["ratio_to_login_ceiling"] = measures.ratio(
            report[storm]["logins_per_s"],
            report[f"login_ceiling_{storm.removeprefix('login_')}"]["logins_per_s"],
        )


async def round_trips(url: str, dsn: str, msp: Msp, requests: int = 10) -> dict[str, Any]:
    """Round trips to PostgreSQL per request of each measured route, counted on the wire by a
    proxy (bench/wire.py) in front of a server of its own (no mail dispatcher polling)."""
    target = urlsplit(dsn)
    with counting_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        return await _count_round_trips(proxy, url, dsn, msp, requests)


async def _count_round_trips(
    proxy: CountingProxy, url: str, dsn: str, msp: Msp, requests: int
) -> dict[str, Any]:
    def through(address: str) -> str:
        parts = urlsplit(address)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))

    login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    routes: list[tuple[str, str, str, dict[str, str], Any]] = [
        ("GET /v1/me (API key)", "GET", "/v1/me", msp.api_key, None),
        ("GET /v1/me (session)", "GET", "/v1/me", msp.session, None),
        ("GET /v1/tenants/{client} (inherited)", "GET", f"/v1/tenants/{msp.client_id}",
         msp.api_key, None),
        ("GET users list page", "GET",
         f"/v1/tenants/{msp.root_id}/users?sort=last_name&two_factor=disabled&limit=50",
         msp.api_key, None),
        ("POST /v1/auth/login", "POST", "/v1/auth/login", {}, login),
    ]  # fmt: skip
    counts: dict[str, Any] = {}

    async def count(client: httpx.AsyncClient, label: str, method: str, path: str,
                    headers: dict[str, str], body: Any) -> None:  # fmt: skip
        (await client.request(method, path, headers=headers, json=body)).raise_for_status()
        proxy.reset()
        for _ in range(requests):
            (await client.request(method, path, headers=headers, json=body)).raise_for_status()
        counts[label] = round(proxy.round_trips / requests, 2)

    port = free_port()
    env = {**env_for(through(url)), "ACCESS_API_MAIL_DISPATCHER": "false"}
    with serve("access-api-counted", ours_argv(port), env, port, "/readyz") as counted:
        async with httpx.AsyncClient(base_url=counted.base_url, timeout=30) as client:
            for route in routes:
                await count(client, *route)
    port = free_port()
    argv = uvicorn_argv(sys.executable, "bench.ceiling:app", port)
    ceiling_env = {"BENCH_CEILING_DSN": through(dsn)}
    with serve("ceiling-counted", argv, ceiling_env, port, "/one-query") as ceiling:
        async with httpx.AsyncClient(base_url=ceiling.base_url, timeout=30) as client:
            await count(client, "ceiling GET /one-query", "GET", "/one-query", {}, None)
    return counts


async def sized(
    args: argparse.Namespace, url: str, msp: Msp, server: Any, backend: str, report: dict[str, Any]
) -> None:
    """The measures that depend on the number of users: a list page and a SCIM Users page at 1k
    and at --users, and the export at --users."""
    await at_small(args, url, msp, server, backend, report)
    await grow_large(args, url, msp)
    await at_scale(args, url, msp, server, backend, report)


async def grow_large(args: argparse.Namespace, url: str, msp: Msp) -> None:
    """--users in the tree; for the SCIM measure, all of them in the client's directory."""
    await grow(url, msp, args.users, "large")
    if "scim" in args.only:
        msp.extra["scim_directory"] = await enrol(url, msp.client_id)
    await settle(url)


async def at_small(
    args: argparse.Namespace, url: str, msp: Msp, server: Any, backend: str, report: dict[str, Any]
) -> None:
    figures = report.setdefault(backend, {})
    if not {"list", "scim"} & set(args.only):
        return
    await grow(url, msp, SMALL, "small")
    # The grown users hold a role on the client: its directory is theirs, ~1k of them.
    size = await enrol(url, msp.client_id) if "scim" in args.only else 0
    await settle(url)
    if "list" in args.only:
        figures["list_small"] = await measures.list_page_p50(server, msp)
    if "scim" in args.only:
        figures["scim_small"] = await measures.scim_pages(server, msp, msp.client_id, size)


async def at_scale(
    args: argparse.Namespace,
    url: str,
    msp: Msp,
    server: Any,
    backend: str,
    report: dict[str, Any],
) -> None:
    figures = report.setdefault(backend, {})
    figures["users"] = args.users
    if "list" in args.only:
        figures["list_large"] = await measures.list_page_p50(server, msp)
        figures["list_p50_ratio"] = measures.ratio(
            figures["list_large"]["p50_ms"], figures["list_small"]["p50_ms"]
        )
    if "scim" in args.only:
        small = figures["scim_small"]
        large = figures["scim_large"] = await measures.scim_pages(
            server, msp, msp.client_id, msp.extra["scim_directory"]
        )
        figures["scim_ratios"] = {
            page: {
                figure: measures.ratio(large[page][figure], small[page][figure])
                for figure in ("p50_ms", "p99_ms", "cpu_ms_per_request")
            }
            for page in ("first", "cursor", "deep_start_index")
        }
        figures["scim_p50_ratio"] = figures["scim_ratios"]["first"]["p50_ms"]
        figures["scim_cursor_p50_ratio"] = figures["scim_ratios"]["cursor"]["p50_ms"]
    if "export" in args.only:
        figures["export"] = await measures.export(server, msp, expected_rows=args.users)
        figures["export_floor"] = await measures.export_floor(url, msp)


async def sqlite_suite(args: argparse.Namespace, report: dict[str, Any]) -> None:
    async with sqlite_database() as url:
        await asyncio.to_thread(bootstrap, url)
        with ours(url) as server:
            msp = await build_msp(server.base_url)
            report["sqlite_me_api_key"] = await measures.throughput(server, "/v1/me", msp.api_key)
            await at_small(args, url, msp, server, "sqlite", report)
        await grow_large(args, url, msp)
        # SQLite keeps no statistics by itself: the server refreshes them at startup and hourly
        # (PostgreSQL's autovacuum does it there). Restarted, it plans with the grown tables.
        with ours(url) as server:
            await at_scale(args, url, msp, server, "sqlite", report)


async def peer_me() -> dict[str, Any]:
    """fastapi-users' /users/me with a JWT, on its own PostgreSQL database."""
    if not PEER_PYTHON.exists():
        return {"skipped": f"no peer virtualenv at {PEER_PYTHON} (make bench creates it)"}
    async with postgres_database("peer") as (url, _):
        port = free_port()
        env = {"BENCH_PEER_DATABASE_URL": url}
        with serve(
            "peer", uvicorn_argv(PEER_PYTHON, "bench.peer:app", port), env, port, "/docs"
        ) as peer:
            async with httpx.AsyncClient(base_url=peer.base_url) as client:
                credentials = {"email": "peer@bench.example.com", "password": "peer password 1234"}
                (await client.post("/auth/register", json=credentials)).raise_for_status()
                login = await client.post(
                    "/auth/jwt/login",
                    data={"username": credentials["email"], "password": credentials["password"]},
                )
                login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            return await measures.throughput(peer, "/users/me", headers)


TARGETS = (
    ("me_api_key.ratio_to_ceiling", ">=", 0.6, "GET /v1/me (API key) / one-query ceiling"),
    ("me_api_key.cpu_ratio_to_ceiling", ">=", 0.6, "  the same by server CPU per request"),
    ("me_api_key.ratio_to_peer", ">=", 4.0, "GET /v1/me (API key) / fastapi-users /users/me"),
    ("me_api_key.cpu_ratio_to_peer", ">=", 4.0, "  the same by server CPU per request"),
    ("inherited_read.ratio_to_ceiling", ">=", 0.5, "read on a client via a root grant / ceiling"),
    ("inherited_read.cpu_ratio_to_ceiling", ">=", 0.5, "  the same by server CPU per request"),
    ("root_policy.me.ratio", ">=", 0.95, "GET /v1/me with a root policy / without"),
    ("permission_decision.p99_ms", "<=", 0.5, "permission decision p99 (ms)"),
    ("postgresql.list_p50_ratio", "<=", 1.5, "list page p50 at --users / at 1k (PostgreSQL)"),
    ("sqlite.list_p50_ratio", "<=", 1.5, "list page p50 at --users / at 1k (SQLite)"),
    ("postgresql.scim_p50_ratio", "<=", 1.5, "SCIM Users page p50 at --users / at 1k (PostgreSQL)"),
    ("postgresql.scim_cursor_p50_ratio", "<=", 1.5, "  the same, a cursor page from the middle"),
    ("sqlite.scim_p50_ratio", "<=", 1.5, "SCIM Users page p50 at --users / at 1k (SQLite)"),
    ("sqlite.scim_cursor_p50_ratio", "<=", 1.5, "  the same, a cursor page from the middle"),
    ("postgresql.export.rows_per_s", ">=", 145_000, "export rows/s (PostgreSQL)"),
    (
        "postgresql.export_floor.copy_alone_rows_per_s",
        ">=",
        145_000,
        "  its floor: the same COPY alone, on asyncpg",
    ),
    ("postgresql.export.rss_growth_mb", "<", 30, "export RSS growth MB (PostgreSQL)"),
    ("sqlite.export.rows_per_s", ">=", 145_000, "export rows/s (SQLite)"),
    (
        "sqlite.export_floor.query_alone_rows_per_s",
        ">=",
        145_000,
        "  its floor: the same query alone, on sqlite3",
    ),
    ("sqlite.export.rss_growth_mb", "<", 30, "export RSS growth MB (SQLite)"),
    ("login_storm.ratio_to_hash_ceiling", ">=", 0.9, "login storm / argon2id on two threads"),
    ("login_storm.healthz_p99_ms", "<", 50, "/healthz p99 during the storm (ms)"),
    ("login_storm.ratio_to_login_ceiling", ">=", 0.9, "  login storm / the login ceiling's"),
    (
        "login_storm_paced_probe.ratio_to_login_ceiling",
        ">=",
        0.9,
        "  the same, /healthz probed every 20 ms",
    ),
    ("bulk_invitation.seconds", "<=", 0.5, "1,000 invitations (s)"),
    ("me_api_key.rss_max_mb", "<=", 200, "worker RSS under load (MB)"),
)


# Figures printed after the table, each where the measures it quotes were run: the measures
# it needs (dotted paths into the report), and its text with their figures in it
# (str.format_map over the report).
NOTES = (
    (
        ("login_storm",),
        "login storm CPU per login (ms): server {login_storm[server_cpu_ms_per_login]}"
        " (event loop {login_storm[event_loop_cpu_ms_per_login]}, of which /healthz probes"
        " {login_storm[healthz_requests]} in all), PostgreSQL"
        " {login_storm[postgres_cpu_ms_per_login]}; one argon2id verification"
        " {login_storm[hash_cpu_ms_per_verification]}: best ratio two cores allow"
        " {login_storm[ratio_bound_by_cpu]}",
    ),
    (
        ("login_storm_paced_probe",),
        "login storm with /healthz probed every 20 ms:"
        " {login_storm_paced_probe[ratio_to_hash_ceiling]} of the ceiling, healthz p99"
        " {login_storm_paced_probe[healthz_p99_ms]} ms, bound by CPU"
        " {login_storm_paced_probe[ratio_bound_by_cpu]}",
    ),
    (
        ("login_ceiling_storm", "login_ceiling_storm_paced_probe"),
        "the login ceiling (bench/ceiling.py: bare FastAPI, one query, the same hash on the same"
        " threads, the session kept by one insert) in the same storms:"
        " {login_ceiling_storm[ratio_to_hash_ceiling]}"
        " of argon2id on two threads with the probe back to back,"
        " {login_ceiling_storm_paced_probe[ratio_to_hash_ceiling]} paced; its hashing threads"
        " spend {login_ceiling_storm_paced_probe[hashing_threads_cpu_ms_per_login]} ms per"
        " verification against {login_ceiling_storm_paced_probe[hash_cpu_ms_per_verification]}"
        " alone. No login passes these ratios on this machine.",
    ),
    (
        ("floor", "ceiling_paced"),
        "a request every {floor[paced][every_ms]} ms, its event loop's CPU in ms: GET /v1/me"
        " {floor[paced][paced_loop_cpu_ms_per_request]}"
        " ({floor[paced][back_to_back_loop_cpu_ms_per_request]} back to back), the ceiling's"
        " {ceiling_paced[paced_loop_cpu_ms_per_request]}"
        " ({ceiling_paced[back_to_back_loop_cpu_ms_per_request]} back to back)",
    ),
    (
        ("round_trip", "permission_decision"),
        "one bare round trip to PostgreSQL (SELECT 1 on asyncpg, TCP on loopback):"
        " {round_trip[wall_us]} us wall, {round_trip[cpu_us]} us CPU; the decision's p50"
        " {permission_decision[p50_ms]} ms",
    ),
    (
        ("permission_decision",),
        "the decision's statement alone (prepared, straight on asyncpg, taken in turn with the"
        " decisions): p50 {permission_decision[statement_alone][p50_ms]} ms, p99"
        " {permission_decision[statement_alone][p99_ms]} ms; the decision's p99"
        " {permission_decision[p99_ms]} ms",
    ),
    (
        ("bulk_invitation", "bulk_invitation_without_dispatcher"),
        "1,000 invitations: CPU of the server {bulk_invitation[server_cpu_seconds]} s, of"
        " PostgreSQL's backends {bulk_invitation[postgres_cpu_seconds]} s; with the outbox"
        " dispatcher off (no target): {bulk_invitation_without_dispatcher[seconds]} s,"
        " server CPU {bulk_invitation_without_dispatcher[server_cpu_seconds]} s, PostgreSQL's"
        " {bulk_invitation_without_dispatcher[postgres_cpu_seconds]} s",
    ),
    (
        ("postgresql.export_floor",),
        "floor of the export on PostgreSQL (its COPY straight on asyncpg in the bench's process,"
        " nothing else, the best of two): {postgresql[export_floor][copy_alone_rows_per_s]}"
        " rows/s, against the service's {postgresql[export][rows_per_s]}",
    ),
    (
        ("sqlite.export_floor",),
        "floor of the export on SQLite (its query straight on sqlite3 in the bench's process,"
        " the best of two): the rows alone {sqlite[export_floor][query_alone_rows_per_s]}"
        " rows/s, with the service's line rendering"
        " {sqlite[export_floor][query_and_lines_rows_per_s]} rows/s, against the service's"
        " {sqlite[export][rows_per_s]}",
    ),
    (
        ("floor", "ceiling"),
        "floor of GET /v1/me, CPU ms: /healthz through the same app"
        " {floor[healthz_cpu_ms_per_request]}; the /v1/me statement alone"
        " {floor[me_statement_cpu_ms_asyncpg]} on asyncpg"
        " ({floor[me_statement_cpu_ms_sqlalchemy]} through SQLAlchemy); the ceiling's"
        " whole request {ceiling[cpu_ms_per_request]}",
    ),
    (
        ("floor", "ceiling"),
        "floor of a read on a client, CPU ms: /healthz {floor[healthz_cpu_ms_per_request]};"
        " its statement alone (the credential and the scope)"
        " {floor[scope_statement_cpu_ms_asyncpg]} on asyncpg; the ceiling's whole request"
        " {ceiling[cpu_ms_per_request]}",
    ),
)


def notes(report: dict[str, Any]) -> list[str]:
    return [
        text.format_map(report)
        for needs, text in NOTES
        if all(lookup(report, measure) is not None for measure in needs)
    ]


def lookup(report: dict[str, Any], dotted: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def table(report: dict[str, Any]) -> str:
    lines = [f"{'measure':<52} {'figure':>12}  target      verdict"]
    for key, op, target, label in TARGETS:
        value = lookup(report, key)
        if value is None:
            continue
        met = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
        lines.append(f"{label:<52} {value:>12}  {op} {target:<8}  {'met' if met else 'MISSED'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="size of the large tree")
    parser.add_argument("--only", nargs="+", choices=ALL, default=list(ALL))
    args = parser.parse_args()
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "users": args.users,
    }
    asyncio.run(postgres_suite(args, report))
    if "sqlite" in args.only:
        asyncio.run(sqlite_suite(args, report))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{report['started_at'].replace(':', '')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print()
    print(table(report))
    for backend in ("postgresql", "sqlite"):
        deep = lookup(report, f"{backend}.scim_ratios.deep_start_index")
        if deep is not None:
            small, large = report[backend]["scim_small"], report[backend]["scim_large"]
            print(
                f"SCIM last page by startIndex ({backend}, no target: it skips the index)  "
                f"p50 {small['deep_start_index']['p50_ms']} ms at {small['directory']}, "
                f"{large['deep_start_index']['p50_ms']} ms at {large['directory']}: "
                f"ratio {deep['p50_ms']}"
            )
    for route, trips in report.get("round_trips", {}).items():
        print(f"round trips per request  {route:<44} {trips}")
    for line in notes(report):
        print(line)
    print(f"\nsaved to {path.relative_to(RESULTS.parents[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
