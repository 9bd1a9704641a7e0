"""The policy merge (SPEC §5.2): strictest wins, associative, and a child never loosens."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from access_api.domain import access, policies
from access_api.domain.access import Held, ScopeFacts
from access_api.domain.errors import (
    Forbidden,
    IpNotAllowed,
    NotFound,
    TenantDisabled,
    TwoFactorRequired,
    ValidationFailed,
    WouldLockYouOut,
)
from access_api.domain.policies import Effective, SecurityPolicy
from access_api.domain.users import PASSWORD_MIN_LENGTH
from tests.unit.domain.test_access import NOW, ROLES, ROOT, caller, grant, tenant

TENANTS = [uuid4() for _ in range(4)]

networks = st.one_of(
    st.builds(
        lambda address, prefix: ipaddress.ip_network(f"{address}/{prefix}", strict=False),
        st.ip_addresses(v=4),
        st.integers(0, 32),
    ),
    st.builds(
        lambda address, prefix: ipaddress.ip_network(f"{address}/{prefix}", strict=False),
        st.ip_addresses(v=6),
        st.integers(0, 128),
    ),
)
security_policies = st.builds(
    SecurityPolicy,
    require_two_factor=st.none() | st.booleans(),
    allowed_ip_ranges=st.none() | st.lists(networks, min_size=1, max_size=3).map(tuple),
    max_session_timeout_minutes=st.none() | st.integers(5, 1440),
    password_min_length=st.none() | st.integers(12, 256),
)
levels = st.builds(policies.level, st.sampled_from(TENANTS), security_policies)
chains = st.lists(st.tuples(st.sampled_from(TENANTS), security_policies), max_size=4)
addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


def at_least_as_strict(lower: Effective, upper: Effective, ip: str) -> bool:
    """Whatever upper enforces, lower enforces too."""
    if upper.two_factor_required_by is not None and lower.two_factor_required_by is None:
        return False
    if not policies.address_allowed(upper, ip) and policies.address_allowed(lower, ip):
        return False
    if upper.max_session_timeout is not None and (
        lower.max_session_timeout is None
        or lower.max_session_timeout.value > upper.max_session_timeout.value
    ):
        return False
    return not (
        upper.password_min_length is not None
        and (
            lower.password_min_length is None
            or lower.password_min_length.value < upper.password_min_length.value
        )
    )


class TestMerge:
    @given(levels, levels, levels)
    def test_merging_is_associative(self, a: Effective, b: Effective, c: Effective) -> None:
        assert policies.merge(policies.merge(a, b), c) == policies.merge(a, policies.merge(b, c))

    @given(levels)
    def test_unrestricted_is_the_identity(self, a: Effective) -> None:
        assert policies.merge(policies.UNRESTRICTED, a) == a
        assert policies.merge(a, policies.UNRESTRICTED) == a

    @given(chains, st.sampled_from(TENANTS), security_policies, addresses)
    def test_a_child_never_loosens(
        self, chain: list[tuple[UUID, SecurityPolicy]], child: UUID, own: SecurityPolicy, ip: str
    ) -> None:
        above = policies.effective(chain)
        below = policies.effective([*chain, (child, own)])
        assert at_least_as_strict(below, above, ip)

    @given(chains)
    def test_the_effective_values_are_the_strictest_of_the_chain(
        self, chain: list[tuple[UUID, SecurityPolicy]]
    ) -> None:
        merged = policies.effective(chain)
        timeouts = [p.max_session_timeout_minutes for _, p in chain]
        lengths = [p.password_min_length for _, p in chain]
        set_timeouts = [t for t in timeouts if t is not None]
        set_lengths = [n for n in lengths if n is not None]
        assert (merged.max_session_timeout.value if merged.max_session_timeout else None) == (
            min(set_timeouts) if set_timeouts else None
        )
        assert (merged.password_min_length.value if merged.password_min_length else None) == (
            max(set_lengths) if set_lengths else None
        )
        assert (merged.two_factor_required_by is not None) == any(
            p.require_two_factor for _, p in chain
        )
        assert len(merged.ip_ranges) == sum(p.allowed_ip_ranges is not None for _, p in chain)

    def test_a_tie_is_credited_to_the_upper_level(self) -> None:
        root, client = TENANTS[:2]
        merged = policies.effective(
            [
                (root, SecurityPolicy(max_session_timeout_minutes=30)),
                (client, SecurityPolicy(max_session_timeout_minutes=30)),
            ]
        )
        assert merged.max_session_timeout == policies.Sourced(30, root)


class TestAddresses:
    def test_every_level_that_sets_ranges_must_allow_the_address(self) -> None:
        merged = policies.effective(
            [
                (TENANTS[0], policies.check_policy(
                    require_two_factor=None, allowed_ip_ranges=["10.0.0.0/8"],
                    max_session_timeout_minutes=None, password_min_length=None,
                )),
                (TENANTS[1], policies.check_policy(
                    require_two_factor=None, allowed_ip_ranges=["10.1.0.0/16", "2001:db8::/32"],
                    max_session_timeout_minutes=None, password_min_length=None,
                )),
            ]
        )  # fmt: skip
        assert policies.address_allowed(merged, "10.1.2.3")
        assert policies.address_allowed(merged, "::ffff:10.1.2.3")
        assert not policies.address_allowed(merged, "10.2.0.1")
        assert not policies.address_allowed(merged, "2001:db8::1")  # not in the root's ranges
        assert not policies.address_allowed(merged, None)
        assert not policies.address_allowed(merged, "garbage")
        assert policies.address_allowed(policies.UNRESTRICTED, None)

    def test_enforce_names_two_factor_first(self) -> None:
        merged = policies.effective(
            [(TENANTS[0], SecurityPolicy(
                require_two_factor=True,
                allowed_ip_ranges=(ipaddress.ip_network("10.0.0.0/8"),),
            ))]
        )  # fmt: skip
        assert policies.blocked_by(merged, has_second_factor=False, ip="192.0.2.1") == [
            "two_factor_required",
            "ip_not_allowed",
        ]
        with pytest.raises(TwoFactorRequired):
            policies.enforce(merged, has_second_factor=False, ip="10.0.0.1", where="Acme")
        with pytest.raises(IpNotAllowed):
            policies.enforce(merged, has_second_factor=True, ip="192.0.2.1", where="Acme")
        with pytest.raises(WouldLockYouOut):
            policies.ensure_not_locked_out(merged, has_second_factor=True, ip="192.0.2.1")
        policies.enforce(merged, has_second_factor=True, ip="10.0.0.1", where="Acme")


class TestValues:
    def test_bad_values_are_all_reported(self) -> None:
        with pytest.raises(ValidationFailed) as refused:
            policies.check_policy(
                require_two_factor=None,
                allowed_ip_ranges=["10.0.0.1/8", "fe80::/10", "nope"],
                max_session_timeout_minutes=0,
                password_min_length=PASSWORD_MIN_LENGTH - 1,
            )
        assert [(p.field, p.code) for p in refused.value.errors] == [
            ("allowed_ip_ranges.0", "invalid_cidr"),
            ("allowed_ip_ranges.2", "invalid_cidr"),
            ("max_session_timeout_minutes", "out_of_range"),
            ("password_min_length", "out_of_range"),
        ]

    def test_session_timeout_and_password_length(self) -> None:
        assert policies.session_timeout(60, None) == 60
        assert policies.session_timeout(60, 15) == 15
        assert policies.session_timeout(10, 15) == 10
        assert policies.required_password_length([]) == PASSWORD_MIN_LENGTH
        assert policies.required_password_length([None, 14, 20]) == 20

    def test_changes_name_only_what_changed(self) -> None:
        before = SecurityPolicy(password_min_length=14)
        after = SecurityPolicy(password_min_length=14, require_two_factor=True)
        assert policies.changes(before, after) == {
            "require_two_factor": {"before": None, "after": True}
        }


class TestScope:
    """Reach, then status, then policy, then permission."""

    def facts(self, **kw: object) -> ScopeFacts:
        strict = SecurityPolicy(
            require_two_factor=True, allowed_ip_ranges=(ipaddress.ip_network("10.0.0.0/8"),)
        )
        base: dict[str, object] = {
            "tenant": tenant(),
            "member": True,
            "has_live_grant_in_tree": True,
            "held": [Held(grant(uuid4(), ROOT, "read_only"), 0)],
            "roles": ROLES,
            "policies": [(ROOT, strict)],
        }
        return ScopeFacts(**(base | kw))  # type: ignore[arg-type]

    def test_policy_comes_after_reach_and_status_and_before_permission(self) -> None:
        with pytest.raises(NotFound):
            access.resolve_scope(caller(), self.facts(member=False), NOW)
        with pytest.raises(TenantDisabled):
            access.resolve_scope(caller(), self.facts(chain_disabled=True), NOW)
        with pytest.raises(TwoFactorRequired):
            access.resolve_scope(caller(), self.facts(), NOW)
        with pytest.raises(IpNotAllowed):
            access.resolve_scope(caller(), self.facts(has_second_factor=True), NOW)
        inside = replace(caller(), ip="10.1.2.3")
        scope = access.resolve_scope(inside, self.facts(has_second_factor=True), NOW)
        with pytest.raises(Forbidden):
            access.require(scope, "clients.write")
