"""schemathesis against a real server, every operation, every check: no 5xx, no answer the
contract does not describe, no documented-valid input refused. Bounded and seeded, so a run
is the same run each time (about a minute and a half)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.processes import cli, cli_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PASSWORD = "schemathesis password 1"
EXAMPLES = "10"  # per operation and phase
SEED = "20261129"


def schemathesis(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is a dev dependency: make install"
    return subprocess.run(  # noqa: S603 - our own arguments
        [
            # Every check is on by default; naming them here (--checks all) would override
            # the few per-operation exceptions that schemathesis.toml explains.
            executable, "--config-file", str(HERE / "schemathesis.toml"), "run",
            "--max-examples", EXAMPLES, "--seed", SEED,
            "--workers", "1", "--no-color", "--generation-database", "none",
            "--output-sanitize", "false", *args,
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=cwd, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def login(base: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/v1/auth/login",
        data=json.dumps({"email": "admin@st.example.com", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        token: str = json.loads(response.read())["access_token"]
        return token


def test_every_operation_keeps_the_contract(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ACCESS_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'st.db'}",
        "ACCESS_API_SECRET_KEY_FILE": str(tmp_path / "secret"),
        "ACCESS_API_MAIL_POLL_SECONDS": "3600",
    }
    (tmp_path / "password").write_text(PASSWORD)
    cli("migrate", env=env, cwd=tmp_path)
    cli(
        "bootstrap", "--name", "Schemathesis MSP", "--domain-prefix", "st-msp",
        "--admin-email", "admin@st.example.com", "--admin-password-file", "password",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    with cli_server(env, cwd=tmp_path) as port:
        base = f"http://127.0.0.1:{port}"
        # Logging out ends the session the rest of the run uses: it gets a session of its own.
        everything = schemathesis(
            f"{base}/openapi.json", "--exclude-path", "/v1/auth/logout",
            "--header", f"Authorization: Bearer {login(base)}", cwd=tmp_path,
        )  # fmt: skip
        logout = schemathesis(
            f"{base}/openapi.json", "--include-path", "/v1/auth/logout",
            "--header", f"Authorization: Bearer {login(base)}", cwd=tmp_path,
        )  # fmt: skip
    assert everything.returncode == 0, everything.stdout[-20000:]
    assert logout.returncode == 0, logout.stdout[-20000:]
