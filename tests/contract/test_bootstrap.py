"""`access-api bootstrap` as an operator meets it: before migrating, on a taken prefix, and the
login command it prints."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from access_api.db import Database
from access_api.domain import tenants
from access_api.domain.tenants import TenantKind
from access_api.ids import new_id
from access_api.repositories.tenants import TenantRepository
from access_api.services.clock import SystemClock
from tests.conftest import settings_for


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "access_api.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ACCESS_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'boot.db'}",
        "ACCESS_API_SECRET_KEY_FILE": str(tmp_path / "secret"),
        "ACCESS_API_PUBLIC_URL": "https://app.example.com",
    }


BOOT = ("bootstrap", "--name", "Boot MSP", "--admin-email", "admin@boot.example.com")


def test_before_migrating_it_says_to_migrate(tmp_path: Path) -> None:
    env = environment(tmp_path)
    result = run(*BOOT, "--domain-prefix", "boot", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "run `access-api migrate` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_prints_a_login_command_against_the_api_not_the_public_url(tmp_path: Path) -> None:
    env = environment(tmp_path)
    assert run("migrate", env=env, cwd=tmp_path).returncode == 0
    booted = run(*BOOT, "--domain-prefix", "boot", env=env, cwd=tmp_path)
    assert booted.returncode == 0, booted.stderr
    assert "curl -s -X POST http://127.0.0.1:8000/v1/auth/login" in booted.stdout
    assert "app.example.com" not in booted.stdout
    elsewhere = run(
        *BOOT, "--domain-prefix", "boot", "--api-url", "https://api.example.com/",
        env={**env, "ACCESS_API_BASE_URL": "https://ignored.example.com"}, cwd=tmp_path,
    )  # fmt: skip
    assert elsewhere.returncode == 0  # the MSP exists: nothing changes, and it says so
    assert "already exists" in elsewhere.stdout


def test_a_prefix_taken_by_a_client_is_refused_with_what_was_found(tmp_path: Path) -> None:
    env = environment(tmp_path)
    assert run("migrate", env=env, cwd=tmp_path).returncode == 0
    assert run(*BOOT, "--domain-prefix", "boot", env=env, cwd=tmp_path).returncode == 0

    async def add_client() -> None:
        database = Database.connect(settings_for(env["ACCESS_API_DATABASE_URL"]))
        try:
            async with database.session() as session:
                repo = TenantRepository(session)
                root = await repo.by_prefix("boot")
                assert root is not None
                client = tenants.new_child(
                    root, id=new_id(), kind=TenantKind.CLIENT, name="Acme Dental",
                    domain_prefix="acme-dental", street_address=None, now=SystemClock().now(),
                )  # fmt: skip
                await repo.insert(client)
                await session.commit()
        finally:
            await database.dispose()

    asyncio.run(add_client())
    result = run(*BOOT, "--domain-prefix", "acme-dental", env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert "client account 'Acme Dental'" in result.stderr
    assert "nothing changed" in result.stderr
    assert "Created" not in result.stdout
