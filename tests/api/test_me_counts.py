"""GET /v1/me counts the tenants a caller reaches from their grants and the number of live
tenants below each grant's tenant (`tenants.live_descendants`), kept as tenants come and go:
the count agrees with the tenants GET /v1/me/tenants pages through, and reading it takes no
row per tenant of the tree."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from access_api.repositories.me import _BY_SESSION
from access_api.repositories.orm import tenant_closure, tenants
from tests.api.conftest import Login, Msp, World


async def _count(world: World, who: Login) -> int:
    """The count GET /v1/me gives, after checking it against the tenants it pages through."""
    response = await world.client.get("/v1/me", headers=who.headers)
    assert response.status_code == 200, response.text
    counted: int = response.json()["counts"]["tenants"]
    assert counted == len(await world.my_tenants(who.headers))
    return counted


async def _kept_right(world: World) -> None:
    """Every tenant's stored count is the number of live tenants below it."""
    below = tenants.alias("below")
    live_below = (
        sa.select(sa.func.count())
        .select_from(tenant_closure.join(below, below.c.id == tenant_closure.c.descendant_id))
        .where(
            tenant_closure.c.ancestor_id == tenants.c.id,
            tenant_closure.c.depth > 0,
            below.c.deleted_at.is_(None),
        )
        .scalar_subquery()
    )
    rows = await world.rows(
        sa.select(tenants.c.name, tenants.c.live_descendants, live_below).where(
            tenants.c.deleted_at.is_(None)
        )
    )
    assert [(name, kept) for name, kept, _ in rows] == [(name, now) for name, _, now in rows]


async def _delete(world: World, msp: Msp, ids: list[str], *, cascade: bool = False) -> None:
    response = await world.client.post(
        f"/v1/tenants/{msp.id}/clients/delete",
        json={"ids": ids, "confirm": "delete", "cascade": cascade},
        headers=msp.admin.headers,
    )
    assert response.status_code == 200, response.text


async def _two_groups(world: World, msp: Msp) -> list[dict[str, Any]]:
    """Group A (A East, A West) and Group B (B Lone) below the MSP."""
    group = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Group A")
    other = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Group B")
    return [
        group,
        await world.tenant(group["id"], msp.admin, name="A East"),
        await world.tenant(group["id"], msp.admin, name="A West"),
        other,
        await world.tenant(other["id"], msp.admin, name="B Lone"),
    ]


async def test_the_count_follows_the_tree_and_counts_each_tenant_once(
    world: World, msp: Msp
) -> None:
    group, east, west, other, lone = await _two_groups(world, msp)
    # A grant below one that reaches everything under Group A adds nothing to the count; one
    # on a client of Group B adds that client only.
    tech = await world.user(
        msp.id,
        [
            (group["id"], ["read_only"], True),
            (east["id"], ["admin"], False),
            (lone["id"], ["read_only"], False),
        ],
    )
    # A grant that reaches no further than its tenant, above grants that reach below theirs.
    manager = await world.user(
        msp.id, [(msp.id, ["read_only"], False), (other["id"], ["read_only"], True)]
    )
    assert (await _count(world, msp.admin), await _count(world, tech)) == (6, 4)
    assert await _count(world, manager) == 3
    await _kept_right(world)

    await world.tenant(group["id"], msp.admin, name="A North")
    assert (await _count(world, msp.admin), await _count(world, tech)) == (7, 5)
    await _delete(world, msp, [west["id"]])
    assert (await _count(world, msp.admin), await _count(world, tech)) == (6, 4)
    await _kept_right(world)

    # Group B and its client go together: the grants on them go, and so does their count.
    await _delete(world, msp, [other["id"]], cascade=True)
    assert (await _count(world, msp.admin), await _count(world, tech)) == (4, 3)
    assert await _count(world, manager) == 1
    await _kept_right(world)


async def test_a_scoped_key_counts_what_it_reaches_within_its_tenants(
    world: World, msp: Msp
) -> None:
    group, east, west, other, lone = await _two_groups(world, msp)
    await world.tenant(other["id"], msp.admin, name="B Two")
    tech = await world.user(
        msp.id,
        [
            (group["id"], ["admin"], True),
            (east["id"], ["admin"], False),
            (lone["id"], ["admin"], False),
            (other["id"], ["admin"], False),
        ],
    )
    admin_login = msp.admin
    expected = {
        # The root's inheritable grant reaches the limit tenants' subtrees, nested or not.
        (admin_login.user_id, (group["id"],)): 3,
        (admin_login.user_id, (group["id"], east["id"])): 3,
        (admin_login.user_id, (east["id"], other["id"])): 4,
        # Grants within a limit tenant: a subtree, or a tenant alone (Group B without its
        # clients, B Lone); a grant above a limit tenant that does not inherit: nothing.
        (tech.user_id, (group["id"], other["id"])): 5,
        (tech.user_id, (lone["id"],)): 1,
        (tech.user_id, (west["id"], lone["id"])): 2,
        (tech.user_id, (msp.id,)): 5,
    }
    users = {admin_login.user_id: admin_login, tech.user_id: tech}
    for (user_id, limited), count in expected.items():
        who = users[user_id]
        response = await world.client.post(
            f"/v1/tenants/{msp.id}/users/{user_id}/api-keys",
            json={"name": "scoped", "tenant_ids": [str(tenant) for tenant in limited]},
            headers=admin_login.headers,
        )
        assert response.status_code == 201, response.text
        key = Login(user_id, who.email, who.password, response.json()["key"])
        assert await _count(world, key) == count, limited
    await _delete(world, msp, [west["id"]])
    assert await _count(world, key) == 4


async def test_counting_reads_no_row_per_tenant(world: World, msp: Msp) -> None:
    """The plan of GET /v1/me's statement, run for the MSP's admin in a tree of 2,000 clients:
    no step of it reads more than a few rows (before the count was kept, counting read a row
    per tenant reached, at several steps)."""
    if world.connection.dialect.name != "postgresql":
        pytest.skip("SQLite gives no row counts of a plan")
    group = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Big group")
    await world.many_clients(msp.id, UUID(group["id"]), 2_000)
    response = await world.client.get("/v1/me", headers=msp.admin.headers)
    assert response.json()["counts"]["tenants"] == 2002
    compiled = _BY_SESSION._compile(world.connection.dialect)
    values: dict[str, Any] = {
        **compiled.fixed,
        "digest": world.state.keyring.digest(msp.admin.token),
        "now": world.clock.now(),
    }
    arguments = [
        process(values[name]) if (process := compiled.bind[name]) and values[name] else values[name]
        for name in compiled.names
    ]
    raw = await world.connection.get_raw_connection()
    explained = await raw.driver_connection.fetchval(  # type: ignore[union-attr]
        f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled.sql}", *arguments
    )
    (plan,) = json.loads(explained) if isinstance(explained, str) else explained

    def steps(node: dict[str, Any]) -> list[tuple[str, int]]:
        name = f"{node['Node Type']} {node.get('Relation Name', '')} {node.get('Alias', '')}"
        here = [(name, node["Actual Rows"] * node["Actual Loops"])]
        return here + [step for child in node.get("Plans", []) for step in steps(child)]

    found = steps(plan["Plan"])
    assert len(found) > 10
    assert [(step, rows) for step, rows in found if rows > 20] == []
