"""The rules of account recovery, as plain function calls."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from access_api.domain import recovery
from access_api.domain.access import Caller
from access_api.domain.audit import ActorKind
from access_api.domain.errors import BulkRefused, EmailTaken, ValidationFailed
from access_api.domain.users import User
from tests.people import new_person

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def person(email: str = "ann@example.com") -> User:
    return new_person(email, NOW, first_name="Ann", last_name="Example")


def caller_for(user: User) -> Caller:
    return Caller(
        user_id=user.id, email=user.email, credential=ActorKind.SESSION, credential_id=uuid4()
    )


class TestPasswordResetPlan:
    def test_never_yourself_never_outside_never_unseen_and_named_each(self) -> None:
        admin, inside, outside = person(), person("in@example.com"), person("out@example.com")
        context, above, unseen = uuid4(), uuid4(), uuid4()
        with pytest.raises(BulkRefused) as refused:
            recovery.plan_password_resets(
                caller_for(admin),
                context,
                [admin.id, inside.id, outside.id, unseen],
                visible={u.id: u for u in (admin, inside, outside)},
                grant_chains={inside.id: [[context]], outside.id: [[above]]},
            )
        codes = {item.id: item.error.code for item in refused.value.errors}
        assert codes == {
            admin.id: "cannot_reset_own_password",
            outside.id: "user_outside_scope",
            unseen: "not_found",
        }

    def test_people_below_are_planned_once_each(self) -> None:
        admin, inside = person(), person("in@example.com")
        context = uuid4()
        planned = recovery.plan_password_resets(
            caller_for(admin),
            context,
            [inside.id, inside.id],
            visible={inside.id: inside},
            grant_chains={inside.id: [[uuid4(), context]]},
        )
        assert planned == [inside]

    def test_an_admin_may_end_their_own_sessions(self) -> None:
        admin = person()
        assert recovery.plan_session_revocations(
            caller_for(admin), uuid4(), [admin.id], visible={admin.id: admin}, grant_chains={}
        ) == [admin]


class TestEmailChange:
    def test_the_same_address_in_another_case_is_no_change(self) -> None:
        with pytest.raises(ValidationFailed):
            recovery.ensure_new_email(person(), "ANN@example.com", taken=False)

    def test_a_taken_address_is_refused(self) -> None:
        with pytest.raises(EmailTaken):
            recovery.ensure_new_email(person(), "bob@example.com", taken=True)


class TestRecoveryCodes:
    def test_codes_read_back_whatever_the_case_spaces_and_hyphens(self) -> None:
        code = recovery.recovery_code_from(list(range(10)))
        assert code == "abcde-fghjk"
        assert recovery.normalize_recovery_code(" ABCDE fghjk ") == code
        assert recovery.normalize_recovery_code("abcdefghjk") == code

    @pytest.mark.parametrize("text", ["123456", "abcde-fghj", "abcde-fghj0", ""])
    def test_what_cannot_be_a_code_is_none(self, text: str) -> None:
        assert recovery.normalize_recovery_code(text) is None


class TestPasskeyCounters:
    @pytest.mark.parametrize(
        ("stored", "presented", "fresh"),
        [(0, 0, True), (0, 1, True), (5, 6, True), (5, 5, False), (5, 4, False), (5, 0, False)],
    )
    def test_a_counter_only_grows_unless_the_authenticator_keeps_none(
        self, stored: int, presented: int, fresh: bool
    ) -> None:
        assert recovery.counter_is_fresh(stored, presented) is fresh

    def test_names_default_and_are_bounded(self) -> None:
        assert recovery.passkey_name("  My   key ", 0) == "My key"
        assert recovery.passkey_name(None, 2) == "Passkey 3"
        with pytest.raises(ValidationFailed):
            recovery.passkey_name("x" * 101, 0)
