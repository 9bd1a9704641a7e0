"""Webhook rules as plain calls: which URLs, which targets, which events, when to give up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from access_api.domain import webhooks
from access_api.domain.audit import SYSTEM, AuditEvent
from access_api.domain.errors import ValidationFailed
from access_api.domain.webhooks import Endpoint, EndpointStatus

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
THREE_DAYS = timedelta(days=3)


def endpoint(**overrides: object) -> Endpoint:
    values: dict[str, object] = {
        "id": uuid4(),
        "root_id": uuid4(),
        "tenant_id": uuid4(),
        "url": "https://psa.example.com/hooks",
        "description": None,
        "event_types": frozenset({"user.deleted"}),
        "status": EndpointStatus.ENABLED,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return Endpoint(**values)  # type: ignore[arg-type]


def code_of(refusal: pytest.ExceptionInfo[ValidationFailed]) -> str:
    return refusal.value.errors[0].code


class TestUrls:
    def test_https_with_a_host_is_accepted(self) -> None:
        assert webhooks.check_url("https://x.example.com:8443/a?b=c", allow_http=False)

    @pytest.mark.parametrize(
        ("url", "code"),
        [
            ("http://x.example.com/", "url_scheme_not_allowed"),
            ("ftp://x.example.com/", "url_scheme_not_allowed"),
            ("https:///path", "url_invalid"),
            ("https://user:pw@x.example.com/", "url_has_credentials"),
            ("https://x.example.com/#frag", "url_invalid"),
            ("https://x.example.com:99999/", "url_invalid"),
            ("https://x.example.com/" + "a" * 2100, "url_too_long"),
        ],
    )
    def test_refused(self, url: str, code: str) -> None:
        with pytest.raises(ValidationFailed) as refusal:
            webhooks.check_url(url, allow_http=False)
        assert code_of(refusal) == code

    def test_http_only_when_allowed(self) -> None:
        assert webhooks.check_url("http://127.0.0.1:8080/", allow_http=True)


class TestTargets:
    @pytest.mark.parametrize(
        "address",
        ["127.0.0.1", "10.0.0.1", "172.16.5.5", "192.168.1.1", "169.254.169.254", "::1",
         "fe80::1", "fc00::1", "::ffff:10.0.0.1", "0.0.0.1", "100.64.0.1", "224.0.0.1"],
    )  # fmt: skip
    def test_private_loopback_and_link_local_addresses_are_refused(self, address: str) -> None:
        with pytest.raises(ValidationFailed) as refusal:
            webhooks.check_addresses("h", [address], allow_private=False)
        assert code_of(refusal) == "url_target_not_allowed"

    def test_one_private_address_among_public_ones_is_enough_to_refuse(self) -> None:
        with pytest.raises(ValidationFailed):
            webhooks.check_addresses("h", ["93.184.216.34", "10.0.0.1"], allow_private=False)

    def test_public_addresses_pass_and_allowing_private_lets_any_through(self) -> None:
        webhooks.check_addresses("h", ["93.184.216.34", "2606:2800::1"], allow_private=False)
        webhooks.check_addresses("h", ["127.0.0.1"], allow_private=True)

    def test_a_name_that_resolves_to_nothing_is_refused(self) -> None:
        with pytest.raises(ValidationFailed) as refusal:
            webhooks.check_addresses("h", [], allow_private=True)
        assert code_of(refusal) == "url_unresolvable"


class TestEventTypes:
    def test_catalog_actions_are_accepted(self) -> None:
        assert webhooks.check_event_types(["user.deleted", "user.deleted"]) == {"user.deleted"}

    @pytest.mark.parametrize(
        ("types", "code"), [([], "event_types_empty"), (["x.y"], "unknown_event_type")]
    )
    def test_refused(self, types: list[str], code: str) -> None:
        with pytest.raises(ValidationFailed) as refusal:
            webhooks.check_event_types(types)
        assert code_of(refusal) == code

    def test_only_enabled_endpoints_hear_their_events(self) -> None:
        event = AuditEvent(
            id=uuid4(), at=NOW, actor=SYSTEM, root_id=None, tenant_id=None,
            action="user.deleted", target_type="user", target_id=None,
        )  # fmt: skip
        assert webhooks.subscribed(endpoint(), event)
        assert not webhooks.subscribed(endpoint(status=EndpointStatus.DISABLED), event)
        assert not webhooks.subscribed(endpoint(event_types=frozenset({"user.created"})), event)
        body = webhooks.payload(event)
        assert (body["type"], body["data"]["action"]) == ("user.deleted", "user.deleted")


class TestFailingReceiver:
    def test_the_first_failure_starts_the_clock(self) -> None:
        after = webhooks.after_failure(endpoint(), NOW, THREE_DAYS)
        assert (after.endpoint.failing_since, after.disabled) == (NOW, False)

    def test_failing_for_three_days_disables(self) -> None:
        failing = endpoint(failing_since=NOW)
        assert not webhooks.after_failure(failing, NOW + THREE_DAYS / 2, THREE_DAYS).disabled
        after = webhooks.after_failure(failing, NOW + THREE_DAYS, THREE_DAYS)
        assert after.disabled
        assert after.endpoint.status is EndpointStatus.DISABLED
        assert after.endpoint.disabled_at == NOW + THREE_DAYS

    def test_a_disabled_endpoint_is_not_disabled_twice(self) -> None:
        off = endpoint(status=EndpointStatus.DISABLED, failing_since=NOW)
        assert not webhooks.after_failure(off, NOW + 2 * THREE_DAYS, THREE_DAYS).disabled

    def test_a_success_resets_the_clock(self) -> None:
        assert webhooks.after_success(endpoint(failing_since=NOW)).failing_since is None

    def test_the_notice_names_the_endpoint(self) -> None:
        mail = webhooks.disabled_mail(
            recipient="a@example.com", endpoint=endpoint(failing_since=NOW), tenant_name="Acme"
        )
        assert "https://psa.example.com/hooks" in mail.text
        assert "\n" not in mail.subject
