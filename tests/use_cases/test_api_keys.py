"""API key use cases, called directly: what they write, what they record, what they refuse."""

from __future__ import annotations

from datetime import timedelta

import pytest

from access_api.auth import credentials
from access_api.domain import errors as e
from access_api.domain.audit import Action
from access_api.domain.permissions import READ_ONLY_ROLE
from access_api.use_cases import api_keys
from tests.use_cases.conftest import START, Tree


class TestGenerate:
    async def test_a_new_key_works_as_its_user_in_its_tree_and_is_recorded(
        self, tree: Tree
    ) -> None:
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        made = await api_keys.generate(
            work, scope, tree.admin.id, name=" CI ", expires_at=START + timedelta(days=30)
        )
        assert made.secret.startswith("aak_")
        assert (made.key.name, made.key.prefix) == ("CI", made.secret[:12])
        found = await credentials.api_key(work, made.secret)
        assert (found.caller.user_id, found.caller.root_id) == (tree.admin.id, tree.root.id)
        assert found.expires_at == START + timedelta(days=30)
        assert [(event.action, event.target_id) for event in work.events] == [
            (Action.API_KEY_CREATED, made.key.id)
        ]
        assert work.events[0].changes["name"] == {"before": None, "after": "CI"}

    async def test_someone_else_s_key_needs_api_keys_manage(self, tree: Tree) -> None:
        reader, other = await tree.member(READ_ONLY_ROLE), await tree.member(READ_ONLY_ROLE)
        work = tree.work()
        with pytest.raises(e.Forbidden):
            await api_keys.generate(
                work, await tree.scope(reader, work), other.id, name=None, expires_at=None
            )
        own = await api_keys.generate(
            work, await tree.scope(reader, work), reader.id, name=None, expires_at=None
        )
        assert own.key.user_id == reader.id
        admin_made = await api_keys.generate(
            work, await tree.scope(tree.admin, work), other.id, name=None, expires_at=None
        )
        assert admin_made.key.created_by == tree.admin.id

    async def test_a_key_born_expired_is_refused_and_nothing_is_written(self, tree: Tree) -> None:
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        with pytest.raises(e.ValidationFailed):
            await api_keys.generate(work, scope, tree.admin.id, name=None, expires_at=START)
        page = await api_keys.list_live(
            work, scope, tree.admin.id, sort="created_at", descending=False, after=None, limit=10
        )
        assert (page.items, work.events) == ([], [])


class TestRegenerate:
    async def test_the_old_secret_dies_and_the_new_one_works(self, tree: Tree) -> None:
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        made = await api_keys.generate(work, scope, tree.admin.id, name=None, expires_at=None)
        again = await api_keys.regenerate(work, scope, tree.admin.id, made.key.id)
        assert again.key.id == made.key.id
        assert again.secret != made.secret
        with pytest.raises(e.Unauthenticated):
            await credentials.api_key(work, made.secret)
        assert (await credentials.api_key(work, again.secret)).caller.credential_id == made.key.id
        event = work.events[-1]
        assert (event.action, event.changes) == (
            Action.API_KEY_REGENERATED,
            {"prefix": {"before": made.key.prefix, "after": again.key.prefix}},
        )

    async def test_a_revoked_key_is_gone_and_an_expired_one_stays_expired(self, tree: Tree) -> None:
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        soon = await api_keys.generate(
            work, scope, tree.admin.id, name=None, expires_at=START + timedelta(hours=1)
        )
        revoked = await api_keys.generate(work, scope, tree.admin.id, name=None, expires_at=None)
        await api_keys.revoke(work, scope, tree.admin.id, revoked.key.id)
        with pytest.raises(e.NotFound):
            await api_keys.regenerate(work, scope, tree.admin.id, revoked.key.id)
        later = tree.work(timedelta(hours=2))
        with pytest.raises(e.ApiKeyExpired):
            await api_keys.regenerate(
                later, await tree.scope(tree.admin, later), tree.admin.id, soon.key.id
            )
        assert later.events == []


class TestRevokeForUsers:
    async def test_every_live_key_of_the_users_goes_each_recorded(self, tree: Tree) -> None:
        member = await tree.member(READ_ONLY_ROLE)
        work = tree.work()
        scope = await tree.scope(tree.admin, work)
        keys = [
            await api_keys.generate(work, scope, member.id, name=None, expires_at=None)
            for _ in range(2)
        ]
        revoked = await api_keys.revoke_for_users(work, scope, [member.id, member.id])
        assert {key.id for key in revoked} == {made.key.id for made in keys}
        assert [event.action for event in work.events[-2:]] == [Action.API_KEY_REVOKED] * 2
        for made in keys:
            with pytest.raises(e.Unauthenticated):
                await credentials.api_key(work, made.secret)
