"""Every domain error has one status and a unique, stable code."""

from __future__ import annotations

from access_api.domain import errors as e
from access_api.errors import EDGE_PROBLEMS, STATUS, status_of


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def test_every_domain_error_has_a_status() -> None:
    missing = {cls.__name__ for cls in _all_subclasses(e.DomainError) if cls not in STATUS}
    assert missing == set()


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in STATUS] + list(EDGE_PROBLEMS)
    assert len(codes) == len(set(codes))


def test_a_bulk_refusal_takes_the_shared_code_and_status() -> None:
    same = e.BulkRefused([e.ItemError("a", e.NotFound()), e.ItemError("b", e.NotFound())])
    assert same.shared is not None
    assert status_of(same) == 404
    mixed = e.BulkRefused([e.ItemError("a", e.NotFound()), e.ItemError("b", e.HasChildren())])
    assert mixed.shared is None
    assert status_of(mixed) == 422
