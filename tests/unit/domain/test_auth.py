"""Session rules as plain calls: idle timeout, absolute lifetime, and when a use is written."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from access_api.domain import auth

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LIFETIME = timedelta(days=14)


def session(*, created: datetime = NOW, seen: datetime = NOW) -> auth.Session:
    return auth.Session(
        id=uuid4(), user_id=uuid4(), created_at=created, last_seen_at=seen, ended_at=None
    )


class TestExpiry:
    def test_an_idle_session_ends_after_the_user_s_timeout(self) -> None:
        login = session(seen=NOW + timedelta(minutes=10))
        assert auth.expires_at(login, 60, LIFETIME) == NOW + timedelta(minutes=70)
        assert auth.is_active(login, 60, LIFETIME, NOW + timedelta(minutes=69))
        assert not auth.is_active(login, 60, LIFETIME, NOW + timedelta(minutes=70))

    def test_activity_never_keeps_a_session_past_its_absolute_lifetime(self) -> None:
        login = session(seen=NOW + LIFETIME - timedelta(minutes=1))
        assert auth.expires_at(login, 60, LIFETIME) == NOW + LIFETIME
        assert not auth.is_active(login, 60, LIFETIME, NOW + LIFETIME)

    def test_an_ended_session_is_over_at_once(self) -> None:
        ended = replace(session(), ended_at=NOW)
        assert not auth.is_active(ended, 60, LIFETIME, NOW)


class TestTouch:
    def test_a_use_is_written_down_at_most_once_a_minute(self) -> None:
        login = session()
        assert not auth.should_touch(login, 60, NOW + timedelta(seconds=59))
        assert auth.should_touch(login, 60, NOW + timedelta(seconds=60))

    def test_a_short_timeout_is_tracked_to_a_tenth_of_it(self) -> None:
        login = session()
        assert not auth.should_touch(login, 5, NOW + timedelta(seconds=29))
        assert auth.should_touch(login, 5, NOW + timedelta(seconds=30))
