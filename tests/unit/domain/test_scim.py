"""The SCIM directory's rules: userNames, the person's email, groups as roles."""

from __future__ import annotations

import pytest

from access_api.domain import errors as e
from access_api.domain import scim


def wanted(user_name: str, email: str | None = None) -> scim.UserInput:
    return scim.UserInput(
        user_name=user_name,
        external_id=None,
        active=True,
        email=email,
        first_name=None,
        last_name=None,
    )


class TestUserNames:
    def test_are_unique_case_insensitively(self) -> None:
        assert scim.user_name_key(" Ann.Lee ") == scim.user_name_key("ann.lee")

    @pytest.mark.parametrize("name", ["", "   ", "x" * 321])
    def test_empty_or_too_long_is_refused(self, name: str) -> None:
        with pytest.raises(e.ValidationFailed):
            scim.ensure_user_name(name)


class TestEmail:
    def test_the_primary_email_then_an_address_user_name_then_a_placeholder(self) -> None:
        assert scim.email_of(wanted("ann", "ann@acme.com"), "p") == "ann@acme.com"
        assert scim.email_of(wanted("ann@acme.com"), "p") == "ann@acme.com"
        placeholder = scim.email_of(wanted("ann"), "p1")
        assert scim.is_placeholder(placeholder)

    def test_an_email_never_changes_except_a_placeholder_once(self) -> None:
        assert scim.new_email("ann@acme.com", "ANN@acme.com") is None
        with pytest.raises(e.EmailImmutable):
            scim.new_email("ann@acme.com", "bob@acme.com")
        assert scim.new_email("p1@scim.invalid", "ann@acme.com") == "ann@acme.com"


class TestGroups:
    def test_a_group_is_a_role_of_the_tree(self) -> None:
        assert scim.ensure_group("admin", ["admin", "read_only"]) == "admin"
        with pytest.raises(e.ScimGroupUnknown):
            scim.ensure_group("wizards", ["admin"])

    def test_default_roles_must_exist(self) -> None:
        with pytest.raises(e.ValidationFailed):
            scim.ensure_roles_known(["admin", "ghost"], ["admin"])
