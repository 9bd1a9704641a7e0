"""Two-factor use cases, called directly: TOTP enrolment, then a reset asked and confirmed."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa

from access_api.domain import errors as e
from access_api.domain.access import Caller
from access_api.domain.audit import Action, ActorKind
from access_api.domain.two_factor import ResetStatus
from access_api.domain.users import TwoFactor, User
from access_api.repositories.orm import outbox
from access_api.use_cases import two_factor, two_factor_resets
from tests.use_cases.conftest import START, Tree


def at_the_keyboard(user: User, kind: ActorKind = ActorKind.SESSION) -> Caller:
    return Caller(user_id=user.id, email=user.email, credential=kind, credential_id=user.id)


async def enrolled(tree: Tree, user: User) -> None:
    work = tree.work()
    enrolment = await two_factor.enrol_totp(work, at_the_keyboard(user))
    code = pyotp.TOTP(enrolment.secret).at(START)
    enabled = await two_factor.verify_totp(work, at_the_keyboard(user), code)
    assert enabled.two_factor is TwoFactor.TOTP
    assert len(enabled.recovery_codes) == 10


class TestEnrolment:
    async def test_a_first_code_turns_totp_on_and_each_step_is_recorded(self, tree: Tree) -> None:
        member = await tree.member("read_only")
        work = tree.work()
        enrolment = await two_factor.enrol_totp(work, at_the_keyboard(member))
        assert enrolment.otpauth_uri.startswith("otpauth://totp/")
        with pytest.raises(e.InvalidOtp):
            await two_factor.verify_totp(work, at_the_keyboard(member), "000000")
        code = pyotp.TOTP(enrolment.secret).at(START)
        await two_factor.verify_totp(work, at_the_keyboard(member), code)
        with pytest.raises(e.TwoFactorEnabled):
            await two_factor.enrol_totp(work, at_the_keyboard(member))
        assert [event.action for event in work.events] == [
            Action.TWO_FACTOR_ENROLMENT_STARTED,
            Action.TWO_FACTOR_ENABLED,
        ]

    async def test_an_api_key_cannot_change_two_factor_settings(self, tree: Tree) -> None:
        with pytest.raises(e.Forbidden):
            await two_factor.enrol_totp(tree.work(), at_the_keyboard(tree.admin, ActorKind.API_KEY))


class TestReset:
    async def test_asked_by_an_admin_confirmed_by_the_user_through_the_mailed_link(
        self, tree: Tree
    ) -> None:
        member = await tree.member("read_only")
        await enrolled(tree, member)
        work = tree.work(timedelta(minutes=1))
        scope = await tree.scope(tree.admin, work)
        [asked] = await two_factor_resets.request(work, scope, [member.id])
        assert (asked.user.id, asked.status) == (member.id, ResetStatus.PENDING)
        [sealed] = (
            await tree.session.execute(
                sa.select(outbox.c.payload).where(outbox.c.recipient == member.email)
            )
        ).scalars()
        text = json.loads(tree.state.keyring.unseal(sealed, "outbox"))["text"]
        token = re.search(r"/two-factor-reset/confirm\?token=([\w-]+)", text)
        assert token is not None
        answered = await two_factor_resets.confirm(tree.work(timedelta(minutes=2)), token[1])
        assert (answered.status, answered.two_factor) == (ResetStatus.CONFIRMED, TwoFactor.EMAIL)
        with pytest.raises(e.InvalidToken):
            await two_factor_resets.confirm(tree.work(timedelta(minutes=3)), token[1])

    async def test_nobody_resets_their_own_authenticator(self, tree: Tree) -> None:
        await enrolled(tree, tree.admin)
        work = tree.work()
        with pytest.raises(e.BulkRefused) as refused:
            await two_factor_resets.request(
                work, await tree.scope(tree.admin, work), [tree.admin.id]
            )
        assert isinstance(refused.value.errors[0].error, e.CannotResetOwnTwoFactor)
        assert work.events == []
