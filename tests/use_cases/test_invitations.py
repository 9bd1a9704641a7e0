"""Invitations through their use cases: invite, accept, and what each records."""

from __future__ import annotations

import pytest

from access_api.domain import errors as e
from access_api.domain import invitations as rules
from access_api.domain.audit import Action
from access_api.domain.invitations import Offer
from access_api.domain.permissions import Permission
from access_api.ids import new_id
from access_api.services.keyring import new_token
from access_api.use_cases import invitations
from tests.use_cases.scene import NOW, PASSWORD, Scene


async def invitation_with_token(scene: Scene, email: str) -> tuple[str, rules.Invitation]:
    """An invitation whose link we know (the real one only travels by mail)."""
    root, admin = await scene.msp()
    token = new_token(rules.TOKEN_PREFIX)
    invitation = rules.new_invitation(
        id=new_id(), root_id=root.id, tenant_id=root.id, email=email, invited_by=admin.user_id,
        offers=[Offer(tenant_id=root.id, roles=frozenset({"read_only"}),
                      include_descendants=True)],
        expires_in_days=7, now=NOW,
    )  # fmt: skip
    async with scene.work() as work:
        await work.invitations.insert(
            [(invitation, work.keyring.digest(token))], await work.roles.of_tree(root.id)
        )
    return token, invitation


class TestInvite:
    async def test_a_new_email_is_invited_and_mailed_a_user_of_the_tree_is_granted(
        self, scene: Scene
    ) -> None:
        root, admin = await scene.msp()
        bob = await scene.user(root, [])
        scope = await scene.scope(admin, root.id, Permission.INVITATIONS_WRITE)
        wanted = [invitations.Wanted(tenant_id=None, roles=("read_only",),
                                     include_descendants=False)]  # fmt: skip
        async with scene.work() as work:
            outcomes = await invitations.invite(
                work, scope, ["Ada@Example.com", bob.email], wanted, 7
            )
            assert [(o.email, o.invitation is not None, o.user_id) for o in outcomes] == [
                ("Ada@example.com", True, None),
                (bob.email, False, bob.user_id),
            ]
            assert sorted(event.action for event in work.events) == [
                Action.AUTHORIZATION_GRANTED, Action.INVITATION_CREATED,
            ]  # fmt: skip


class TestAccept:
    async def test_a_new_person_becomes_a_member_with_the_offer_and_a_session(
        self, scene: Scene
    ) -> None:
        token, invitation = await invitation_with_token(scene, "ada@example.com")
        answer = invitations.Acceptance(
            token=token, password=PASSWORD, first_name="Ada", last_name="Lovelace"
        )
        async with scene.work() as work:
            started = await invitations.accept(work, answer)
            assert started.user.email == "ada@example.com"
            assert started.token
            assert await work.members.members_among(invitation.root_id, [started.user.id])
            assert [event.action for event in work.events] == [
                Action.AUTHORIZATION_GRANTED,
                Action.USER_CREATED,
                Action.INVITATION_ACCEPTED,
                Action.SESSION_CREATED,
            ]
        async with scene.work() as work:
            with pytest.raises(e.InvalidToken):
                await invitations.accept(work, answer)

    async def test_an_existing_account_sends_no_profile(self, scene: Scene) -> None:
        root, _ = await scene.msp()
        bob = await scene.user(root, [])
        token, _ = await invitation_with_token(scene, bob.email)
        async with scene.work() as work:
            with pytest.raises(e.ValidationFailed):
                await invitations.accept(
                    work, invitations.Acceptance(token=token, password=PASSWORD, first_name="B")
                )
            started = await invitations.accept(
                work, invitations.Acceptance(token=token, password=PASSWORD)
            )
        assert started.user.id == bob.user_id
