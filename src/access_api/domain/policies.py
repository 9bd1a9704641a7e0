"""Security policy per tenant (SPEC §5.2): what each level sets, and what is in force below it.

A policy set on a tenant applies to it and to every tenant below it. The policy in force at a
tenant merges the chain from the MSP root down to it, the strictest value winning: two-factor
required if any level requires it; an address must lie in the ranges of every level that sets
ranges; the smallest session timeout; the longest minimum password length. A child can
tighten and never loosen.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache, reduce
from typing import Any
from uuid import UUID

from access_api.domain.audit import Changes
from access_api.domain.errors import (
    FieldError,
    IpNotAllowed,
    TwoFactorRequired,
    ValidationFailed,
    WouldLockYouOut,
)
from access_api.domain.users import PASSWORD_MIN_LENGTH

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_IP_RANGES = 100
SESSION_TIMEOUT_RANGE = (5, 1440)
PASSWORD_LENGTH_RANGE = (PASSWORD_MIN_LENGTH, 256)

TWO_FACTOR_REQUIRED = TwoFactorRequired.code
IP_NOT_ALLOWED = IpNotAllowed.code


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityPolicy:
    """What one tenant sets; None means "as inherited"."""

    require_two_factor: bool | None = None
    allowed_ip_ranges: tuple[Network, ...] | None = None
    max_session_timeout_minutes: int | None = None
    password_min_length: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The policy as JSON values (ranges as CIDR strings)."""
        return {
            "require_two_factor": self.require_two_factor,
            "allowed_ip_ranges": (
                None
                if self.allowed_ip_ranges is None
                else [str(network) for network in self.allowed_ip_ranges]
            ),
            "max_session_timeout_minutes": self.max_session_timeout_minutes,
            "password_min_length": self.password_min_length,
        }


NO_POLICY = SecurityPolicy()
POLICY_FIELDS = tuple(f.name for f in fields(SecurityPolicy))


@dataclass(frozen=True, slots=True)
class Sourced:
    """A value in force, and the tenant whose policy set it."""

    value: int
    tenant_id: UUID


@dataclass(frozen=True, slots=True)
class Ranges:
    """One level's allowed ranges: an address must lie in one of them."""

    networks: tuple[Network, ...]
    tenant_id: UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class Effective:
    """The policy in force somewhere, each value with the tenant it comes from.

    two_factor_required_by: the highest tenant requiring two-factor (None: not required).
    ip_ranges: every level that sets ranges, root first; an address must satisfy each.
    """

    two_factor_required_by: UUID | None = None
    ip_ranges: tuple[Ranges, ...] = ()
    max_session_timeout: Sourced | None = None
    password_min_length: Sourced | None = None


UNRESTRICTED = Effective()


def _stricter_or_upper(
    upper: Sourced | None, lower: Sourced | None, *, smaller: bool
) -> Sourced | None:
    """The stricter of two values; on a tie the upper one, which a child cannot undo."""
    if upper is None:
        return lower
    if lower is None:
        return upper
    if smaller:
        return lower if lower.value < upper.value else upper
    return lower if lower.value > upper.value else upper


def merge(upper: Effective, lower: Effective) -> Effective:
    """Strictest wins. Associative, with UNRESTRICTED as identity: a chain can be merged in
    any grouping, and a lower level can only add restrictions to what is in force above it."""
    return Effective(
        two_factor_required_by=(
            upper.two_factor_required_by
            if upper.two_factor_required_by is not None
            else lower.two_factor_required_by
        ),
        ip_ranges=upper.ip_ranges + lower.ip_ranges,
        max_session_timeout=_stricter_or_upper(
            upper.max_session_timeout, lower.max_session_timeout, smaller=True
        ),
        password_min_length=_stricter_or_upper(
            upper.password_min_length, lower.password_min_length, smaller=False
        ),
    )


def level(tenant_id: UUID, policy: SecurityPolicy) -> Effective:
    """What one tenant's own policy puts in force at it (before what lies above is merged)."""
    return Effective(
        two_factor_required_by=tenant_id if policy.require_two_factor else None,
        ip_ranges=(
            ()
            if policy.allowed_ip_ranges is None
            else (Ranges(policy.allowed_ip_ranges, tenant_id),)
        ),
        max_session_timeout=(
            None
            if policy.max_session_timeout_minutes is None
            else Sourced(policy.max_session_timeout_minutes, tenant_id)
        ),
        password_min_length=(
            None
            if policy.password_min_length is None
            else Sourced(policy.password_min_length, tenant_id)
        ),
    )


def effective(chain: Iterable[tuple[UUID, SecurityPolicy]]) -> Effective:
    """The policy in force at the last tenant of a chain given root first."""
    return reduce(merge, (level(tenant_id, policy) for tenant_id, policy in chain), UNRESTRICTED)


# --- judging a call -----------------------------------------------------------------------


def address_allowed(policy: Effective, ip: str | None) -> bool:
    """Inside the ranges of every level that sets ranges. An unknown or unparsable address is
    outside any range (fail closed); an IPv4 address seen as IPv6 (::ffff:a.b.c.d, from a
    dual-stack socket) is judged as the IPv4 address it is."""
    if not policy.ip_ranges:
        return True
    address = _address(ip)
    if address is None:
        return False
    return all(any(address in network for network in level.networks) for level in policy.ip_ranges)


