"""Webhook endpoints: which URLs may receive events, which events they get, what a delivery
carries, and when a receiver that keeps failing is switched off."""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from access_api.domain.audit import Action, AuditEvent
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.mail import SUBJECT_MAX_LENGTH, Mail

URL_MAX_LENGTH = 2048
WEBHOOK_DISABLED = "webhook_disabled"
EVENT_TYPES: frozenset[str] = frozenset(Action)


class EndpointStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    id: UUID
    root_id: UUID
    tenant_id: UUID
    url: str
    description: str | None
    event_types: frozenset[str]
    status: EndpointStatus
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None = None
    disabled_at: datetime | None = None


def _refused(field: str, code: str, message: str) -> ValidationFailed:
    return ValidationFailed([FieldError(field, code, message)])


def check_url(url: str, *, allow_http: bool) -> str:
    """An endpoint is an `https` URL with a host name and no credentials in it (they would be
    stored and shown in clear). Plain `http` only where the operator allowed it (a laptop, a
    test receiver on loopback)."""
    if len(url) > URL_MAX_LENGTH:
        raise _refused("url", "url_too_long", f"at most {URL_MAX_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise _refused("url", "url_invalid", "not a URL") from error
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise _refused(
            "url",
            "url_scheme_not_allowed",
            "webhooks are delivered over https only"
            + ("" if allow_http else " (http needs ACCESS_API_ALLOW_HTTP_WEBHOOKS)"),
        )
    if not parts.hostname:
        raise _refused("url", "url_invalid", "the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise _refused("url", "url_has_credentials", "put no credentials in the URL")
    if parts.fragment:
        raise _refused("url", "url_invalid", "a webhook URL has no #fragment")
    del port
    return url


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> None:
    """SSRF guard: a target that is (or resolves to) a private, loopback, link-local, shared
    or otherwise non-public address would let anyone with `webhooks.manage` make this server
    call into its own network. Every address the name resolves to must be public."""
    found = list(addresses)
    if not found:
        raise _refused("url", "url_unresolvable", f"{host} does not resolve")
    if allow_private:
        return
    for text in found:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise _refused(
                "url",
                "url_target_not_allowed",
                f"{host} resolves to {address}, a private, loopback or link-local address "
                "(allowed only with ACCESS_API_ALLOW_HTTP_WEBHOOKS)",
            )


def check_event_types(event_types: Iterable[str]) -> frozenset[str]:
    """Event types are audit actions (the catalog); an unknown one is a typo, refused."""
    wanted = frozenset(event_types)
    if not wanted:
        raise _refused("event_types", "event_types_empty", "subscribe to at least one event type")
    unknown = sorted(wanted - EVENT_TYPES)
    if unknown:
        raise _refused(
            "event_types",
            "unknown_event_type",
            f"not in the catalog (GET /v1/webhooks/event-types): {', '.join(unknown)}",
        )
    return wanted


def subscribed(endpoint: Endpoint, event: AuditEvent) -> bool:
    return endpoint.status is EndpointStatus.ENABLED and event.action in endpoint.event_types


def payload(event: AuditEvent) -> dict[str, Any]:
    """The Standard Webhooks body: `type`, `timestamp`, and the audit event as `data`."""
    return {
        "type": event.action,
        "timestamp": event.at.isoformat(),
        "data": {
            "id": str(event.id),
            "at": event.at.isoformat(),
            "actor": {
                "user_id": str(event.actor.user_id) if event.actor.user_id else None,
                "kind": str(event.actor.kind),
            },
            "tenant_id": str(event.tenant_id) if event.tenant_id else None,
            "action": event.action,
            "target": {
                "type": event.target_type,
                "id": str(event.target_id) if event.target_id else None,
            },
            "changes": event.changes,
            "request_id": event.request_id,
        },
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class AfterFailure:
    endpoint: Endpoint
    disabled: bool


def after_failure(endpoint: Endpoint, now: datetime, disable_after: timedelta) -> AfterFailure:
    """A receiver that has answered nothing but failures for `disable_after` (3 days) is
    switched off: retrying it for ever only fills the outbox. One success resets the clock."""
    if endpoint.status is EndpointStatus.DISABLED:
        return AfterFailure(endpoint=endpoint, disabled=False)
    since = endpoint.failing_since or now
    if now - since >= disable_after:
        off = replace(
            endpoint,
            status=EndpointStatus.DISABLED,
            failing_since=since,
            disabled_at=now,
            updated_at=now,
        )
        return AfterFailure(endpoint=off, disabled=True)
    return AfterFailure(endpoint=replace(endpoint, failing_since=since), disabled=False)


def after_success(endpoint: Endpoint) -> Endpoint:
    return replace(endpoint, failing_since=None)


def disabled_mail(*, recipient: str, endpoint: Endpoint, tenant_name: str) -> Mail:
    """Tell an admin their webhook was switched off, and how to switch it back on."""
    since = (endpoint.failing_since or endpoint.updated_at).strftime("%Y-%m-%d %H:%M UTC")
    subject = f"Webhook disabled for {' '.join(tenant_name.split())}"[:SUBJECT_MAX_LENGTH]
    text = (
        "Hello,\n"
        "\n"
        f"The webhook endpoint {endpoint.url} of {tenant_name} has failed every delivery "
        f"since {since}, so it was disabled. Events are no longer sent to it.\n"
        "\n"
        "Once the receiver works again, enable it with PATCH "
        f"/v1/tenants/{endpoint.tenant_id}/webhooks/{endpoint.id} "
        '{"status": "enabled"}.\n'
    )
    e = html.escape
    body = (
        "<!DOCTYPE html>\n"
        '<html><body style="font-family: sans-serif">\n'
        "<p>Hello,</p>\n"
        f"<p>The webhook endpoint <code>{e(endpoint.url)}</code> of "
        f"<strong>{e(tenant_name)}</strong> has failed every delivery since {e(since)}, so it "
        "was disabled. Events are no longer sent to it.</p>\n"
        "<p>Once the receiver works again, enable it again.</p>\n"
        "</body></html>\n"
    )
    return Mail(kind=WEBHOOK_DISABLED, recipient=recipient, subject=subject, text=text, html=body)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One try at delivering one message: what the receiver answered, and how fast."""

    id: UUID
    endpoint_id: UUID
    message_id: str
    event_type: str
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    succeeded: bool
    error: str | None
