"""GET /v1/me/tenants finds a page of the tenants a caller reaches in one of two ways: reading
every tenant reached, then sorting; or, where they are most of one tree (an MSP's admin),
walking the tree by name and keeping those a grant reaches (`tree_to_walk`). Both give the
same pages, and the walk reads a page's worth of rows whatever the size of the tree."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from access_api.repositories import grants as grant_statements
from access_api.repositories import me as me_statements
from access_api.repositories.me import tree_to_walk
from access_api.repositories.orm import tenants
from tests.api.conftest import Login, Msp, World

# A page this large is found by reading every tenant reached, in any tree of this test.
WHOLE = 200


class TestTreeToWalk:
    ROOT = UUID(int=1)

    def test_a_reach_that_is_most_of_the_tree_is_walked(self) -> None:
        assert tree_to_walk([(self.ROOT, 10_000, 10_000)], 101) == self.ROOT
        assert tree_to_walk([(self.ROOT, 2_000, 10_000)], 101) == self.ROOT

    def test_a_reach_that_is_a_small_part_of_the_tree_is_read_whole(self) -> None:
        assert tree_to_walk([(self.ROOT, 500, 10_000)], 101) is None
        assert tree_to_walk([(self.ROOT, 1, 10_000)], 101) is None
        # Small trees too, unless the page is smaller still.
        assert tree_to_walk([(self.ROOT, 20, 20)], 51) is None
        assert tree_to_walk([(self.ROOT, 20, 20)], 3) == self.ROOT

    def test_reach_into_several_trees_or_none_is_read_whole(self) -> None:
        other = UUID(int=2)
        assert tree_to_walk([(self.ROOT, 10_000, 10_000), (other, 1, 1)], 101) is None
        assert tree_to_walk([], 101) is None


async def _tree(world: World, msp: Msp) -> dict[str, dict[str, Any]]:
    """Group A with twelve clients (two of the same name), Group B with two, a client under
    the root: nineteen tenants with the root."""
    group_a = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Group A")
    group_b = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Group B")
    made = {"Group A": group_a, "Group B": group_b}
    for n in range(1, 11):
        made[f"Client {n:02}"] = await world.tenant(group_a["id"], msp.admin, name=f"Client {n:02}")
    made["Twin 1"] = await world.tenant(group_a["id"], msp.admin, name="Twin")
    made["Twin 2"] = await world.tenant(group_a["id"], msp.admin, name="Twin")
    made["B One"] = await world.tenant(group_b["id"], msp.admin, name="B One")
    made["B Two"] = await world.tenant(group_b["id"], msp.admin, name="B Two")
    made["Loose"] = await world.tenant(msp.id, msp.admin, name="Loose")
    return made


async def _reached_and_size(world: World, who: Login, root_id: UUID) -> tuple[int, int]:
    me = (await world.client.get("/v1/me", headers=who.headers)).json()
    size = await world.count(tenants, tenants.c.root_id == root_id, tenants.c.deleted_at.is_(None))
    return me["counts"]["tenants"], size


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


async def test_walked_pages_are_the_pages_read_whole(world: World, msp: Msp) -> None:
    made = await _tree(world, msp)
    tech = await world.user(
        msp.id,
        [(made["Group A"]["id"], ["read_only"], True), (made["B One"]["id"], ["admin"], False)],
    )
    key = await world.client.post(
        f"/v1/tenants/{msp.id}/users/{msp.admin.user_id}/api-keys",
        json={"name": "walker"},
        headers=msp.admin.headers,
    )
    assert key.status_code == 201, key.text
    admin_key = Login(msp.admin.user_id, msp.admin.email, msp.admin.password, key.json()["key"])
    everything = {str(msp.id), *(tenant["id"] for tenant in made.values())}
    expected = {
        "admin": everything,
        "admin key": everything,
        "tech": {
            made["Group A"]["id"],
            made["B One"]["id"],
            *(made[f"Client {n:02}"]["id"] for n in range(1, 11)),
            made["Twin 1"]["id"],
            made["Twin 2"]["id"],
        },
    }
    callers = {"admin": msp.admin, "admin key": admin_key, "tech": tech}
    for label, who in callers.items():
        reached, size = await _reached_and_size(world, who, msp.id)
        assert reached == len(expected[label]), label
        whole = await world.my_tenants(who.headers, limit=WHOLE)
        assert tree_to_walk([(msp.id, reached, size)], WHOLE + 1) is None
        assert set(_ids(whole)) == expected[label], label
        assert len(_ids(whole)) == len(expected[label])
        for limit in (1, 2, 3):
            walked = tree_to_walk([(msp.id, reached, size)], limit + 1) == msp.id
            # The admin's pages of 1, 2 and 3 are walked; the tech's of 1 and 2 (14 of 19).
            assert walked == (label != "tech" or limit < 3), (label, limit)
            assert await world.my_tenants(who.headers, limit=limit) == whole, (label, limit)
        # A search is a filter on either way: the same matches in the same order.
        for q in ("client 0", "TWIN", "b "):
            searched = await world.my_tenants(who.headers, limit=WHOLE, q=q)
            assert searched, (label, q)
            assert await world.my_tenants(who.headers, limit=1, q=q) == searched, (label, q)

    # A deleted tenant is in neither.
    deleted = await world.client.post(
        f"/v1/tenants/{msp.id}/clients/delete",
        json={"ids": [made["Twin 1"]["id"]], "confirm": "delete"},
        headers=msp.admin.headers,
    )
    assert deleted.status_code == 200, deleted.text
    whole = await world.my_tenants(msp.admin.headers, limit=WHOLE)
    assert made["Twin 1"]["id"] not in _ids(whole)
    assert len(whole) == len(everything) - 1
    assert await world.my_tenants(msp.admin.headers, limit=2) == whole


async def test_a_scoped_key_pages_within_its_tenants(world: World, msp: Msp) -> None:
    """A key cut to some tenants: its reach is read whole, whatever the page."""
    made = await _tree(world, msp)
    response = await world.client.post(
        f"/v1/tenants/{msp.id}/users/{msp.admin.user_id}/api-keys",
        json={"name": "scoped", "tenant_ids": [made["Group B"]["id"], made["Loose"]["id"]]},
        headers=msp.admin.headers,
    )
    assert response.status_code == 201, response.text
    key = Login(msp.admin.user_id, msp.admin.email, msp.admin.password, response.json()["key"])
    within = {made[name]["id"] for name in ("Group B", "B One", "B Two", "Loose")}
    whole = await world.my_tenants(key.headers, limit=WHOLE)
    assert set(_ids(whole)) == within
    assert await world.my_tenants(key.headers, limit=1) == whole


def _steps(node: dict[str, Any]) -> list[tuple[str, int]]:
    """Each step of a plan with the rows it read: those it gave and those its filter took."""
    name = f"{node['Node Type']} {node.get('Relation Name', '')} {node.get('Alias', '')}"
    read = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
    return [(name, read)] + [step for child in node.get("Plans", []) for step in _steps(child)]


async def _explain(world: World, statement: sa.Select[Any], mode: str) -> list[tuple[str, int]]:
    """The steps of a statement's plan as the service runs it (its values as parameters),
    planned for those values or, with mode force_generic_plan, for any."""
    expanded = statement.compile(dialect=world.connection.dialect).construct_expanded_state()
    arguments = [expanded.parameters[name] for name in expanded.positiontup or ()]
    raw = await world.connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    await driver.execute(f"SET plan_cache_mode = {mode}")
    try:
        explained = await driver.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {expanded.statement}", *arguments
        )
    finally:
        await driver.execute("RESET plan_cache_mode")
    (plan,) = json.loads(explained) if isinstance(explained, str) else explained
    return _steps(plan["Plan"])


async def test_a_page_reads_its_own_rows_whatever_the_tree(world: World, msp: Msp) -> None:
    """For the MSP's admin in a tree of 10,000 clients, finding a page of 50 and reading its
    grants: no step of either plan reads more than a few rows per tenant of the page (read
    whole, the first reads 10,002 rows at a step; the second read every closure row below the
    admin's grant, then kept the page's)."""
    if world.connection.dialect.name != "postgresql":
        pytest.skip("SQLite gives no row counts of a plan")
    group = await world.tenant(msp.id, msp.admin, kind="multi_client", name="Big group")
    await world.many_clients(msp.id, UUID(group["id"]), 10_000)
    reached, size = await _reached_and_size(world, msp.admin, msp.id)
    assert (reached, size) == (10002, 10002)
    assert tree_to_walk([(msp.id, reached, size)], 51) == msp.id

    # The page after "Client 5000" in name order, as the service finds it.
    (after,) = await world.rows(
        sa.select(tenants.c.name, tenants.c.id).where(tenants.c.name == "Client 5000")
    )
    name, tenant_id = me_statements._TENANT.c.name, me_statements._TENANT.c.id
    page = (
        me_statements._walked(msp.admin.user_id, None, msp.id)
        .where(sa.tuple_(name, tenant_id) > tuple(after))
        .order_by(name, tenant_id)
        .limit(51)
        .params(now=world.clock.now())
    )
    ids = [row.id for row in await world.connection.execute(page)][:50]
    response = await world.client.get(
        "/v1/me/tenants",
        params={"limit": 50, "cursor": world.state.cursors.encode("name", tuple(after))},
        headers=msp.admin.headers,
    )
    assert [UUID(item["id"]) for item in response.json()["items"]] == ids
    assert response.json()["items"][0]["name"] == "Client 5001"

    grants = grant_statements._REACHABLE_AMONG_IN_TREE.params(
        user_id=msp.admin.user_id, root_id=msp.id, ids=ids
    )
    for mode in ("force_custom_plan", "force_generic_plan"):
        for statement in (page, grants):
            steps = await _explain(world, statement, mode)
            assert len(steps) > 3
            assert [(step, rows) for step, rows in steps if rows > 3 * 51] == [], mode
