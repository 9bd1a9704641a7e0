"""The permission catalog and the built-in roles that follow it."""

from __future__ import annotations

import pytest

from access_api.domain import permissions
from access_api.domain.permissions import (
    ADMIN_ROLE,
    DESCRIPTIONS,
    READ_ONLY_ROLE,
    Permission,
    builtin_permissions,
)


class TestCatalog:
    def test_every_permission_is_described(self) -> None:
        assert set(DESCRIPTIONS) == set(Permission)

    def test_read_permissions_are_the_dot_read_ones(self) -> None:
        assert all(p.endswith(".read") for p in permissions.READ_PERMISSIONS)
        assert Permission.USERS_READ in permissions.READ_PERMISSIONS


class TestBuiltinRoles:
    def test_admin_holds_the_whole_catalog_whatever_was_stored(self) -> None:
        assert builtin_permissions(ADMIN_ROLE, frozenset({"users.read"})) == frozenset(Permission)

    def test_read_only_holds_every_read_permission(self) -> None:
        assert builtin_permissions(READ_ONLY_ROLE, frozenset()) == permissions.READ_PERMISSIONS

    def test_a_permission_added_to_the_catalog_reaches_admin_at_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        grown = permissions.ALL_PERMISSIONS | {"widgets.read"}
        monkeypatch.setattr(permissions, "ALL_PERMISSIONS", grown)
        assert "widgets.read" in builtin_permissions(ADMIN_ROLE, frozenset())

    def test_a_custom_role_keeps_what_it_stores(self) -> None:
        assert builtin_permissions("auditor", frozenset({"audit.read"})) == {"audit.read"}
