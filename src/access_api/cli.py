"""The access-api command: serve | migrate | bootstrap | openapi | worker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from alembic import command
from alembic.config import Config

from access_api.bootstrap import bootstrap, offline_state
from access_api.db import Database
from access_api.domain.errors import DomainError
from access_api.logs import configure_logging
from access_api.main import create_app
from access_api.services.mailer import run_worker
from access_api.settings import InsecureConfiguration, Settings, get_settings
from access_api.use_cases import Work


def alembic_ini() -> Path:
    """alembic.ini from the working directory, or from the source checkout we run from."""
    for candidate in (
        Path.cwd() / "alembic.ini",
        Path(__file__).resolve().parents[2] / "alembic.ini",
    ):
        if candidate.is_file():
            return candidate
    raise SystemExit("alembic.ini not found: run access-api from the project directory")


def migrate(settings: Settings, revision: str = "head") -> None:
    config = Config(str(alembic_ini()))
    config.attributes["database_url"] = settings.database_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, revision)


def openapi_document() -> dict[str, Any]:
    """The contract, built from the app itself (no database or secret needed)."""
    app = create_app(Settings(secret_key="x" * 64, database_url="sqlite+aiosqlite://"))
    return app.openapi()


def openapi_yaml() -> str:
    return yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)


async def _bootstrap(args: argparse.Namespace, settings: Settings, password: str | None) -> int:
    database = Database.connect(settings)
    try:
        async with database.session() as session:
            try:
                result = await bootstrap(
                    Work.over(session, offline_state(settings, database)),
                    name=args.name,
                    domain_prefix=args.domain_prefix,
                    admin_email=args.admin_email,
                    admin_password=password,
                )
            except DomainError as error:
                print(f"bootstrap refused: {error.detail}", file=sys.stderr)  # noqa: T201
                return 2
            await session.commit()
    finally:
        await database.dispose()
    out = sys.stdout
    if not result.created:
        out.write(
            f"An MSP with domain prefix {result.tenant.domain_prefix!r} already exists "
            f"({result.tenant.name}, {result.tenant.id}); nothing changed.\n"
        )
        return 0
    out.write(f"Created MSP {result.tenant.name!r} ({result.tenant.id})\n")
    if result.existing_user:
        out.write(f"{result.admin_email} already had an account: log in with its password.\n")
    elif result.generated_password:
        out.write(f"Admin {result.admin_email}, generated password: {result.generated_password}\n")
        out.write("It is shown once; change it after logging in (POST /v1/me/password).\n")
    else:
        out.write(f"Admin {result.admin_email}, with the password you gave.\n")
    out.write(
        "Log in:\n"
        f"  curl -s -X POST {settings.public_url}/v1/auth/login "
        "-H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"email": "{result.admin_email}", "password": "<password>"}}\'\n'
    )
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    settings.secret  # noqa: B018 - refuse an unsafe secret before binding a port
    uvicorn.run(
        "access_api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_config=None,
        server_header=False,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="access-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-For is trusted for client addresses",
    )

    commands.add_parser("migrate", help="apply database migrations")

    boot = commands.add_parser("bootstrap", help="create an MSP and its first admin")
    boot.add_argument("--name", required=True)
    boot.add_argument("--domain-prefix", required=True)
    boot.add_argument("--admin-email", required=True)
    secret = boot.add_mutually_exclusive_group()
    secret.add_argument("--admin-password", help="generated (and printed once) when omitted")
    secret.add_argument("--admin-password-file", help="read the password from this file")

    commands.add_parser("openapi", help="print the OpenAPI contract as YAML")
    commands.add_parser(
        "worker", help="deliver the mail outbox, apart from the server, until SIGTERM/SIGINT"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    if args.command == "openapi":
        sys.stdout.write(openapi_yaml())
        return 0
    settings = get_settings()
    try:
        if args.command == "migrate":
            migrate(settings)
            return 0
        if args.command == "bootstrap":
            password = args.admin_password
            if args.admin_password_file:
                password = Path(args.admin_password_file).read_text().strip()
            return asyncio.run(_bootstrap(args, settings, password))
        if args.command == "worker":
            settings.secret  # noqa: B018 - refuse an unsafe secret before delivering anything
            asyncio.run(run_worker(settings))
            return 0
        return _serve(args, settings)
    except InsecureConfiguration as error:
        print(f"refusing to start: {error}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
