"""Real server processes (uvicorn through `access-api serve`) on loopback, for the tests that
need more than one process or an external client (the SCIM checker)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import TEST_SECRET
from tests.oidc.provider import free_port


@contextmanager
def serving(database_url: str, **settings: str) -> Iterator[str]:
    """One server process on a free port over the given (migrated) database; its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ACCESS_API_DATABASE_URL": database_url,
        "ACCESS_API_SECRET_KEY": TEST_SECRET,
        "ACCESS_API_PUBLIC_URL": "https://app.access-api.test",
        "ACCESS_API_MAIL_DISPATCHER": "false",
        "ACCESS_API_BASE_URL": url,
        **{f"ACCESS_API_{k.upper()}": v for k, v in settings.items()},
    }
    server = subprocess.Popen(  # noqa: S603 - a fixed command
        [sys.executable, "-m", "access_api.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
