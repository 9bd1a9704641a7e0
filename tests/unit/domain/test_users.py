"""User rules as plain function calls: profile edits, new people, passwords, export columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from access_api.domain import users
from access_api.domain.errors import EmailImmutable, ValidationFailed
from access_api.domain.users import TwoFactor, User
from tests.people import new_person

NOW = datetime(2026, 11, 22, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def ada() -> User:
    return new_person("Ada@example.com", NOW, first_name="Ada", last_name="Lovelace")


def codes(refusal: pytest.ExceptionInfo[ValidationFailed]) -> set[tuple[str, str]]:
    return {(error.field, error.code) for error in refusal.value.errors}


class TestUpdateProfile:
    def test_changes_the_fields_sent_and_reports_each_before_and_after(self) -> None:
        user = ada()
        updated, changes = users.update_profile(
            user,
            {"first_name": " Augusta ", "phone": "+44 20", "session_timeout_minutes": 30},
            LATER,
        )
        assert (updated.first_name, updated.phone, updated.session_timeout_minutes) == (
            "Augusta", "+44 20", 30,
        )  # fmt: skip
        assert updated.last_name == "Lovelace"
        assert updated.updated_at == LATER
        assert changes == {
            "first_name": {"before": "Ada", "after": "Augusta"},
            "phone": {"before": None, "after": "+44 20"},
            "session_timeout_minutes": {"before": 60, "after": 30},
        }

    def test_sending_the_same_values_changes_nothing_not_even_updated_at(self) -> None:
        user = ada()
        updated, changes = users.update_profile(
            user, {"first_name": "Ada", "email": "ada@EXAMPLE.com"}, LATER
        )
        assert (updated, changes) == (user, {})

    def test_a_blank_phone_clears_it(self) -> None:
        user, _ = users.update_profile(ada(), {"phone": "+1 555"}, NOW)
        cleared, changes = users.update_profile(user, {"phone": "  "}, LATER)
        assert cleared.phone is None
        assert changes == {"phone": {"before": "+1 555", "after": None}}

    def test_the_email_is_fixed_for_life(self) -> None:
        with pytest.raises(EmailImmutable):
            users.update_profile(ada(), {"email": "someone.else@example.com"}, LATER)

    def test_every_bad_field_is_reported_at_once(self) -> None:
        with pytest.raises(ValidationFailed) as refusal:
            users.update_profile(
                ada(),
                {
                    "first_name": " ",
                    "last_name": "x" * (users.NAME_MAX_LENGTH + 1),
                    "phone": "1" * (users.PHONE_MAX_LENGTH + 1),
                    "session_timeout_minutes": users.SESSION_TIMEOUT_MAX + 1,
                },
                LATER,
            )
        assert codes(refusal) == {
            ("first_name", "invalid_name"),
            ("last_name", "invalid_name"),
            ("phone", "too_long"),
            ("session_timeout_minutes", "out_of_range"),
        }

    @pytest.mark.parametrize("timeout", [True, "30", 4.5, users.SESSION_TIMEOUT_MIN - 1])
    def test_a_session_timeout_is_whole_minutes_in_range(self, timeout: object) -> None:
        with pytest.raises(ValidationFailed) as refusal:
            users.update_profile(ada(), {"session_timeout_minutes": timeout}, LATER)
        assert codes(refusal) == {("session_timeout_minutes", "out_of_range")}


class TestNewUser:
    def test_names_are_required_and_the_rest_starts_at_defaults(self) -> None:
        user = users.new_user(
            id=uuid4(), email="a@example.com", first_name="A", last_name="L", phone=None, now=NOW
        )
        assert user.two_factor is TwoFactor.DISABLED
        assert user.session_timeout_minutes == users.SESSION_TIMEOUT_DEFAULT
        with pytest.raises(ValidationFailed) as refusal:
            users.new_user(
                id=uuid4(), email="a@example.com", first_name=None, last_name=None, phone=None,
                now=NOW,
            )  # fmt: skip
        assert codes(refusal) == {("first_name", "missing"), ("last_name", "missing")}


class TestPasswords:
    def test_a_long_uncommon_password_passes(self) -> None:
        password = "correct horse battery staple"
        assert users.check_password(password, email="ada@example.com") == password

    @pytest.mark.parametrize(
        ("password", "code"),
        [
            ("short", "password_too_short"),
            ("Password 1234!", "password_common"),
            ("my ada.lovelace pass", "password_contains_email"),
        ],
    )
    def test_refuses_weak_ones(self, password: str, code: str) -> None:
        with pytest.raises(ValidationFailed) as refusal:
            users.check_password(password, email="ada.lovelace@example.com")
        assert code in {c for _, c in codes(refusal)}


class TestExportColumns:
    def test_all_by_default_else_in_the_order_asked_without_repeats(self) -> None:
        assert users.export_columns(None) == list(users.EXPORT_COLUMNS)
        assert users.export_columns("last_name, email,email") == ["last_name", "email"]

    def test_an_unknown_column_is_refused(self) -> None:
        with pytest.raises(ValidationFailed) as refusal:
            users.export_columns("email,password_hash")
        assert codes(refusal) == {("columns", "unknown_column")}

    def test_a_cell_that_a_spreadsheet_would_run_is_neutralized(self) -> None:
        assert users.neutralize("=SUM(A1)") == "'=SUM(A1)"
        assert users.neutralize("Ada") == "Ada"
