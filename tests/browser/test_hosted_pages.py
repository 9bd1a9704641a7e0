"""The hosted pages in a real browser: Debian's chromium, headless, driven by Selenium through
chromium-driver. Each test reads a link out of an email delivered to a real SMTP server on
loopback, opens it, fills the form, submits, checks the result through the API, and saves a
screenshot under tests/.artifacts/ for people to look at (not committed)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pyotp
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import (
    Credential,
    VirtualAuthenticatorOptions,
)
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from access_api.bootstrap import bootstrap, offline_state
from access_api.db import Database
from access_api.main import create_app
from access_api.settings import Settings
from access_api.use_cases import Work
from tests.authenticator import Authenticator
from tests.conftest import TEST_SECRET, sqlite_database
from tests.mail import SmtpServer, free_port, plain_text

CHROMIUM = os.environ.get("ACCESS_API_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ACCESS_API_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a fresh and rather long passphrase"

if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    reason = (
        f"browser tests need {CHROMIUM} and {CHROMEDRIVER} "
        "(apt-get install chromium chromium-driver)"
    )
    if os.environ.get("ACCESS_API_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@dataclass
class Site:
    url: str
    settings: Settings
    smtp: SmtpServer

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def mail_to(self, recipient: str, within: float = 20.0) -> Any:
        """The next message to recipient (taken out of the inbox)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for message in self.smtp.inbox.take():
                if str(message["To"]).lower() == recipient.lower():
                    return message
            time.sleep(0.1)
        raise AssertionError(f"no mail to {recipient} within {within} s")

    def link(self, message: Any, path: str) -> str:
        """The link to path in the mail's text part, alone on its line, as a person sees it."""
        pattern = re.compile(rf"^({re.escape(self.url + path)}\?token=\S+)$", re.M)
        (found,) = pattern.findall(plain_text(message))
        return str(found)

    def msp(self, prefix: str) -> tuple[str, dict[str, str]]:
        """An MSP and its admin's auth headers."""
        email = f"admin@{prefix}.example.com"

        async def make() -> str:
            database = Database.connect(self.settings)
            try:
                async with database.session() as session:
                    result = await bootstrap(
                        Work.over(session, offline_state(self.settings, database)),
                        name=prefix.title(),
                        domain_prefix=prefix,
                        admin_email=email,
                        admin_password=PASSWORD,
                    )
                    await session.commit()
                return str(result.tenant.id)
            finally:
                await database.dispose()

        root = asyncio.run(make())
        return root, self.login(email)

    def login(self, email: str, password: str = PASSWORD, otp: str | None = None) -> dict[str, str]:
        body = {"email": email, "password": password} | ({"otp": otp} if otp else {})
        with self.api() as api:
            response = api.post("/v1/auth/login", json=body)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer) -> Iterator[Site]:
    """The service on a real port, with its own SQLite file, its mail dispatcher running and
    PUBLIC_URL pointing at itself (so the emailed links lead to its hosted pages)."""
    directory = tmp_path_factory.mktemp("browser")

    async def migrated() -> str:
        async with sqlite_database(directory) as url:
            return url

    url = asyncio.run(migrated())
    port = free_port()
    # localhost, not 127.0.0.1: a passkey's relying party id must be a domain, and localhost is
    # the one a browser trusts without TLS (the browser maps it to 127.0.0.1, see below).
    public = f"http://localhost:{port}"
    settings = Settings(
        database_url=url,
        secret_key=TEST_SECRET,
        public_url=public,
        smtp_url=smtp_server.url,
        mail_poll_seconds=0.2,
        hosted_pages=True,
        gc_tuning=False,  # the server shares the test process
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="browser-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    smtp_server.start()
    smtp_server.inbox.clear()
    try:
        yield Site(public, settings, smtp_server)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=900,900",
        "--host-resolver-rules=MAP localhost 127.0.0.1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def submit_and_read(browser: webdriver.Chrome, name: str) -> str:
    """Submit the page's form, wait for its message, save a screenshot, return the message."""
    browser.find_element(By.CSS_SELECTOR, "form:not([hidden]) button[type=submit]").click()
    return read_message(browser, name)


def read_message(browser: webdriver.Chrome, name: str, kind: str = "o") -> str:
    """Wait for the message (kind: "ok", "error", or "o" for either), then screenshot it."""
    WebDriverWait(browser, 15).until(
        expected_conditions.text_to_be_present_in_element_attribute(
            (By.ID, "message"), "class", kind
        )
    )
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    message = browser.find_element(By.ID, "message")
    return f"{message.get_attribute('class')}: {message.text}"


def fill(browser: webdriver.Chrome, **fields: str) -> None:
    for field, value in fields.items():
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)


