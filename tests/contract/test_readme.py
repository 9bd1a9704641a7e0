"""The README's curl walkthrough works as written, against a real server process."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.processes import cli, cli_server

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "readme walkthrough password"


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- walkthrough[^>]*-->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert match, "README.md lost its walkthrough block"
    return match.group(1)


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ACCESS_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'access-api.db'}",
        "ACCESS_API_SECRET_KEY_FILE": str(tmp_path / "secret"),
    }
    (tmp_path / ".demo-admin-password").write_text(PASSWORD + "\n")
    cli("migrate", env=env, cwd=tmp_path)
    booted = cli(
        "bootstrap", "--name", "Demo MSP", "--domain-prefix", "demo",
        "--admin-email", "admin@demo.example.com",
        "--admin-password-file", str(tmp_path / ".demo-admin-password"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert "Created MSP 'Demo MSP'" in booted.stdout
    again = cli(
        "bootstrap", "--name", "Demo MSP", "--domain-prefix", "demo",
        "--admin-email", "admin@demo.example.com", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert "already exists" in again.stdout
    assert "nothing changed" in again.stdout
    with cli_server(env, cwd=tmp_path) as port:
        script = walkthrough().replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        # Twice: a reader who runs it again must get the same story, not a broken one.
        result, again_run = (
            subprocess.run(  # noqa: S603
                ["/bin/bash", "-euo", "pipefail", "-c", script],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            for _ in range(2)
        )
    for run in (result, again_run):
        assert run.returncode == 0, run.stderr
        assert '"name":"Acme Dental"' in run.stdout
        assert '"code":"domain_prefix_taken"' in run.stdout


def test_the_postgresql_section_creates_the_database_it_uses() -> None:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"## Running on PostgreSQL\s*```sh\n(.*?)```", text, re.DOTALL)
    assert match, "README.md lost its PostgreSQL section"
    block = match.group(1)
    url = re.search(r"ACCESS_API_DATABASE_URL=\S+/(\w+)", block)
    created = re.search(r"createdb .*?(\w+)\s*(#|$)", block, re.MULTILINE)
    assert url, block
    assert created, block
    assert created.group(1) == url.group(1)
    assert block.index("createdb") < block.index("access-api migrate")
