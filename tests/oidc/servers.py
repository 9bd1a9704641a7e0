"""Real server processes (uvicorn through `access-api serve`) on loopback, for the tests that
need more than one process or an external client (the SCIM checker)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import TEST_SECRET
from tests.oidc.provider import free_port
from tests.processes import cli_server


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
    with cli_server(env, port=port):
        yield url
