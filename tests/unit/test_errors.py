"""Every domain error has one status and a unique, stable code."""

from __future__ import annotations

from starlette.requests import Request

from access_api.domain import errors as e
from access_api.errors import EDGE_PROBLEMS, STATUS, domain_problem, status_of


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


def test_a_rate_limit_is_answered_with_retry_after_built_at_the_edge() -> None:
    request = Request({"type": "http", "method": "POST", "path": "/v1/auth/login", "headers": []})
    answer = domain_problem(request, e.RateLimited(42))
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "42"
    assert "retry-after" not in domain_problem(request, e.NotFound()).headers