def check_page(browser: webdriver.Chrome, site: Site) -> None:
    """Accessible and self-contained: a language, a title, a label for every input, nothing
    loaded from another host, and the token gone from the address bar."""
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert browser.title.endswith("access-api")
    for element in browser.find_elements(By.CSS_SELECTOR, "input"):
        labels = browser.find_elements(
            By.CSS_SELECTOR, f"label[for='{element.get_attribute('id')}']"
        )
        assert labels, f"input {element.get_attribute('id')} has no label"
    for attribute in ("src", "href"):
        for element in browser.find_elements(By.CSS_SELECTOR, f"[{attribute}]"):
            value = element.get_attribute(attribute) or ""
            assert value.startswith(site.url) or not value.startswith("http"), value
    assert "token=" not in browser.current_url


class TestResetPassword:
    def test_the_emailed_link_sets_a_new_password_and_works_once(
        self, site: Site, browser: webdriver.Chrome
    ) -> None:
        site.msp("browser-reset")
        email = "admin@browser-reset.example.com"
        with site.api() as api:
            assert api.post("/v1/auth/password-reset", json={"email": email}).status_code == 202
        link = site.link(site.mail_to(email), "/reset-password")
        browser.get(link)
        check_page(browser, site)
        fill(browser, new_password=NEW_PASSWORD, repeat=NEW_PASSWORD)
        assert submit_and_read(browser, "reset-password").startswith("ok: Your password is set")
        site.login(email, NEW_PASSWORD)
        # The same link again: a readable refusal, not a stack trace.
        browser.get(link)
        fill(
            browser,
            new_password="yet another long passphrase",
            repeat="yet another long passphrase",
        )
        message = submit_and_read(browser, "reset-password-used-link")
        assert message == "error: This link has expired or was already used. Ask for a new one."


class TestConfirmEmail:
    def test_the_new_address_confirms_the_change(
        self, site: Site, browser: webdriver.Chrome
    ) -> None:
        _, headers = site.msp("browser-email")
        with site.api() as api:
            response = api.post(
                "/v1/me/email",
                json={"new_email": "moved@browser-email.example.com", "password": PASSWORD},
                headers=headers,
            )
            assert response.status_code == 202, response.text
        link = site.link(site.mail_to("moved@browser-email.example.com"), "/confirm-email")
        browser.get(link)
        check_page(browser, site)
        message = submit_and_read(browser, "confirm-email")
        assert message == (
            "ok: Your email address is now moved@browser-email.example.com. "
            "Sign in with it from now on."
        )
        site.login("moved@browser-email.example.com")


