"""Rules of single sign-on and SCIM provisioning: plain function calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from access_api.domain import errors as e
from access_api.domain import scim, sso
from access_api.domain.sso import CallbackRefused, Connection, Jit, PendingLogin, Refusal

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def connection(*, jit: bool = False, enforce: bool = False) -> Connection:
    return Connection(
        id=uuid4(),
        tenant_id=uuid4(),
        root_id=uuid4(),
        issuer="https://idp.example.com",
        client_id="c",
        domains=frozenset({"acme.com"}),
        jit=Jit(enabled=jit, roles=frozenset({"read_only"}), include_descendants=False),
        enforce=enforce,
        created_at=NOW,
        updated_at=NOW,
    )


class TestConnectionSettings:
    def test_domains_are_lowercase_dns_names(self) -> None:
        assert sso.domains(["Acme.COM.", " b.example.org"]) == {"acme.com", "b.example.org"}
        for bad in (["not a domain"], [], ["localhost"], ["-x.com"]):
            with pytest.raises(e.ValidationFailed):
                sso.domains(bad)

    def test_an_issuer_is_https_or_loopback_http(self) -> None:
        assert sso.issuer("https://login.example.com/tenant/v2.0/") == (
            "https://login.example.com/tenant/v2.0"
        )
        assert sso.issuer("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
        for bad in ("http://idp.example.com", "https://idp.example.com/?x=1", "ftp://x"):
            with pytest.raises(e.ValidationFailed):
                sso.issuer(bad)

    def test_a_domain_of_another_connection_is_taken(self) -> None:
        mine, theirs = uuid4(), uuid4()
        sso.ensure_domains_free(frozenset({"a.com"}), {"a.com": mine}, mine)
        with pytest.raises(e.SsoDomainTaken):
            sso.ensure_domains_free(frozenset({"a.com", "b.com"}), {"b.com": theirs}, mine)

    def test_enforce_closes_password_login(self) -> None:
        sso.ensure_password_login_allowed(None)
        sso.ensure_password_login_allowed(connection())
        with pytest.raises(e.SsoRequired):
            sso.ensure_password_login_allowed(connection(enforce=True))


class TestCallback:
    def test_a_state_lives_ten_minutes(self) -> None:
        login = PendingLogin(
            connection_id=uuid4(), nonce="n", code_verifier="v", expires_at=NOW + timedelta(1)
        )
        assert sso.ensure_pending(login, NOW) is login
        for gone in (None, login):
            with pytest.raises(CallbackRefused) as refused:
                sso.ensure_pending(gone, NOW + timedelta(days=2))
            assert refused.value.refusal is Refusal.INVALID_STATE

    @pytest.mark.parametrize(
        ("claims", "refusal"),
        [
            ({}, Refusal.INVALID_ID_TOKEN),
            ({"email": "ann@acme.com"}, Refusal.EMAIL_NOT_VERIFIED),
            ({"email": "ann@acme.com", "email_verified": "true"}, Refusal.EMAIL_NOT_VERIFIED),
            ({"email": "ann@evil.com", "email_verified": True}, Refusal.DOMAIN_NOT_CONNECTED),
        ],
    )
    def test_the_idp_vouches_only_for_verified_emails_of_its_domains(
        self, claims: dict[str, object], refusal: Refusal
    ) -> None:
        with pytest.raises(CallbackRefused) as refused:
            sso.identity(claims, connection())
        assert refused.value.refusal is refusal

    def test_entra_says_verified_with_xms_edov(self) -> None:
        claims = {"email": "Ann@acme.com", "xms_edov": True}
        assert sso.identity(claims, connection()) == "Ann@acme.com"

    def test_who_is_created_just_in_time(self) -> None:
        assert sso.ensure_known(True, True, connection()) is False
        assert sso.ensure_known(False, False, connection(jit=True)) is True
        for member, exists, jit in ((False, False, False), (False, True, True)):
            with pytest.raises(CallbackRefused):
                sso.ensure_known(member, exists, connection(jit=jit))


class TestScim:
    def test_a_user_without_an_address_gets_a_placeholder_replaced_once(self) -> None:
        wanted = scim.UserInput(
            user_name="bjensen", external_id=None, active=True, email=None,
            first_name=None, last_name=None,
        )  # fmt: skip
        email = scim.email_of(wanted, "x1")
        assert scim.is_placeholder(email)
        assert scim.new_email(email, "b@acme.com") == "b@acme.com"
        assert scim.new_email("b@acme.com", "B@ACME.com") is None
        with pytest.raises(e.EmailImmutable):
            scim.new_email("b@acme.com", "c@acme.com")

    def test_a_group_is_a_role_key(self) -> None:
        assert scim.ensure_group("admin", ["admin", "read_only"]) == "admin"
        with pytest.raises(e.ScimGroupUnknown):
            scim.ensure_group("Sales", ["admin"])
