"""The hosted pages behind emailed links, and the documentation, as served: self-contained
HTML (nothing from another host), a script allowed by nonce only, no Referer for the token."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from access_api.db import Database
from access_api.main import create_app
from access_api.services.clock import FrozenClock
from tests.api.conftest import World
from tests.conftest import settings_for
from tests.mail import SmtpServer

PAGES = [
    "/accept-invitation",
    "/reset-password",
    "/confirm-email",
    "/two-factor-reset/confirm",
    "/two-factor-reset/deny",
]
_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


class TestHostedPages:
    @pytest.mark.parametrize("path", PAGES)
    async def test_each_page_is_self_contained_and_locked_down(
        self, world: World, path: str
    ) -> None:
        response = await world.client.get(f"{path}?token=abc")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        assert '<html lang="en">' in page
        assert not _EXTERNAL.search(page)
        policy = response.headers["content-security-policy"]
        (nonce,) = re.findall(r"'nonce-([^']+)'", policy)
        assert f'<script nonce="{nonce}">' in page
        assert "default-src 'none'" in policy
        assert "connect-src 'self'" in policy
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        # Every input has its label.
        for field in re.findall(r'<input id="([^"]+)"', page):
            assert f'<label for="{field}"' in page

    async def test_a_new_nonce_each_time(self, world: World) -> None:
        first = await world.client.get("/reset-password")
        second = await world.client.get("/reset-password")
        assert first.headers["content-security-policy"] != second.headers["content-security-policy"]

    async def test_off_when_a_frontend_serves_them(
        self,
        backend: tuple[str, str],
        connection: AsyncConnection,
        clock: FrozenClock,
        smtp: SmtpServer,
    ) -> None:
        app = create_app(
            settings_for(backend[1], smtp_url=smtp.url, hosted_pages=False),
            database=Database.bound_to(connection),
            clock=clock,
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for path in PAGES:
                    assert (await client.get(path)).status_code == 404


class TestOfflineDocs:
    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_the_docs_load_their_assets_from_here(self, world: World, path: str) -> None:
        page = (await world.client.get(path)).text
        assert not _EXTERNAL.search(page), page
        assets = re.findall(r"""(?:src|href)=["']?(/docs-assets/[^"' >]+)""", page)
        assert assets
        for asset in assets:
            assert (await world.client.get(asset)).status_code == 200, asset