class TestAcceptInvitation:
    def test_a_new_account(self, site: Site, browser: webdriver.Chrome) -> None:
        root, headers = site.msp("browser-invite")
        invited = "newcomer@example.com"
        with site.api() as api:
            response = api.post(
                f"/v1/tenants/{root}/invitations",
                json={
                    "emails": [invited],
                    "authorizations": [
                        {"tenant_id": root, "roles": ["read_only"], "include_descendants": True}
                    ],
                },
                headers=headers,
            )
            assert response.status_code in (200, 201), response.text
        browser.get(site.link(site.mail_to(invited), "/accept-invitation"))
        WebDriverWait(browser, 15).until(
            expected_conditions.visibility_of_element_located((By.ID, "first_name"))
        )
        check_page(browser, site)
        assert (
            "invited newcomer@example.com to join Browser-Invite"
            in browser.find_element(By.ID, "offer").text
        )
        fill(browser, first_name="Nora", last_name="Newcomer", password=NEW_PASSWORD)
        assert submit_and_read(browser, "accept-invitation-new").startswith("ok: Welcome")
        with site.api() as api:
            headers = site.login(invited, NEW_PASSWORD)
            me = api.get("/v1/me", headers=headers).json()
            mine = api.get("/v1/me/tenants", headers=headers).json()["items"]
        assert (me["first_name"], [t["id"] for t in mine]) == ("Nora", [root])

    def test_an_existing_account_proves_itself_with_its_password(
        self, site: Site, browser: webdriver.Chrome
    ) -> None:
        root, headers = site.msp("browser-host")
        site.msp("browser-elsewhere")
        invited = "admin@browser-elsewhere.example.com"
        with site.api() as api:
            response = api.post(
                f"/v1/tenants/{root}/invitations",
                json={
                    "emails": [invited],
                    "authorizations": [
                        {"tenant_id": root, "roles": ["admin"], "include_descendants": True}
                    ],
                },
                headers=headers,
            )
            assert response.status_code in (200, 201), response.text
        browser.get(site.link(site.mail_to(invited), "/accept-invitation"))
        WebDriverWait(browser, 15).until(
            expected_conditions.visibility_of_element_located((By.ID, "password"))
        )
        check_page(browser, site)
        assert not browser.find_element(By.ID, "first_name").is_displayed()
        fill(browser, password=PASSWORD)
        assert submit_and_read(browser, "accept-invitation-existing").startswith("ok: Welcome")
        with site.api() as api:
            login = api.post("/v1/auth/login", json={"email": invited, "password": PASSWORD})
            assert login.status_code == 200


class TestTwoFactorReset:
    def _user_with_totp(self, site: Site, prefix: str) -> tuple[str, str, dict[str, str]]:
        root, headers = site.msp(prefix)
        with site.api() as api:
            secret = api.post("/v1/me/two-factor/totp", headers=headers).json()["secret"]
            verified = api.post(
                "/v1/me/two-factor/totp/verify",
                json={"code": pyotp.TOTP(secret).now()},
                headers=headers,
            )
            assert verified.status_code == 200, verified.text
            # A second admin asks for the reset: nobody resets their own.
            other = "second@" + prefix + ".example.com"
            invited = api.post(
                f"/v1/tenants/{root}/invitations",
                json={
                    "emails": [other],
                    "authorizations": [
                        {"tenant_id": root, "roles": ["admin"], "include_descendants": True}
                    ],
                },
                headers=headers,
            )
            assert invited.status_code in (200, 201), invited.text
            token = unquote(site.link(site.mail_to(other), "/accept-invitation").split("token=")[1])
            accepted = api.post(
                "/v1/invitations/accept",
                json={
                    "token": token,
                    "first_name": "Sam",
                    "last_name": "Second",
                    "password": NEW_PASSWORD,
                },
            )
            assert accepted.status_code == 201, accepted.text
            me = api.get("/v1/me", headers=headers).json()
        return root, me["id"], site.login(other, NEW_PASSWORD)

    def test_confirm(self, site: Site, browser: webdriver.Chrome) -> None:
        root, user_id, second = self._user_with_totp(site, "browser-2fa-yes")
        with site.api() as api:
            asked = api.post(
                f"/v1/tenants/{root}/two-factor-resets",
                json={"user_ids": [user_id]},
                headers=second,
            )
            assert asked.status_code in (200, 201), asked.text
        mail = site.mail_to("admin@browser-2fa-yes.example.com")
        browser.get(site.link(mail, "/two-factor-reset/confirm"))
        check_page(browser, site)
        assert submit_and_read(browser, "two-factor-reset-confirm").startswith(
            "ok: Your two-factor authentication is reset"
        )
        with site.api() as api:
            user = api.get(f"/v1/tenants/{root}/users/{user_id}", headers=second).json()
        assert user["two_factor"] == "email"

    def test_deny(self, site: Site, browser: webdriver.Chrome) -> None:
        root, user_id, second = self._user_with_totp(site, "browser-2fa-no")
        with site.api() as api:
            asked = api.post(
                f"/v1/tenants/{root}/two-factor-resets",
                json={"user_ids": [user_id]},
                headers=second,
            )
            assert asked.status_code in (200, 201), asked.text
        mail = site.mail_to("admin@browser-2fa-no.example.com")
        browser.get(site.link(mail, "/two-factor-reset/deny"))
        check_page(browser, site)
        assert submit_and_read(browser, "two-factor-reset-deny").startswith(
            "ok: The reset is denied"
        )
        with site.api() as api:
            user = api.get(f"/v1/tenants/{root}/users/{user_id}", headers=second).json()
            resets = api.get(f"/v1/tenants/{root}/two-factor-resets", headers=second).json()
        assert user["two_factor"] == "totp"
        assert [r["status"] for r in resets["items"]] == ["denied"]


