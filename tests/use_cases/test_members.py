"""use_cases.members.join: the one way a person joins a tree."""

from __future__ import annotations

import pytest

from access_api.domain import errors as e
from access_api.domain.audit import SYSTEM, Action
from access_api.domain.invitations import Offer
from access_api.use_cases import members
from tests.use_cases.scene import PASSWORD, Scene, person


class TestJoin:
    async def test_a_new_person_is_created_made_a_member_and_granted(self, scene: Scene) -> None:
        root, _ = await scene.msp()
        ada = person("ada@example.com")
        async with scene.work() as work:
            joined = await members.join(
                work,
                SYSTEM,
                root_id=root.id,
                user=ada,
                password_hash=await work.passwords.hash(PASSWORD),
                offers=[Offer(tenant_id=root.id, roles=frozenset({"read_only"}),
                              include_descendants=True)],
                tenant=root,
            )  # fmt: skip
            assert joined.created
            assert [c.after.roles for c in joined.grant_changes if c.after] == [
                frozenset({"read_only"})
            ]
            assert [event.action for event in work.events] == [Action.AUTHORIZATION_GRANTED]
            assert await work.members.members_among(root.id, [ada.id]) == {ada.id}
            assert await work.users.get(ada.id) == ada

    async def test_an_existing_user_keeps_what_they_hold_and_gains_the_offer(
        self, scene: Scene
    ) -> None:
        root, _ = await scene.msp()
        bob = await scene.user(root, [(root.id, ["read_only"], False)])
        async with scene.work() as work:
            user = await work.users.get(bob.user_id)
            assert user is not None
            joined = await members.join(
                work,
                SYSTEM,
                root_id=root.id,
                user=user,
                password_hash=None,
                offers=[Offer(tenant_id=root.id, roles=frozenset({"admin"}),
                              include_descendants=False)],
                tenant=root,
            )  # fmt: skip
            assert not joined.created
            grants = await work.grants.grants([(bob.user_id, root.id)])
        assert grants[(bob.user_id, root.id)].roles == {"read_only", "admin"}

    async def test_a_second_account_for_the_same_email_is_a_conflict(self, scene: Scene) -> None:
        root, _ = await scene.msp()
        async with scene.work() as work:
            await members.join(work, SYSTEM, root_id=root.id, user=person("Ada@example.com"),
                               password_hash="x", offers=[], tenant=root)  # fmt: skip
        async with scene.work() as work:
            with pytest.raises(e.Conflict):
                await members.join(work, SYSTEM, root_id=root.id, user=person("ada@example.com"),
                                   password_hash="x", offers=[], tenant=root)  # fmt: skip
