"""Access explained as plain calls: each permission, the grants behind it, what blocks it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from access_api.domain.access import Grant, Held, Role
from access_api.domain.explained import explain_tenant
from access_api.domain.tenants import Tenant, TenantKind, TenantStatus

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ROOT = uuid4()
USER = uuid4()


def role(key: str, *permissions: str) -> Role:
    return Role(
        id=uuid4(), root_id=ROOT, key=key, name=key, permissions=frozenset(permissions),
        builtin=False, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


ROLES = {"reader": role("reader", "users.read"), "boss": role("boss", "users.read", "users.delete")}
TENANT = Tenant(
    id=uuid4(), root_id=ROOT, parent_id=ROOT, kind=TenantKind.CLIENT, name="Acme",
    domain_prefix="acme", street_address=None, status=TenantStatus.ENABLED,
    created_at=NOW, updated_at=NOW,
)  # fmt: skip


def held(tenant_id: object, roles: set[str], depth: int, *, below: bool = False,
         expires_at: datetime | None = None) -> Held:  # fmt: skip
    grant = Grant(
        user_id=USER, tenant_id=tenant_id, roles=frozenset(roles),  # type: ignore[arg-type]
        include_descendants=below, expires_at=expires_at,
    )  # fmt: skip
    return Held(grant, depth)


def test_each_permission_names_every_grant_it_comes_from() -> None:
    until = NOW + timedelta(days=1)
    explained = explain_tenant(
        TENANT,
        [held(ROOT, {"reader"}, 1, below=True), held(TENANT.id, {"boss"}, 0, expires_at=until)],
        ROLES,
        NOW,
        disabled_from_above=False,
    )
    assert explained is not None
    by_name = {p.permission: p for p in explained.permissions}
    assert [(s.role, s.inherited, s.expires_at) for s in by_name["users.read"].sources] == [
        ("boss", False, until),
        ("reader", True, None),
    ]
    assert [s.role for s in by_name["users.delete"].sources] == ["boss"]


def test_expired_and_non_inheritable_grants_count_for_nothing() -> None:
    assert (
        explain_tenant(
            TENANT,
            [held(ROOT, {"boss"}, 1), held(TENANT.id, {"boss"}, 0, expires_at=NOW)],
            ROLES,
            NOW,
            disabled_from_above=False,
        )
        is None
    )


def test_a_disabled_tenant_and_a_policy_block_permissions() -> None:
    grants = [held(TENANT.id, {"boss"}, 0)]
    off = explain_tenant(TENANT, grants, ROLES, NOW, disabled_from_above=True)
    assert off is not None
    assert {p.blocked_by for p in off.permissions} == {"tenant_disabled"}
    policed = explain_tenant(
        TENANT,
        grants,
        ROLES,
        NOW,
        disabled_from_above=False,
        policy=lambda tenant, permission: (
            "two_factor_required" if permission == "users.delete" else None
        ),
    )
    assert policed is not None
    assert {p.permission: p.blocked_by for p in policed.permissions} == {
        "users.delete": "two_factor_required",
        "users.read": None,
    }