class TestAcceptInvitationWithAPasskey:
    def test_an_existing_account_uses_its_passkey_in_the_browser(
        self, site: Site, browser: webdriver.Chrome
    ) -> None:
        root, headers = site.msp("browser-passkey-host")
        _, elsewhere = site.msp("browser-passkey-away")
        invited = "admin@browser-passkey-away.example.com"
        # The passkey is registered through the API by the test's software authenticator; the
        # browser's virtual authenticator is given the same key, as a security key moved from
        # one computer to another would be.
        device = Authenticator(site.url)
        with site.api() as api:
            options = api.post("/v1/me/two-factor/webauthn/options", headers=elsewhere).json()
            assert options["rp"]["id"] == "localhost"
            registered = api.post(
                "/v1/me/two-factor/webauthn",
                json={"name": "Key", "credential": device.create(options)},
                headers=elsewhere,
            )
            assert registered.status_code == 201, registered.text
            response = api.post(
                f"/v1/tenants/{root}/invitations",
                json={
                    "emails": [invited],
                    "authorizations": [
                        {"tenant_id": root, "roles": ["read_only"], "include_descendants": True}
                    ],
                },
                headers=headers,
            )
            assert response.status_code in (200, 201), response.text
        authenticator = VirtualAuthenticatorOptions(
            protocol=VirtualAuthenticatorOptions.Protocol.CTAP2,
            transport=VirtualAuthenticatorOptions.Transport.USB,
            has_user_verification=True,
            is_user_verified=True,
        )
        browser.add_virtual_authenticator(authenticator)
        try:
            private_key = device.key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            browser.add_credential(
                Credential.create_non_resident_credential(
                    device.credential_id, "localhost", private_key, device.counter
                )
            )
            browser.get(site.link(site.mail_to(invited), "/accept-invitation"))
            WebDriverWait(browser, 15).until(
                expected_conditions.visibility_of_element_located((By.ID, "password"))
            )
            fill(browser, password=PASSWORD)
            asked = submit_and_read(browser, "accept-invitation-passkey-asked")
            assert asked == "error: Two-factor authentication: use your passkey."
            browser.find_element(By.ID, "use_passkey").click()
            message = read_message(browser, "accept-invitation-passkey", kind="ok")
            assert message.startswith("ok: Welcome")
        finally:
            browser.remove_virtual_authenticator()
        with site.api() as api:
            (key,) = api.get("/v1/me/two-factor/webauthn", headers=elsewhere).json()["items"]
        assert key["last_used_at"] is not None
