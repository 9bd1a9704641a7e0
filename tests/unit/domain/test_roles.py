"""Role rules as plain calls: where roles are defined, what they may hold, how they change."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from access_api.domain import roles
from access_api.domain.access import Caller, Role, Scope, Standing
from access_api.domain.audit import ActorKind
from access_api.domain.errors import (
    Forbidden,
    PrivilegeEscalation,
    RoleImmutable,
    RoleInUse,
    ValidationFailed,
)
from access_api.domain.permissions import Permission
from access_api.domain.tenants import Tenant, TenantKind, TenantStatus

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
READ = Permission.USERS_READ.value
WRITE = Permission.ROLES_WRITE.value


def scope_in(*, parent_id: UUID | None, permissions: frozenset[str]) -> Scope:
    tenant_id = uuid4()
    return Scope(
        caller=Caller(
            user_id=uuid4(),
            email="a@example.com",
            credential=ActorKind.SESSION,
            credential_id=uuid4(),
        ),
        tenant=Tenant(
            id=tenant_id,
            root_id=tenant_id if parent_id is None else uuid4(),
            parent_id=parent_id,
            kind=TenantKind.MSP if parent_id is None else TenantKind.CLIENT,
            name="Somewhere",
            domain_prefix="somewhere",
            street_address=None,
            status=TenantStatus.ENABLED,
            created_at=NOW,
            updated_at=NOW,
        ),
        standing=Standing(reached=True, permissions=permissions),
    )


def custom(*, builtin: bool = False) -> Role:
    role = roles.new_role(
        id=uuid4(), root_id=uuid4(), key="helpdesk", name="Helpdesk", permissions=[READ], now=NOW
    )
    return replace(role, builtin=builtin)


class TestNewRole:
    def test_a_custom_role_has_a_slug_key_a_trimmed_name_and_known_permissions(self) -> None:
        role = roles.new_role(
            id=uuid4(),
            root_id=uuid4(),
            key="quality_manager",
            name=" QM ",
            permissions=[READ, READ],
            now=NOW,
        )
        assert (role.key, role.name, role.permissions, role.builtin) == (
            "quality_manager",
            "QM",
            frozenset({READ}),
            False,
        )

    @pytest.mark.parametrize("key", ["Admin", "1st", "a", "with space", "-dash", "x" * 65])
    def test_a_key_that_is_not_a_slug_is_refused(self, key: str) -> None:
        with pytest.raises(ValidationFailed) as refused:
            roles.new_role(id=uuid4(), root_id=uuid4(), key=key, name="R", permissions=[], now=NOW)
        assert refused.value.errors[0].code == "invalid_role_key"

    def test_a_permission_outside_the_catalog_is_refused(self) -> None:
        with pytest.raises(ValidationFailed) as refused:
            roles.new_role(
                id=uuid4(),
                root_id=uuid4(),
                key="r1",
                name="R",
                permissions=["root.everything"],
                now=NOW,
            )
        assert refused.value.errors[0].code == "unknown_permission"

    def test_a_blank_name_is_refused(self) -> None:
        with pytest.raises(ValidationFailed):
            roles.new_role(
                id=uuid4(), root_id=uuid4(), key="r1", name="  ", permissions=[], now=NOW
            )


class TestWhoDefinesRoles:
    def test_roles_are_defined_from_the_msp_account_only(self) -> None:
        with pytest.raises(Forbidden):
            roles.ensure_can_define(
                scope_in(parent_id=uuid4(), permissions=frozenset({READ, WRITE})), [READ]
            )
        roles.ensure_can_define(scope_in(parent_id=None, permissions=frozenset({READ})), [READ])

    def test_nobody_defines_a_role_with_a_permission_they_lack(self) -> None:
        with pytest.raises(PrivilegeEscalation):
            roles.ensure_can_define(
                scope_in(parent_id=None, permissions=frozenset({WRITE})), [READ]
            )


class TestUpdateRole:
    def test_a_change_is_recorded_field_by_field_and_dated(self) -> None:
        role = custom()
        later = NOW + timedelta(hours=1)
        updated, changes = roles.update_role(role, {"name": "Support", "key": "helpdesk"}, later)
        assert (updated.name, updated.updated_at) == ("Support", later)
        assert changes == {"name": {"before": "Helpdesk", "after": "Support"}}

    def test_no_change_leaves_the_role_as_it_was(self) -> None:
        role = custom()
        assert roles.update_role(role, {"permissions": [READ]}, NOW + timedelta(hours=1)) == (
            role,
            {},
        )

    def test_the_key_never_changes(self) -> None:
        with pytest.raises(ValidationFailed):
            roles.update_role(custom(), {"key": "other"}, NOW)

    def test_built_in_roles_never_change(self) -> None:
        with pytest.raises(RoleImmutable):
            roles.update_role(custom(builtin=True), {"name": "Boss"}, NOW)


class TestDeleteRole:
    def test_a_role_nobody_holds_can_go(self) -> None:
        roles.ensure_deletable(custom(), in_use=False)

    def test_a_held_or_offered_role_stays(self) -> None:
        with pytest.raises(RoleInUse):
            roles.ensure_deletable(custom(), in_use=True)

    def test_built_in_roles_stay(self) -> None:
        with pytest.raises(RoleImmutable):
            roles.ensure_deletable(custom(builtin=True), in_use=False)
