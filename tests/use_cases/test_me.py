"""The caller's own use cases, called directly: where they can act, profile, password."""

from __future__ import annotations

import pytest

from access_api.auth import credentials
from access_api.domain import errors as e
from access_api.domain.access import Caller
from access_api.domain.audit import Action, ActorKind
from access_api.domain.permissions import ADMIN_ROLE
from access_api.use_cases import auth, me
from tests.use_cases.conftest import PASSWORD, Tree


class TestWhoAmI:
    async def test_the_admin_reaches_the_root_with_every_permission(self, tree: Tree) -> None:
        work = tree.work()
        started = await auth.start_session(work, tree.admin)
        profile = await me.who_am_i(work, started.token)
        assert profile.user.id == tree.admin.id
        assert profile.authenticated.caller.credential is ActorKind.SESSION
        [grant] = profile.grants
        assert (grant.tenant.id, grant.grant.include_descendants) == (tree.root.id, True)
        assert profile.tenants_reached == 1
        page = await me.tenants(work, profile.authenticated.caller, q=None, after=None, limit=10)
        [root] = page.items
        assert root.tenant.id == tree.root.id
        assert ADMIN_ROLE in root.roles

    async def test_an_unknown_or_agent_credential_is_refused(self, tree: Tree) -> None:
        work = tree.work()
        for token in (None, "aas_unknown", "aak_unknown", "nope_x"):
            with pytest.raises(e.Unauthenticated):
                await me.who_am_i(work, token)


class TestPassword:
    async def test_a_change_ends_every_other_session_and_is_recorded(self, tree: Tree) -> None:
        work = tree.work()
        here = await auth.start_session(work, tree.admin)
        elsewhere = await auth.start_session(work, tree.admin)
        caller = (await credentials.session(work, here.token)).caller
        await me.change_password(work, caller, PASSWORD, "a much better passphrase 2026")
        assert (await credentials.session(work, here.token)).caller.user_id == tree.admin.id
        with pytest.raises(e.Unauthenticated):
            await credentials.session(work, elsewhere.token)
        assert work.events[-1].action is Action.USER_PASSWORD_CHANGED

    async def test_a_wrong_current_password_or_the_same_one_is_refused(self, tree: Tree) -> None:
        work = tree.work()
        caller = Caller(
            user_id=tree.admin.id,
            email=tree.admin.email,
            credential=ActorKind.SESSION,
            credential_id=tree.admin.id,
        )
        with pytest.raises(e.ValidationFailed) as wrong:
            await me.change_password(work, caller, "not it", "a much better passphrase 2026")
        assert wrong.value.errors[0].code == "incorrect"
        with pytest.raises(e.ValidationFailed) as same:
            await me.change_password(work, caller, PASSWORD, PASSWORD)
        assert same.value.errors[0].code == "unchanged"
        assert work.events == []


class TestProfile:
    async def test_only_changed_fields_are_recorded(self, tree: Tree) -> None:
        work = tree.work()
        caller = Caller(
            user_id=tree.admin.id,
            email=tree.admin.email,
            credential=ActorKind.SESSION,
            credential_id=tree.admin.id,
        )
        updated = await me.update_profile(work, caller, {"first_name": "Ada"})
        assert updated.first_name == "Ada"
        await me.update_profile(work, caller, {"first_name": "Ada"})
        assert [(event.action, event.changes) for event in work.events] == [
            (Action.USER_UPDATED, {"first_name": {"before": tree.admin.first_name, "after": "Ada"}})
        ]
        with pytest.raises(e.EmailImmutable):
            await me.update_profile(work, caller, {"email": "someone@else.example.com"})
