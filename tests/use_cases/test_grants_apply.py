"""GrantRepository.apply writes a whole plan in a bounded number of statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from access_api.domain.access import Grant, GrantChange
from tests.use_cases.scene import Scene

MAX_STATEMENTS = 6


@contextmanager
def counted(connection: AsyncConnection) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    target = connection.sync_connection
    assert target is not None
    event.listen(target, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", count)


async def test_a_plan_of_any_size_takes_the_same_few_statements(
    scene: Scene, connection: AsyncConnection
) -> None:
    root, _ = await scene.msp()
    people = [await scene.user(root) for _ in range(12)]

    def grant(user_id: Any, roles: set[str]) -> Grant:
        return Grant(user_id=user_id, tenant_id=root.id, roles=frozenset(roles),
                     include_descendants=False)  # fmt: skip

    async with scene.work() as work:
        roles = await work.roles.of_tree(root.id)
        made = [GrantChange(before=None, after=grant(p.user_id, {"read_only"})) for p in people]
        with counted(connection) as statements:
            await work.grants.apply(made, root_id=root.id, roles_by_key=roles, now=work.now)
        assert len(statements) <= MAX_STATEMENTS, statements
        mixed = [
            GrantChange(before=c.after, after=None if i % 2 else grant(c.user_id, {"admin"}))
            for i, c in enumerate(made)
        ]
        with counted(connection) as statements:
            await work.grants.apply(mixed, root_id=root.id, roles_by_key=roles, now=work.now)
        assert len(statements) <= MAX_STATEMENTS, statements
        now_held = await work.grants.grants((p.user_id, root.id) for p in people)
    assert {pair[0]: g.roles for pair, g in now_held.items()} == {
        p.user_id: {"admin"} for i, p in enumerate(people) if i % 2 == 0
    }
