"""Email syntax, as email-validator judges it, with its check of the domain part made once per
domain.

Checking a domain (IDNA, a Unicode table lookup per character, the special-use names) is two
thirds of what `validate_email` costs: about 30 us of every email's 45 us. A bulk invitation's
hundred emails usually share a domain or two, so the check is memoized: the function is pure
(it reads only its arguments; no DNS without check_deliverability) and its result, a small
dict, is only read. The memo replaces the name `validate_email` looks it up by; if a release
of email-validator moves it, the memo is simply not installed (same answers, slower).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from email_validator import syntax as _syntax

__all__ = ["EmailNotValidError", "normalized"]

_DOMAINS_REMEMBERED = 4096

_NAME = "validate_email_domain_name"  # where validate_email looks the check up


def _remember_domains() -> None:
    module = sys.modules.get("email_validator.validate_email")
    check: Any = getattr(_syntax, _NAME, None)
    if module is None or not callable(check) or getattr(module, _NAME, None) is not check:
        return
    remembered = lru_cache(maxsize=_DOMAINS_REMEMBERED)(cast(Callable[..., Any], check))
    setattr(module, _NAME, remembered)


_remember_domains()


def normalized(email: str) -> str:
    """The email as the mail system spells it (domain lowercased, Unicode normalized), or
    EmailNotValidError saying what is wrong with it."""
    return validate_email(email, check_deliverability=False).normalized
