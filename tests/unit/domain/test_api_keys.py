"""API key rules as plain calls: naming, expiry, regeneration, revocation, who manages them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from access_api.domain import api_keys
from access_api.domain.access import Caller, Scope, Standing
from access_api.domain.audit import ActorKind
from access_api.domain.errors import (
    ApiKeyExpired,
    Forbidden,
    NotFound,
    PrivilegeEscalation,
    Unauthenticated,
    ValidationFailed,
)
from access_api.domain.permissions import Permission
from access_api.domain.tenants import Tenant, TenantKind, TenantStatus

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def key(**changes: Any) -> api_keys.ApiKey:
    made = api_keys.generate(
        id=uuid4(),
        root_id=uuid4(),
        user_id=uuid4(),
        name=None,
        expires_at=None,
        secret="aak_" + "x" * 40,
        created_by=uuid4(),
        now=NOW,
    )
    return replace(made, **changes)


def scope_of(user_id: UUID, permissions: frozenset[str]) -> Scope:
    tenant_id = uuid4()
    return Scope(
        caller=Caller(
            user_id=user_id,
            email="a@example.com",
            credential=ActorKind.SESSION,
            credential_id=uuid4(),
        ),
        tenant=Tenant(
            id=tenant_id,
            root_id=tenant_id,
            parent_id=None,
            kind=TenantKind.MSP,
            name="MSP",
            domain_prefix="msp",
            street_address=None,
            status=TenantStatus.ENABLED,
            created_at=NOW,
            updated_at=NOW,
        ),
        standing=Standing(reached=True, permissions=permissions),
    )


class TestApiKeys:
    def test_a_new_key_needs_a_name_and_a_future_expiry(self) -> None:
        with pytest.raises(ValidationFailed) as refused:
            api_keys.generate(
                id=uuid4(),
                root_id=uuid4(),
                user_id=uuid4(),
                name=" ",
                expires_at=NOW,
                secret="aak_secret",
                created_by=uuid4(),
                now=NOW,
            )
        assert {error.field for error in refused.value.errors} == {"name", "expires_at"}

    def test_a_key_works_until_revoked_expired_or_its_user_leaves(self) -> None:
        live = key(expires_at=NOW + timedelta(hours=1))
        assert api_keys.check_usable(live, member=True, now=NOW) == live
        for candidate, member, at in (
            (None, True, NOW),
            (live, False, NOW),
            (live, True, NOW + timedelta(hours=1)),
            (api_keys.revoke(live, NOW), True, NOW),
        ):
            with pytest.raises(Unauthenticated):
                api_keys.check_usable(candidate, member=member, now=at)

    def test_regenerating_needs_a_live_key(self) -> None:
        with pytest.raises(NotFound):
            api_keys.regenerate(key(revoked_at=NOW), "aak_new", NOW)
        with pytest.raises(ApiKeyExpired):
            api_keys.regenerate(key(expires_at=NOW), "aak_new", NOW)
        assert api_keys.regenerate(key(), "aak_newsecret", NOW).prefix == "aak_newsecre"

    def test_use_is_written_down_at_most_once_a_minute(self) -> None:
        assert api_keys.should_touch(key(), NOW)
        recent = key(last_used_at=NOW)
        assert not api_keys.should_touch(recent, NOW + timedelta(seconds=59))
        assert api_keys.should_touch(recent, NOW + timedelta(seconds=60))

    def test_a_key_without_a_name_gets_the_default_one_trimmed_names_stay(self) -> None:
        assert key().name == api_keys.DEFAULT_NAME
        assert replace(key(), name="x").name == "x"
        named = api_keys.generate(
            id=uuid4(),
            root_id=uuid4(),
            user_id=uuid4(),
            name="  CI  ",
            expires_at=NOW + timedelta(days=1),
            secret="aak_" + "y" * 40,
            created_by=uuid4(),
            now=NOW,
        )
        assert (named.name, named.prefix) == ("CI", "aak_yyyyyyyy")

    def test_a_revoked_key_is_gone(self) -> None:
        revoked = api_keys.revoke(key(), NOW)
        assert revoked.revoked_at == NOW
        assert api_keys.revoked_changes(revoked) == {
            "revoked_at": {"before": None, "after": NOW.isoformat()}
        }
        with pytest.raises(NotFound):
            api_keys.revoke(revoked, NOW)


class TestWhoManagesKeys:
    def test_everyone_manages_their_own_keys_without_the_permission(self) -> None:
        me = uuid4()
        api_keys.ensure_can_manage_keys(scope_of(me, frozenset()), me)

    def test_anyone_else_s_keys_need_api_keys_manage(self) -> None:
        with pytest.raises(Forbidden):
            api_keys.ensure_can_manage_keys(scope_of(uuid4(), frozenset()), uuid4())
        allowed = scope_of(uuid4(), frozenset({Permission.API_KEYS_MANAGE.value}))
        api_keys.ensure_can_manage_keys(allowed, uuid4())


class TestScopes:
    """A key narrowed to some permissions and tenants: never beyond its maker."""

    def caller(self, **limits: Any) -> Caller:
        return Caller(
            user_id=uuid4(),
            email="a@example.com",
            credential=ActorKind.API_KEY if limits else ActorKind.SESSION,
            credential_id=uuid4(),
            **limits,
        )

    def test_narrowed_to_permissions_the_maker_holds_and_tenants_in_reach(self) -> None:
        here = uuid4()
        scoped = api_keys.scoped(
            key(),
            caller=self.caller(),
            caller_permissions=frozenset({"users.read", "users.write"}),
            permissions=["users.read"],
            tenant_ids=[here],
            reachable=frozenset({here}),
        )
        assert (scoped.permissions, scoped.tenant_ids) == (
            frozenset({"users.read"}),
            frozenset({here}),
        )

    def test_more_than_the_maker_holds_is_privilege_escalation(self) -> None:
        with pytest.raises(PrivilegeEscalation):
            api_keys.scoped(
                key(),
                caller=self.caller(),
                caller_permissions=frozenset({"users.read"}),
                permissions=["users.delete"],
                tenant_ids=None,
                reachable=frozenset(),
            )

    def test_a_tenant_out_of_reach_is_absent(self) -> None:
        with pytest.raises(NotFound):
            api_keys.scoped(
                key(),
                caller=self.caller(),
                caller_permissions=frozenset(),
                permissions=None,
                tenant_ids=[uuid4()],
                reachable=frozenset(),
            )

    def test_a_scoped_maker_passes_its_scope_on_and_never_widens(self) -> None:
        place = uuid4()
        maker = self.caller(
            permission_limit=frozenset({"users.read"}), tenant_limit=frozenset({place})
        )
        inherited = api_keys.scoped(
            key(),
            caller=maker,
            caller_permissions=frozenset({"users.read"}),
            permissions=None,
            tenant_ids=None,
            reachable=frozenset(),
        )
        assert (inherited.permissions, inherited.tenant_ids) == (
            frozenset({"users.read"}),
            frozenset({place}),
        )
        with pytest.raises(PrivilegeEscalation):
            api_keys.ensure_no_wider(maker, key())