@lru_cache(maxsize=4096)  # a caller's address, parsed on each of their calls in a tenant
def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if ip is None:
        return None
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def blocked_by(policy: Effective, *, has_second_factor: bool, ip: str | None) -> list[str]:
    """What the policy refuses this caller, as error codes, in the order they are checked."""
    blocked: list[str] = []
    if policy.two_factor_required_by is not None and not has_second_factor:
        blocked.append(TWO_FACTOR_REQUIRED)
    if not address_allowed(policy, ip):
        blocked.append(IP_NOT_ALLOWED)
    return blocked


def enforce(policy: Effective, *, has_second_factor: bool, ip: str | None, where: str) -> None:
    """Every call in a tenant's context, by any credential, meets the policy in force there:
    a second factor where one is required (the person can still reach /v1/me and enrol, which
    are not in any tenant's context), and an address inside the allowed ranges."""
    if policy.two_factor_required_by is not None and not has_second_factor:
        raise TwoFactorRequired(
            f"{where} requires two-factor authentication: enrol at /v1/me/two-factor/totp"
        )
    if not address_allowed(policy, ip):
        raise IpNotAllowed(f"{where} does not allow calls from {ip or 'an unknown address'}")


def ensure_not_locked_out(after: Effective, *, has_second_factor: bool, ip: str | None) -> None:
    """A change that would shut out its own author is refused: they could not undo it."""
    blocked = blocked_by(after, has_second_factor=has_second_factor, ip=ip)
    if IP_NOT_ALLOWED in blocked:
        raise WouldLockYouOut(f"your address {ip or '(unknown)'} would be outside the ranges")
    if TWO_FACTOR_REQUIRED in blocked:
        raise WouldLockYouOut("two-factor would be required and you have none: enrol first")


# --- sessions and passwords ---------------------------------------------------------------


def session_timeout(user_minutes: int, cap: int | None) -> int:
    """A session's idle timeout: the user's own, capped by the strictest policy in force at
    any tenant where they hold a grant."""
    return user_minutes if cap is None else min(user_minutes, cap)


def required_password_length(minimums: Iterable[int | None]) -> int:
    """The longest minimum in force at any tenant the user holds (or is being given) a grant
    on, and never less than the service's own floor."""
    return max([PASSWORD_MIN_LENGTH, *(m for m in minimums if m is not None)])


# --- changing a policy --------------------------------------------------------------------


def check_policy(
    *,
    require_two_factor: bool | None,
    allowed_ip_ranges: Sequence[str] | None,
    max_session_timeout_minutes: int | None,
    password_min_length: int | None,
) -> SecurityPolicy:
    """A policy as asked for, every problem reported at once. Ranges are CIDR blocks, IPv4 or
    IPv6 (a bare address is a block of one); host bits set under the mask are refused rather
    than guessed at; an empty list would refuse every address, so inheriting is `null`."""
    problems: list[FieldError] = []
    networks: list[Network] | None = None
    if allowed_ip_ranges is not None:
        networks = []
        if not allowed_ip_ranges:
            problems.append(
                FieldError("allowed_ip_ranges", "empty", "give at least one range, or null")
            )
        if len(allowed_ip_ranges) > MAX_IP_RANGES:
            problems.append(
                FieldError("allowed_ip_ranges", "too_many", f"at most {MAX_IP_RANGES} ranges")
            )
        for index, text in enumerate(allowed_ip_ranges):
            try:
                network = ipaddress.ip_network(text.strip(), strict=True)
            except ValueError as bad:
                problems.append(FieldError(f"allowed_ip_ranges.{index}", "invalid_cidr", str(bad)))
                continue
            if network not in networks:
                networks.append(network)
    for name, value, (low, high) in (
        ("max_session_timeout_minutes", max_session_timeout_minutes, SESSION_TIMEOUT_RANGE),
        ("password_min_length", password_min_length, PASSWORD_LENGTH_RANGE),
    ):
        if value is not None and not low <= value <= high:
            problems.append(FieldError(name, "out_of_range", f"must be {low}..{high}"))
    if problems:
        raise ValidationFailed(problems)
    return SecurityPolicy(
        require_two_factor=require_two_factor,
        allowed_ip_ranges=None if networks is None else tuple(networks),
        max_session_timeout_minutes=max_session_timeout_minutes,
        password_min_length=password_min_length,
    )


def changes(before: SecurityPolicy, after: SecurityPolicy) -> Changes:
    """A policy change as audit before/after values, for the fields that changed."""
    old, new = before.as_dict(), after.as_dict()
    return {
        name: {"before": old[name], "after": new[name]}
        for name in POLICY_FIELDS
        if old[name] != new[name]
    }


def networks_of(stored: Sequence[str] | None) -> tuple[Network, ...] | None:
    """Ranges as stored (validated when written)."""
    if stored is None:
        return None
    return _parsed(tuple(stored))


@lru_cache(maxsize=4096)
def _parsed(stored: tuple[str, ...]) -> tuple[Network, ...]:
    # Read on every call in a tenant's context: parse each stored list once per process.
    return tuple(ipaddress.ip_network(text) for text in stored)


def has_second_factor(two_factor: str | None) -> bool:
    """Any second factor counts (TOTP, or codes by email after a reset, seed 003)."""
    return two_factor is not None and two_factor != "disabled"
