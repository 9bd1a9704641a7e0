"""Tenant rules as plain function calls: no database, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from access_api.domain import tenants
from access_api.domain.errors import (
    BulkRefused,
    ConfirmationRequired,
    InvalidParent,
    TenantImmutableField,
    ValidationFailed,
)
from access_api.domain.tenants import Subtree, Tenant, TenantKind, TenantStatus

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def root() -> Tenant:
    return tenants.new_root(id=uuid4(), name="Northwind", domain_prefix="northwind", now=NOW)


def child(parent: Tenant, kind: TenantKind = TenantKind.CLIENT, prefix: str = "acme") -> Tenant:
    return tenants.new_child(
        parent,
        id=uuid4(),
        kind=kind,
        name="Acme",
        domain_prefix=prefix,
        street_address=None,
        now=NOW,
    )


class TestShape:
    def test_an_msp_owns_clients_and_multi_clients(self) -> None:
        msp = root()
        assert child(msp).parent_id == msp.id
        multi = child(msp, TenantKind.MULTI_CLIENT, "group")
        assert child(multi).root_id == msp.id

    def test_a_client_owns_nothing(self) -> None:
        client = child(root())
        with pytest.raises(InvalidParent):
            child(client)

    def test_a_multi_client_lives_only_under_an_msp(self) -> None:
        multi = child(root(), TenantKind.MULTI_CLIENT, "group")
        with pytest.raises(InvalidParent):
            child(multi, TenantKind.MULTI_CLIENT, "nested")

    def test_nothing_creates_another_msp(self) -> None:
        with pytest.raises(InvalidParent):
            child(root(), TenantKind.MSP, "rogue")


class TestDomainPrefix:
    @pytest.mark.parametrize("prefix", ["abc", "acme-dental", "a1b", "x" * 63, "0-9"])
    def test_accepts_dns_labels(self, prefix: str) -> None:
        assert tenants.check_domain_prefix(prefix) == prefix

    @pytest.mark.parametrize("prefix", ["ab", "x" * 64, "-ab", "ab-", "Abc", "a_b", "a.b", ""])
    def test_refuses_anything_else(self, prefix: str) -> None:
        with pytest.raises(ValidationFailed) as refused:
            tenants.check_domain_prefix(prefix)
        assert refused.value.errors[0].field == "domain_prefix"


class TestUpdate:
    def test_reports_only_what_changed(self) -> None:
        client = child(root())
        later = NOW + timedelta(hours=1)
        updated, changes = tenants.update(
            client, {"name": " Acme Dental ", "street_address": ""}, later
        )
        assert updated.name == "Acme Dental"
        assert changes == {"name": {"before": "Acme", "after": "Acme Dental"}}
        assert updated.updated_at == later

    def test_no_change_keeps_updated_at(self) -> None:
        client = child(root())
        updated, changes = tenants.update(client, {"name": "Acme"}, NOW + timedelta(hours=1))
        assert (updated, changes) == (client, {})

    @pytest.mark.parametrize(
        ("field", "value"), [("kind", "multi_client"), ("domain_prefix", "other")]
    )
    def test_kind_and_prefix_are_fixed(self, field: str, value: str) -> None:
        with pytest.raises(TenantImmutableField):
            tenants.update(child(root()), {field: value}, NOW)

    def test_sending_back_the_fixed_values_is_harmless(self) -> None:
        client = child(root())
        _, changes = tenants.update(client, {"kind": "client", "domain_prefix": "acme"}, NOW)
        assert changes == {}


class TestBulk:
    def test_status_change_names_every_unreachable_id(self) -> None:
        client = child(root())
        missing = [uuid4(), uuid4()]
        with pytest.raises(BulkRefused) as refused:
            tenants.plan_status_change(
                [client.id, *missing], {client.id: client}, TenantStatus.DISABLED, NOW
            )
        assert [item.id for item in refused.value.errors] == missing

    def test_status_change_skips_tenants_already_there(self) -> None:
        client = child(root())
        changes = tenants.plan_status_change(
            [client.id, client.id], {client.id: client}, TenantStatus.ENABLED, NOW
        )
        assert changes == []

    def test_deletion_needs_the_word(self) -> None:
        with pytest.raises(ConfirmationRequired):
            tenants.plan_deletion([uuid4()], {}, confirm="yes", cascade=False)

    def test_deletion_of_a_parent_needs_cascade(self) -> None:
        multi = child(root(), TenantKind.MULTI_CLIENT, "group")
        below: frozenset[UUID] = frozenset({uuid4()})
        reachable = {multi.id: Subtree(tenant=multi, descendant_ids=below)}
        with pytest.raises(BulkRefused) as refused:
            tenants.plan_deletion([multi.id], reachable, confirm="delete", cascade=False)
        assert refused.value.errors[0].error.code == "has_children"
        assert tenants.plan_deletion([multi.id], reachable, confirm="delete", cascade=True) == [
            multi
        ]
