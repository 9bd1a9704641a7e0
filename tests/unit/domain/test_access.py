"""Access rules as plain function calls: reach, effective permissions, grants, last admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from access_api.domain import access
from access_api.domain.access import (
    Caller,
    Grant,
    GrantChange,
    GrantContext,
    GrantRequest,
    Held,
    Role,
    ScopeFacts,
    Standing,
)
from access_api.domain.audit import Action, ActorKind
from access_api.domain.errors import (
    BulkRefused,
    Forbidden,
    LastAdmin,
    NoAccess,
    NotFound,
    TenantDisabled,
    UserOutsideScope,
    ValidationFailed,
)
from access_api.domain.permissions import ALL_PERMISSIONS, READ_PERMISSIONS
from access_api.domain.tenants import Tenant, TenantKind, TenantStatus

NOW = datetime(2026, 11, 22, tzinfo=UTC)
ROOT = uuid4()


def role(key: str, permissions: frozenset[str]) -> Role:
    return Role(
        id=uuid4(),
        root_id=ROOT,
        key=key,
        name=key,
        permissions=permissions,
        builtin=False,
        created_at=NOW,
        updated_at=NOW,
    )


ROLES = {
    "admin": role("admin", ALL_PERMISSIONS),
    "read_only": role("read_only", READ_PERMISSIONS),
    "editor": role("editor", frozenset({"users.read", "users.write"})),
}


def caller(user_id: UUID | None = None, root_id: UUID | None = None) -> Caller:
    return Caller(
        user_id=user_id or uuid4(),
        email="c@example.com",
        credential=ActorKind.SESSION,
        credential_id=uuid4(),
        root_id=root_id,
    )


def grant(
    user: UUID, tenant: UUID, *roles: str, below: bool = False, expires_at: datetime | None = None
) -> Grant:
    return Grant(
        user_id=user,
        tenant_id=tenant,
        roles=frozenset(roles),
        include_descendants=below,
        expires_at=expires_at,
    )


def tenant(tenant_id: UUID | None = None) -> Tenant:
    tid = tenant_id or uuid4()
    return Tenant(
        id=tid,
        root_id=ROOT,
        parent_id=ROOT,
        kind=TenantKind.CLIENT,
        name="Acme",
        domain_prefix="acme",
        street_address=None,
        status=TenantStatus.ENABLED,
        created_at=NOW,
        updated_at=NOW,
    )


class TestStanding:
    def test_union_of_direct_roles_and_inherited_ones(self) -> None:
        me = uuid4()
        held = [
            Held(grant(me, uuid4(), "editor"), 0),
            Held(grant(me, ROOT, "read_only", below=True), 1),
        ]
        standing = access.standing(held, ROLES, NOW)
        assert standing.roles == {"editor", "read_only"}
        assert standing.permissions == READ_PERMISSIONS | {"users.write"}
        assert standing.inheritable == READ_PERMISSIONS

    def test_a_grant_above_without_include_descendants_does_not_apply(self) -> None:
        held = [Held(grant(uuid4(), ROOT, "admin"), 1)]
        assert access.standing(held, ROLES, NOW) == Standing(reached=False)

    def test_expired_grants_no_longer_count(self) -> None:
        held = [Held(grant(uuid4(), ROOT, "admin", expires_at=NOW), 0)]
        assert not access.standing(held, ROLES, NOW).reached
        assert access.standing(held, ROLES, NOW - timedelta(seconds=1)).reached

    def test_a_scoped_credential_does_no_more_than_its_limit(self) -> None:
        held = [Held(grant(uuid4(), ROOT, "admin"), 0)]
        standing = access.standing(held, ROLES, NOW, limit=frozenset({"users.read"}))
        assert standing.permissions == {"users.read"}


class TestResolveScope:
    def facts(self, **kw: object) -> ScopeFacts:
        base: dict[str, object] = {
            "tenant": tenant(),
            "member": True,
            "has_live_grant_in_tree": True,
            "held": [Held(grant(uuid4(), ROOT, "read_only"), 0)],
            "roles": ROLES,
        }
        return ScopeFacts(**(base | kw))  # type: ignore[arg-type]

    def test_resolves_and_requires(self) -> None:
        scope = access.resolve_scope(caller(), self.facts(), NOW)
        access.require(scope, "tenants.read")
        with pytest.raises(Forbidden):
            access.require(scope, "clients.write")

    @pytest.mark.parametrize(
        ("facts", "error"),
        [
            ({"tenant": None}, NotFound),
            ({"member": False}, NotFound),
            ({"has_live_grant_in_tree": False}, NoAccess),
            ({"held": []}, NotFound),
            ({"chain_disabled": True}, TenantDisabled),
        ],
    )
    def test_refusals_in_order_reach_access_status(
        self, facts: dict[str, object], error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            access.resolve_scope(caller(), self.facts(**facts), NOW)

    def test_a_disabled_tenant_outside_reach_stays_absent(self) -> None:
        with pytest.raises(NotFound):
            access.resolve_scope(caller(), self.facts(held=[], chain_disabled=True), NOW)

    def test_a_tree_bound_credential_sees_nothing_of_other_trees(self) -> None:
        with pytest.raises(NotFound):
            access.resolve_scope(caller(root_id=uuid4()), self.facts(), NOW)


class TestPlanGrants:
    def context(
        self,
        me: Caller,
        *,
        standing: Standing,
        users: set[UUID],
        tenants: set[UUID],
        current: dict[tuple[UUID, UUID], Grant] | None = None,
        admins: frozenset[UUID] = frozenset(),
    ) -> GrantContext:
        return GrantContext(
            caller=me,
            reachable_tenants=frozenset(tenants),
            visible_users=frozenset(users),
            caller_standing=dict.fromkeys(tenants, standing),
            current=current or {},
            roles=ROLES,
            root_id=ROOT,
            root_admins=admins,
            now=NOW,
        )

    def admin_standing(self) -> Standing:
        return Standing(
            reached=True,
            roles=frozenset({"admin"}),
            permissions=ALL_PERMISSIONS,
            inheritable=ALL_PERMISSIONS,
        )

    def test_grants_changes_and_removes(self) -> None:
        me, target, t = caller(), uuid4(), uuid4()
        current = {(target, t): grant(target, t, "read_only")}
        context = self.context(
            me, standing=self.admin_standing(), users={target}, tenants={t}, current=current
        )
        (change,) = access.plan_grants(
            [
                GrantRequest(
                    user_id=target, tenant_id=t, roles=("admin",), include_descendants=False
                )
            ],
            context,
        )
        assert change.after is not None
        assert change.after.roles == {"admin"}
        (removal,) = access.plan_grants(
            [GrantRequest(user_id=target, tenant_id=t, roles=(), include_descendants=False)],
            context,
        )
        assert removal.after is None

    def test_an_unchanged_grant_is_no_change(self) -> None:
        me, target, t = caller(), uuid4(), uuid4()
        current = {(target, t): grant(target, t, "read_only")}
        context = self.context(
            me, standing=self.admin_standing(), users={target}, tenants={t}, current=current
        )
        assert (
            access.plan_grants(
                [
                    GrantRequest(
                        user_id=target, tenant_id=t, roles=("read_only",), include_descendants=False
                    )
                ],
                context,
            )
            == []
        )

    def test_nobody_changes_their_own_access(self) -> None:
        me, t = caller(), uuid4()
        context = self.context(me, standing=self.admin_standing(), users={me.user_id}, tenants={t})
        with pytest.raises(BulkRefused) as refused:
            access.plan_grants(
                [
                    GrantRequest(
                        user_id=me.user_id, tenant_id=t, roles=("admin",), include_descendants=False
                    )
                ],
                context,
            )
        assert refused.value.errors[0].error.code == "cannot_change_own_access"

    def test_no_granting_what_one_lacks(self) -> None:
        me, target, t = caller(), uuid4(), uuid4()
        editor = Standing(
            reached=True,
            permissions=frozenset({"users.read", "users.write", "authorizations.write"}),
        )
        context = self.context(me, standing=editor, users={target}, tenants={t})
        with pytest.raises(BulkRefused) as refused:
            access.plan_grants(
                [
                    GrantRequest(
                        user_id=target, tenant_id=t, roles=("admin",), include_descendants=False
                    )
                ],
                context,
            )
        assert refused.value.errors[0].error.code == "privilege_escalation"
        assert access.plan_grants(
            [
                GrantRequest(
                    user_id=target, tenant_id=t, roles=("editor",), include_descendants=False
                )
            ],
            context,
        )

    def test_reaching_below_needs_inheritable_permissions(self) -> None:
        me, target, t = caller(), uuid4(), uuid4()
        local_admin = Standing(reached=True, permissions=ALL_PERMISSIONS, inheritable=frozenset())
        context = self.context(me, standing=local_admin, users={target}, tenants={t})
        assert access.plan_grants(
            [
                GrantRequest(
                    user_id=target, tenant_id=t, roles=("admin",), include_descendants=False
                )
            ],
            context,
        )
        with pytest.raises(BulkRefused):
            access.plan_grants(
                [
                    GrantRequest(
                        user_id=target, tenant_id=t, roles=("admin",), include_descendants=True
                    )
                ],
                context,
            )

    def test_users_and_tenants_out_of_reach_are_absent(self) -> None:
        me, stranger, t = caller(), uuid4(), uuid4()
        context = self.context(me, standing=self.admin_standing(), users=set(), tenants={t})
        with pytest.raises(BulkRefused) as refused:
            access.plan_grants(
                [
                    GrantRequest(
                        user_id=stranger, tenant_id=t, roles=("admin",), include_descendants=False
                    ),
                ],
                context,
            )
        assert refused.value.errors[0].error.code == "not_found"

    def test_duplicate_items_are_a_validation_error(self) -> None:
        me, target, t = caller(), uuid4(), uuid4()
        context = self.context(me, standing=self.admin_standing(), users={target}, tenants={t})
        item = GrantRequest(
            user_id=target, tenant_id=t, roles=("admin",), include_descendants=False
        )
        with pytest.raises(ValidationFailed):
            access.plan_grants([item, item], context)

    def test_replace_semantics_remove_unlisted_grants(self) -> None:
        me, target, a, b = caller(), uuid4(), uuid4(), uuid4()
        current = {(target, a): grant(target, a, "admin"), (target, b): grant(target, b, "admin")}
        context = self.context(
            me, standing=self.admin_standing(), users={target}, tenants={a, b}, current=current
        )
        changes = access.plan_grants([], context, replace_within=[(target, a), (target, b)])
        assert {(c.tenant_id, c.after) for c in changes} == {(a, None), (b, None)}


class TestLastAdmin:
    def test_removing_the_last_admin_is_refused(self) -> None:
        only = uuid4()
        change = GrantChange(before=grant(only, ROOT, "admin", below=True), after=None)
        with pytest.raises(LastAdmin):
            access.ensure_admin_remains(ROOT, frozenset({only}), [change])

    def test_demoting_the_last_admin_is_refused(self) -> None:
        only = uuid4()
        change = GrantChange(
            before=grant(only, ROOT, "admin"), after=grant(only, ROOT, "read_only")
        )
        with pytest.raises(LastAdmin):
            access.ensure_admin_remains(ROOT, frozenset({only}), [change])

    def test_one_of_two_may_go_and_a_new_one_may_replace_the_last(self) -> None:
        a, b = uuid4(), uuid4()
        access.ensure_admin_remains(
            ROOT, frozenset({a, b}), [GrantChange(before=grant(a, ROOT, "admin"), after=None)]
        )
        access.ensure_admin_remains(
            ROOT,
            frozenset({a}),
            [
                GrantChange(before=grant(a, ROOT, "admin"), after=None),
                GrantChange(before=None, after=grant(b, ROOT, "admin")),
            ],
        )

    def test_grants_elsewhere_do_not_count(self) -> None:
        only = uuid4()
        change = GrantChange(before=grant(only, uuid4(), "admin"), after=None)
        access.ensure_admin_remains(ROOT, frozenset({only}), [change])


class TestDownwardOnly:
    def test_a_person_is_managed_only_from_at_or_above_all_their_grants(self) -> None:
        client, msp = uuid4(), uuid4()
        access.ensure_within(client, [[client, msp]])
        access.ensure_within(msp, [[client, msp], [msp]])
        with pytest.raises(UserOutsideScope):
            access.ensure_within(client, [[client, msp], [msp]])


class TestGrantChangeEvents:
    def test_a_change_names_its_audit_action(self) -> None:
        user, tenant = uuid4(), uuid4()
        grant = Grant(user_id=user, tenant_id=tenant, roles=frozenset({"admin"}),
                      include_descendants=False)  # fmt: skip
        narrower = Grant(user_id=user, tenant_id=tenant, roles=frozenset({"read_only"}),
                         include_descendants=False)  # fmt: skip
        assert GrantChange(before=None, after=grant).action is Action.AUTHORIZATION_GRANTED
        assert GrantChange(before=grant, after=None).action is Action.AUTHORIZATION_REMOVED
        assert GrantChange(before=grant, after=narrower).action is Action.AUTHORIZATION_CHANGED

    def test_a_removal_records_the_grants_that_went_and_membership(self) -> None:
        user, tenant = uuid4(), uuid4()
        grant = Grant(user_id=user, tenant_id=tenant, roles=frozenset({"b", "a"}),
                      include_descendants=True)  # fmt: skip
        removed = [GrantChange(before=grant, after=None)]
        assert access.removal_changes(removed, left_organization=True) == {
            "grants": {"before": [["a", "b"]], "after": []},
            "tenants": {"before": [str(tenant)], "after": []},
            "member": {"before": True, "after": False},
        }
        assert access.removal_changes([], left_organization=False)["member"] == {
            "before": True, "after": True,
        }  # fmt: skip


class TestReachWithinLimit:
    """What a key scoped to some tenants still draws on, for GET /v1/me."""

    def test_keeps_grants_at_or_below_the_limit_and_inheritable_ones_above_it(self) -> None:
        user, region, client, beside = uuid4(), uuid4(), uuid4(), uuid4()
        chains = {
            ROOT: [ROOT],
            region: [region, ROOT],
            client: [client, region, ROOT],
            beside: [beside, ROOT],
        }
        above = access.Reach(grant=grant(user, ROOT, "admin", below=True), tenant=tenant(ROOT))
        flat_above = access.Reach(grant=grant(user, ROOT, "admin"), tenant=tenant(ROOT))
        under = access.Reach(grant=grant(user, client, "read_only"), tenant=tenant(client))
        elsewhere = access.Reach(grant=grant(user, beside, "admin"), tenant=tenant(beside))
        held = [above, flat_above, under, elsewhere]
        assert access.reach_within_limit(held, chains, frozenset({region})) == [above, under]
        assert access.reach_within_limit(held, chains, None) == held
        assert access.reach_within_limit(held, chains, frozenset({beside})) == [above, elsewhere]


class TestTenantsReachedWithin:
    """How many live tenants a scoped key reaches, from its grants and the stored counts."""

    def test_counts_each_part_once_and_only_live_ones(self) -> None:
        user, region, client, other, beside = uuid4(), uuid4(), uuid4(), uuid4(), uuid4()
        chains = {
            ROOT: [ROOT],
            region: [region, ROOT],
            client: [client, region, ROOT],
            other: [other, region, ROOT],
            beside: [beside, ROOT],
        }
        below = {ROOT: 4, region: 2, client: 0, other: 0, beside: 0}

        def reach(at: UUID, inherits: bool) -> access.Reach:
            return access.Reach(grant=grant(user, at, "admin", below=inherits), tenant=tenant(at))

        def count(held: list[access.Reach], *limit: UUID, live: dict[UUID, int] = below) -> int:
            return access.tenants_reached_within(held, chains, frozenset(limit), live)

        root_down = reach(ROOT, True)
        assert count([root_down], region) == 3
        assert count([root_down], region, client) == 3  # the client is in the region's count
        assert count([root_down], client, beside) == 2
        assert count([reach(ROOT, False)], region) == 0  # above the limit, not inheriting
        # Within the limit: a subtree, a tenant alone, and one inside a subtree counted once.
        assert count([reach(region, False), reach(client, False)], ROOT) == 2
        assert count([reach(region, True), reach(client, False)], ROOT) == 3
        assert count([reach(region, True), reach(beside, False)], ROOT, region) == 4
        # A tenant no longer live (absent from the counts) adds nothing.
        gone = {tenant_id: n for tenant_id, n in below.items() if tenant_id != beside}
        assert count([root_down], client, beside, live=gone) == 1
        assert count([], region) == 0
