"""Role use cases, called directly: defined from the root under the tree lock, and recorded."""

from __future__ import annotations

import pytest

from access_api.domain import errors as e
from access_api.domain.audit import Action
from access_api.domain.permissions import READ_ONLY_ROLE, Permission
from access_api.use_cases import roles
from tests.use_cases.conftest import Tree

READ = Permission.USERS_READ.value


class TestCustomRoles:
    async def test_create_update_delete_each_recorded(self, tree: Tree) -> None:
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        role = await roles.create(work, scope, key="helpdesk", name="Helpdesk", permissions=[READ])
        assert (await roles.get(work, scope, "helpdesk")).id == role.id
        renamed = await roles.update(work, scope, "helpdesk", {"name": "Support"})
        assert renamed.name == "Support"
        unchanged = await roles.update(work, scope, "helpdesk", {"name": "Support"})
        assert unchanged == renamed
        await roles.delete(work, scope, "helpdesk")
        with pytest.raises(e.NotFound):
            await roles.get(work, scope, "helpdesk")
        assert [event.action for event in work.events] == [
            Action.ROLE_CREATED,
            Action.ROLE_UPDATED,
            Action.ROLE_DELETED,
        ]

    async def test_a_failed_precondition_changes_nothing(self, tree: Tree) -> None:
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        await roles.create(work, scope, key="helpdesk", name="Helpdesk", permissions=[READ])

        def stale(_: object) -> None:
            raise e.PreconditionFailed()

        with pytest.raises(e.PreconditionFailed):
            await roles.update(work, scope, "helpdesk", {"name": "Support"}, precondition=stale)
        assert (await roles.get(work, scope, "helpdesk")).name == "Helpdesk"

    async def test_the_caller_is_judged_again_under_the_lock(self, tree: Tree) -> None:
        reader = await tree.member(READ_ONLY_ROLE)
        work = tree.work()
        with pytest.raises(e.Forbidden):
            await roles.create(
                work, await tree.scope(reader, work), key="mine", name="Mine", permissions=[]
            )
        assert work.events == []

    async def test_built_in_roles_stay(self, tree: Tree) -> None:
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        with pytest.raises(e.RoleImmutable):
            await roles.delete(work, scope, READ_ONLY_ROLE)
