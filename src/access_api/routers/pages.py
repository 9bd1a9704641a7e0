"""The hosted pages behind every emailed link (ACCESS_API_HOSTED_PAGES): plain, accessible
HTML forms with a small inline script that calls the API; nothing is loaded from elsewhere."""

from __future__ import annotations

import html
import secrets
from functools import cache
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)
DOCS_ASSETS = "/docs-assets"

_RESET_ANSWERS = {
    "confirm": {
        "title": "Reset your two-factor authentication",
        "explanation": "An administrator asked to reset your two-factor authentication. Once "
        "you confirm, you sign in with a code sent to your email instead of your authenticator "
        "app. If you still have your authenticator, deny the reset instead.",
        "button": "Reset my two-factor authentication",
        "button_class": "",
        "success": "Your two-factor authentication is reset: from now on you sign in with a "
        "code sent to your email.",
    },
    "deny": {
        "title": "Deny the two-factor reset",
        "explanation": "An administrator asked to reset your two-factor authentication. Deny "
        "it if you did not lose your authenticator: nothing changes.",
        "button": "Deny the reset",
        "button_class": "secondary",
        "success": "The reset is denied: your two-factor authentication stays as it is.",
    },
}


@cache
def _file(name: str) -> str:
    return resources.files("access_api.pages").joinpath(name).read_text(encoding="utf-8")


def _page(title: str, fragment: str) -> HTMLResponse:
    """One page: its form and script in the common frame, the script allowed by a nonce so
    that nothing else can run (CSP), the link's token never sent on as a Referer."""
    body, script = fragment.split("\n---\n", 1)
    nonce = secrets.token_urlsafe(16)
    content = _file("base.html").format(
        title=html.escape(title), body=body, script=script, nonce=nonce
    )
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(
        content,
        headers={
            "Content-Security-Policy": policy,
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )


@router.get("/reset-password")
async def reset_password() -> HTMLResponse:
    return _page("Choose a new password", _file("reset_password.html"))


@router.get("/confirm-email")
async def confirm_email() -> HTMLResponse:
    return _page("Confirm your new email address", _file("confirm_email.html"))


@router.get("/accept-invitation")
async def accept_invitation() -> HTMLResponse:
    return _page("Accept your invitation", _file("accept_invitation.html"))


@router.get("/two-factor-reset/confirm")
async def confirm_two_factor_reset() -> HTMLResponse:
    return _two_factor_reset("confirm")


@router.get("/two-factor-reset/deny")
async def deny_two_factor_reset() -> HTMLResponse:
    return _two_factor_reset("deny")


def _two_factor_reset(answer: str) -> HTMLResponse:
    words = _RESET_ANSWERS[answer]
    fragment = _file("two_factor_reset.html").replace("{answer}", answer)
    for key, value in words.items():
        fragment = fragment.replace("{" + key + "}", html.escape(value))
    return _page(words["title"], fragment)


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their assets served from here (fastapi-offline ships
    them), so the interactive documentation works with no network."""
    assets = resources.files("fastapi_offline").joinpath("static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
