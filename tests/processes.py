"""`access-api serve` as a process of its own on loopback, for the tests that talk to the server
as an operator runs it (raw sockets, external clients, more than one process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.oidc.provider import free_port


def cli(*args: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `access-api` command, run to its end; its output, or CalledProcessError."""
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "access_api.cli", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


@contextmanager
def sqlite_cli_server(directory: Path, **settings: str) -> Iterator[int]:
    """A migrated SQLite database of its own in `directory` and the server over it (its
    secret in a file there; `settings` as ACCESS_API_<NAME> variables); the server's port."""
    env = {
        **os.environ,
        "ACCESS_API_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'access-api.db'}",
        "ACCESS_API_SECRET_KEY_FILE": str(directory / "secret"),
        **{f"ACCESS_API_{name.upper()}": value for name, value in settings.items()},
    }
    cli("migrate", env=env, cwd=directory)
    with cli_server(env, cwd=directory) as port:
        yield port


@contextmanager
def cli_server(
    env: Mapping[str, str], *, port: int | None = None, cwd: Path | None = None
) -> Iterator[int]:
    """The server on `port` (a free one unless given) with exactly `env`; its port once
    /healthz answers; stopped afterwards."""
    port = port or free_port()
    server = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "access_api.cli", "serve", "--port", str(port)],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)
