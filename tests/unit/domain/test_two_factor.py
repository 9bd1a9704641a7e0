"""Two-factor rules as plain calls: TOTP steps, emailed codes, enrolment and resets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from access_api.domain import two_factor
from access_api.domain.access import Caller
from access_api.domain.audit import ActorKind
from access_api.domain.errors import (
    BulkRefused,
    CannotResetOwnTwoFactor,
    Forbidden,
    NotFound,
    OtpRequired,
    TotpNotEnrolling,
    TwoFactorEnabled,
    TwoFactorNotEnabled,
    UserOutsideScope,
)
from access_api.domain.two_factor import ResetStatus
from access_api.domain.users import TwoFactor, User

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def user(two_factor_: TwoFactor) -> User:
    return User(
        id=uuid4(),
        email="a@example.com",
        first_name="A",
        last_name="B",
        phone=None,
        session_timeout_minutes=60,
        two_factor=two_factor_,
        created_at=NOW,
        updated_at=NOW,
        last_login_at=None,
    )


def caller(kind: ActorKind = ActorKind.SESSION, user_id: UUID | None = None) -> Caller:
    return Caller(
        user_id=user_id or uuid4(),
        email="admin@example.com",
        credential=kind,
        credential_id=uuid4(),
    )


class TestTwoFactor:
    def test_codes_are_asked_for_only_from_totp_users(self) -> None:
        assert not two_factor.needs_totp(user(TwoFactor.DISABLED), None)
        assert two_factor.needs_totp(user(TwoFactor.TOTP), "123456")
        with pytest.raises(OtpRequired):
            two_factor.needs_totp(user(TwoFactor.TOTP), None)

    def test_only_a_newer_step_is_fresh(self) -> None:
        assert two_factor.is_fresh(10, None)
        assert two_factor.is_fresh(11, 10)
        assert not two_factor.is_fresh(10, 10)
        assert not two_factor.is_fresh(9, 10)

    def test_enrolment_is_refused_once_totp_is_on(self) -> None:
        two_factor.ensure_can_enrol(user(TwoFactor.EMAIL))
        with pytest.raises(TwoFactorEnabled):
            two_factor.ensure_can_enrol(user(TwoFactor.TOTP))

    def test_settings_change_only_from_a_login_session(self) -> None:
        two_factor.ensure_at_the_keyboard(caller())
        for kind in (ActorKind.API_KEY, ActorKind.AGENT):
            with pytest.raises(Forbidden):
                two_factor.ensure_at_the_keyboard(caller(kind))

    def test_verifying_needs_an_enrolment_in_progress(self) -> None:
        assert two_factor.ensure_enrolling("sealed") == "sealed"
        with pytest.raises(TotpNotEnrolling):
            two_factor.ensure_enrolling(None)


class TestEmailCodes:
    def test_a_code_is_mailed_at_most_once_a_minute(self) -> None:
        assert two_factor.should_send_code(None, NOW)
        assert not two_factor.should_send_code(NOW, NOW + timedelta(seconds=59))
        assert two_factor.should_send_code(NOW, NOW + two_factor.EMAIL_CODE_RESEND_AFTER)

    def test_a_code_is_six_digits(self) -> None:
        assert two_factor.is_email_code_shape("012345")
        for bad in ("12345", "1234567", "12345a", "      "):
            assert not two_factor.is_email_code_shape(bad)


class TestResets:
    def reset(self, status: ResetStatus = ResetStatus.PENDING) -> two_factor.Reset:
        made = two_factor.new_reset(
            id=uuid4(),
            root_id=uuid4(),
            tenant_id=uuid4(),
            user_id=uuid4(),
            requested_by=uuid4(),
            now=NOW,
        )
        return replace(made, status=status)

    def test_a_new_request_is_pending_for_a_day_then_expired(self) -> None:
        reset = self.reset()
        assert reset.expires_at == NOW + two_factor.RESET_LIFETIME
        assert reset.status_at(NOW) is ResetStatus.PENDING
        assert reset.status_at(reset.expires_at) is ResetStatus.EXPIRED
        assert self.reset(ResetStatus.DENIED).status_at(reset.expires_at) is ResetStatus.DENIED

    def test_an_answer_records_the_status_and_on_confirmation_the_factor(self) -> None:
        cleared = user(TwoFactor.EMAIL)
        assert two_factor.answer_changes(self.reset(ResetStatus.CONFIRMED), cleared) == {
            "status": {"before": "pending", "after": "confirmed"},
            "two_factor": {"before": "totp", "after": "email"},
        }
        assert two_factor.answer_changes(self.reset(ResetStatus.DENIED), user(TwoFactor.TOTP)) == {
            "status": {"before": "pending", "after": "denied"}
        }

    def test_a_reset_is_asked_only_for_others_one_manages_who_have_totp(self) -> None:
        context, elsewhere = uuid4(), uuid4()
        admin = caller()
        ok, email_only, outside = user(TwoFactor.TOTP), user(TwoFactor.EMAIL), user(TwoFactor.TOTP)
        missing = uuid4()
        visible = {u.id: u for u in (ok, email_only, outside)}
        chains = {ok.id: [[context]], email_only.id: [[context]], outside.id: [[elsewhere]]}
        assert two_factor.plan_resets(
            admin, context, [ok.id, ok.id], visible=visible, grant_chains=chains
        ) == [ok]
        with pytest.raises(BulkRefused) as refused:
            two_factor.plan_resets(
                admin,
                context,
                [admin.user_id, missing, email_only.id, outside.id, ok.id],
                visible=visible,
                grant_chains=chains,
            )
        assert [(item.id, type(item.error)) for item in refused.value.errors] == [
            (admin.user_id, CannotResetOwnTwoFactor),
            (missing, NotFound),
            (email_only.id, TwoFactorNotEnabled),
            (outside.id, UserOutsideScope),
        ]
