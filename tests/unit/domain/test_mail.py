"""Mail texts and links, and the delivery backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from access_api.domain.mail import (
    accept_invitation_link,
    invitation_mail,
    link,
    login_code_mail,
    retry_delay,
)

UNTIL = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


class TestLinks:
    def test_links_are_built_from_the_public_url_with_the_token_quoted(self) -> None:
        assert link("https://app.example.com/", "/reset-password", "a/b+c") == (
            "https://app.example.com/reset-password?token=a%2Fb%2Bc"
        )

    def test_the_invitation_link_points_at_the_accept_page(self) -> None:
        assert accept_invitation_link("https://app.example.com", "inv_x") == (
            "https://app.example.com/accept-invitation?token=inv_x"
        )


class TestTexts:
    def test_an_invitation_has_its_link_alone_on_a_line_and_names_in_one_line(self) -> None:
        mail = invitation_mail(
            recipient="ann@example.com",
            tenant_name="Acme\r\nBcc: evil@example.com",
            inviter_name="Bob",
            inviter_email="bob@example.com",
            accept_link="https://app.example.com/accept-invitation?token=t",
            expires_at=UNTIL,
        )
        assert "https://app.example.com/accept-invitation?token=t" in mail.text.splitlines()
        assert "\n" not in mail.subject
        assert "\r" not in mail.subject

    def test_a_login_code_stands_on_a_line_of_its_own(self) -> None:
        mail = login_code_mail(recipient="ann@example.com", code="123456", expires_at=UNTIL)
        assert "123456" in mail.text.splitlines()
        assert "2026-12-06 09:30 UTC" in mail.text


class TestBackoff:
    def test_doubles_from_the_base_up_to_the_cap(self) -> None:
        base, cap = timedelta(seconds=10), timedelta(minutes=5)
        delays = [retry_delay(n, base, cap) for n in range(6)]
        assert delays[:5] == [base, base, base * 2, base * 4, base * 8]
        assert retry_delay(50, base, cap) == cap
