"""Domain errors as values: codes, details, bulk refusals, and waits said without HTTP."""

from __future__ import annotations

import pytest

from access_api.domain import errors as e


def test_a_detail_defaults_to_the_title() -> None:
    assert e.NotFound().detail == e.NotFound.title
    assert e.NotFound("no such key").detail == "no such key"


def test_a_rate_limit_says_how_long_to_wait_as_a_plain_number() -> None:
    refused = e.RateLimited(42)
    assert refused.retry_after_seconds == 42
    assert "42 s" in refused.detail
    assert not hasattr(refused, "headers")  # saying it in HTTP is the edge's business


def test_a_validation_failure_names_every_field() -> None:
    failed = e.ValidationFailed(
        [e.FieldError("name", "invalid_name", "too long"), e.FieldError("x", "bad", "bad")]
    )
    assert failed.detail == "name: too long; x: bad"


def test_bulk_refusals_are_atomic_and_name_every_offender() -> None:
    e.raise_if_any([])
    with pytest.raises(e.BulkRefused) as refused:
        e.raise_if_any([e.ItemError("a", e.NotFound()), e.ItemError("b", e.LastAdmin())])
    assert refused.value.shared is None
    assert "a: not_found" in refused.value.detail
    assert "b: last_admin" in refused.value.detail
