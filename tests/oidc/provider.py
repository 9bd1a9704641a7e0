"""The real OpenID provider of the SSO tests: the certified `oidc-provider` npm package (pinned
in package.json / package-lock.json), installed into tests/oidc/node_modules with the machine's
npm and run with its Node.js on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

HERE = Path(__file__).resolve().parent
CLIENT_ID = "access-api"
CLIENT_SECRET = "a-test-client-secret-long-enough-for-hs256-0123456789"
# The API's public address in the tests (Settings.base_url's default): the redirect URI the
# provider knows, whichever process finally gets the callback.
BASE_URL = "http://127.0.0.1:8000"
CALLBACK = f"{BASE_URL}/v1/auth/sso/callback"


def install() -> None:
    """npm ci into tests/oidc/node_modules (ignored by git), once."""
    if (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the SSO tests need Node.js and npm (apt-get install nodejs npm)")
    subprocess.run(  # noqa: S603 - a fixed command
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Provider:
    issuer: str


@contextmanager
def running() -> Iterator[Provider]:
    install()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("the SSO tests need Node.js")
    port = free_port()
    clients = [
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [CALLBACK]}
    ]
    process = subprocess.Popen(  # noqa: S603 - a fixed command
        [node, str(HERE / "provider.js"), str(port)],
        cwd=HERE,
        env={**os.environ, "CLIENTS": json.dumps(clients)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the OpenID provider did not start")
            time.sleep(0.1)
        yield Provider(issuer=issuer)
    finally:
        process.terminate()
        process.wait(timeout=10)


async def sign_in(authorization_url: str, login: str) -> str:
    """What a browser does at the provider: its login form (devInteractions: any password),
    then its consent form. Returns the URL the provider sends the browser back to."""
    async with httpx.AsyncClient(timeout=10) as browser:
        url = authorization_url
        for _ in range(12):
            answer = await browser.get(url)
            if answer.status_code == 200 and "/interaction/" in url:
                form = (
                    {"prompt": "login", "login": login, "password": "any"}
                    if 'name="login"' in answer.text
                    else {"prompt": "consent"}
                )
                answer = await browser.post(url, data=form)
            assert answer.is_redirect, answer.text[:500]
            url = urljoin(url, answer.headers["location"])
            if not url.startswith(f"http://{urlsplit(authorization_url).netloc}"):
                return url
        raise AssertionError("the provider did not send the browser back")
