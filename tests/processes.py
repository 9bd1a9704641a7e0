"""`access-api serve` as a process of its own on loopback, for the tests that talk to the server
as an operator runs it (raw sockets, external clients, more than one process)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.oidc.provider import free_port


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
