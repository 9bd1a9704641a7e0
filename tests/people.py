"""A person as the tests make one: a User with the defaults a new account gets."""

from __future__ import annotations

from datetime import datetime

from access_api.domain.users import TwoFactor, User
from access_api.ids import new_id


def new_person(
    email: str, now: datetime, *, first_name: str = "Test", last_name: str | None = None
) -> User:
    """Named Test and their email's local part unless told; no phone, no second factor."""
    return User(
        id=new_id(),
        email=email,
        first_name=first_name,
        last_name=email.split("@", maxsplit=1)[0] if last_name is None else last_name,
        phone=None,
        session_timeout_minutes=60,
        two_factor=TwoFactor.DISABLED,
        created_at=now,
        updated_at=now,
        last_login_at=None,
    )
