"""Email syntax through email-validator, its domain check made once per domain."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from email_validator import syntax

from access_api.services import emails

_CHECK = sys.modules["email_validator.validate_email"].validate_email_domain_name


def test_a_bulk_invitations_shared_domain_is_checked_once() -> None:
    domain = "Bulk-Once.Example.COM"
    before: Any = _CHECK.cache_info()
    spelled = [emails.normalized(f"Invitee.{n}@{domain}") for n in range(100)]
    after: Any = _CHECK.cache_info()
    assert spelled == [f"Invitee.{n}@bulk-once.example.com" for n in range(100)]
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 99)


@pytest.mark.parametrize(
    "email",
    [
        "ann@Example.ORG",
        "bob@bücher.example",
        "Chris@XN--BCHER-KVA.example",
        "dee@sub.domain.example.net",
    ],
)
def test_answers_are_those_of_the_check_itself(email: str) -> None:
    domain = email.rsplit("@", 1)[1]
    expected = syntax.validate_email_domain_name(
        domain, test_environment=False, globally_deliverable=True
    )["domain"]
    first, again = emails.normalized(email), emails.normalized(email)
    assert first == again == email.rsplit("@", 1)[0] + "@" + expected


@pytest.mark.parametrize(
    "email", ["eve@-bad-.example", "fay@example", "gus@ex ample.com", "hal@x.localhost"]
)
def test_a_refusal_is_given_every_time(email: str) -> None:
    with pytest.raises(emails.EmailNotValidError) as first:
        emails.normalized(email)
    with pytest.raises(emails.EmailNotValidError) as again:
        emails.normalized(email)
    assert str(first.value) == str(again.value)
