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

import httpx

from bench import measures
from bench.harness import PEER_PYTHON, RESULTS, free_port, serve, uvicorn_argv
from bench.world import Msp, bootstrap, build_msp, env_for, grow, postgres_database, sqlite_database

ALL = ("me", "inherited", "policy", "decision", "list", "export", "login", "invite", "sqlite")
SMALL = 1_000


def ours(url: str) -> Any:
    port = free_port()
    argv = uvicorn_argv(sys.executable, "access_api.main:create_app", port, factory=True)
    return serve("access-api", argv, env_for(url), port, "/readyz")


async def postgres_suite(args: argparse.Namespace, report: dict[str, Any]) -> None:
    wanted = set(args.only)
    async with postgres_database("ours") as (url, dsn):
        await asyncio.to_thread(bootstrap, url)
        with ours(url) as server:
            msp = await build_msp(server.base_url)
            await grow(url, msp, SMALL, "small")
            if wanted & {"me", "inherited"}:
                port = free_port()
                ceiling_argv = uvicorn_argv(sys.executable, "bench.ceiling:app", port)
                with serve(
                    "ceiling", ceiling_argv, {"BENCH_CEILING_DSN": dsn}, port, "/one-query"
                ) as ceiling:
                    report["ceiling"] = await measures.throughput(ceiling, "/one-query", {})
            if "me" in wanted:
                report["me_api_key"] = await measures.throughput(server, "/v1/me", msp.api_key)
                report["me_api_key"]["ratio_to_ceiling"] = measures.ratio(
                    report["me_api_key"]["rps"], report["ceiling"]["rps"]
                )
                report["peer"] = await peer_me()
                if "rps" in report["peer"]:
                    report["me_api_key"]["ratio_to_peer"] = measures.ratio(
                        report["me_api_key"]["rps"], report["peer"]["rps"]
                    )
            if "inherited" in wanted:
                path = f"/v1/tenants/{msp.client_id}"
                report["inherited_read"] = await measures.throughput(server, path, msp.api_key)
                report["inherited_read"]["ratio_to_ceiling"] = measures.ratio(
                    report["inherited_read"]["rps"], report["ceiling"]["rps"]
                )
            if "policy" in wanted:
                report["root_policy"] = await measures.with_root_policy(server, msp, url)
            if "decision" in wanted:
                report["permission_decision"] = await measures.permission_decision(url, msp)
            if "login" in wanted:
                report["login_storm"] = await measures.login_storm(server)
            if "invite" in wanted:
                report["bulk_invitation"] = await measures.bulk_invitation(server, msp)
            await sized(args, url, msp, server, "postgresql", report)


async def sized(
    args: argparse.Namespace, url: str, msp: Msp, server: Any, backend: str, report: dict[str, Any]
) -> None:
    """The measures that depend on the number of users: a list page at 1k and at --users, and
    the export at --users."""
    await list_small(args, url, msp, server, backend, report)
    await grow(url, msp, args.users, "large")
    await at_scale(args, msp, server, backend, report)


async def list_small(
    args: argparse.Namespace, url: str, msp: Msp, server: Any, backend: str, report: dict[str, Any]
) -> None:
    figures = report.setdefault(backend, {})
    if "list" in args.only:
        await grow(url, msp, SMALL, "small")
        figures["list_small"] = await measures.list_page_p50(server, msp)


async def at_scale(
    args: argparse.Namespace, msp: Msp, server: Any, backend: str, report: dict[str, Any]
) -> None:
    figures = report.setdefault(backend, {})
    figures["users"] = args.users
    if "list" in args.only:
        figures["list_large"] = await measures.list_page_p50(server, msp)
        figures["list_p50_ratio"] = measures.ratio(
            figures["list_large"]["p50_ms"], figures["list_small"]["p50_ms"]
        )
    if "export" in args.only:
        figures["export"] = await measures.export(server, msp, expected_rows=args.users)


async def sqlite_suite(args: argparse.Namespace, report: dict[str, Any]) -> None:
    async with sqlite_database() as url:
        await asyncio.to_thread(bootstrap, url)
        with ours(url) as server:
            msp = await build_msp(server.base_url)
            report["sqlite_me_api_key"] = await measures.throughput(server, "/v1/me", msp.api_key)
            await list_small(args, url, msp, server, "sqlite", report)
        await grow(url, msp, args.users, "large")
        # SQLite keeps no statistics by itself: the server refreshes them at startup and hourly
        # (PostgreSQL's autovacuum does it there). Restarted, it plans with the grown tables.
        with ours(url) as server:
            await at_scale(args, msp, server, "sqlite", report)


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
    ("me_api_key.ratio_to_peer", ">=", 4.0, "GET /v1/me (API key) / fastapi-users /users/me"),
    ("inherited_read.ratio_to_ceiling", ">=", 0.5, "read on a client via a root grant / ceiling"),
    ("root_policy.me.ratio", ">=", 0.95, "GET /v1/me with a root policy / without"),
    ("permission_decision.p99_ms", "<=", 1.0, "permission decision p99 (ms)"),
    ("postgresql.list_p50_ratio", "<=", 1.5, "list page p50 at --users / at 1k (PostgreSQL)"),
    ("sqlite.list_p50_ratio", "<=", 1.5, "list page p50 at --users / at 1k (SQLite)"),
    ("postgresql.export.rows_per_s", ">=", 145_000, "export rows/s (PostgreSQL)"),
    ("postgresql.export.rss_growth_mb", "<", 30, "export RSS growth MB (PostgreSQL)"),
    ("sqlite.export.rows_per_s", ">=", 145_000, "export rows/s (SQLite)"),
    ("sqlite.export.rss_growth_mb", "<", 30, "export RSS growth MB (SQLite)"),
    ("login_storm.logins_per_s", ">=", 90, "logins/s during a login storm"),
    ("login_storm.healthz_p99_ms", "<", 50, "/healthz p99 during the storm (ms)"),
    ("bulk_invitation.seconds", "<=", 1.0, "1,000 invitations (s)"),
    ("me_api_key.rss_max_mb", "<=", 200, "worker RSS under load (MB)"),
)


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
    print(f"\nsaved to {path.relative_to(RESULTS.parents[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
