"""The audit action catalog and the before/after of changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from access_api.domain.audit import Action, catalog, created, diff


@dataclass
class Thing:
    name: str
    roles: frozenset[str]
    at: datetime
    owner: UUID


THEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OWNER = UUID("01234567-89ab-cdef-0123-456789abcdef")


class TestCatalog:
    def test_every_action_is_named_once_with_a_dot(self) -> None:
        values = [action.value for action in Action]
        assert len(values) == len(set(values))
        assert all("." in value for value in values)

    def test_an_action_is_about_what_its_prefix_names_unless_told_otherwise(self) -> None:
        assert Action.USER_DELETED.target_type == "user"
        assert Action.TENANT_CREATED.target_type == "tenant"
        assert Action.AUTHORIZATION_GRANTED.target_type == "user"
        assert Action.USERS_EXPORTED.target_type == "tenant"

    def test_the_catalog_as_data_lists_every_action(self) -> None:
        listed = catalog()
        assert [item["action"] for item in listed] == [a.value for a in Action]
        assert all(item["target_type"] for item in listed)


class TestChanges:
    def test_diff_names_only_what_changed_in_plain_json(self) -> None:
        before = Thing("a", frozenset({"x"}), THEN, OWNER)
        after = Thing("b", frozenset({"y", "x"}), THEN, OWNER)
        assert diff(before, after, ("name", "roles", "at", "owner")) == {
            "name": {"before": "a", "after": "b"},
            "roles": {"before": ["x"], "after": ["x", "y"]},
        }

    def test_created_has_no_before(self) -> None:
        thing = Thing("a", frozenset(), THEN, OWNER)
        assert created(thing, ("at", "owner")) == {
            "at": {"before": None, "after": THEN.isoformat()},
            "owner": {"before": None, "after": str(OWNER)},
        }
