"""Sessions: how long a login lasts, and when its idle clock is worth writing down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

# Writing last_seen_at on every request would turn every read into a write; once a minute
# (or a tenth of a short timeout) keeps idle expiry accurate to that margin.
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    id: UUID
    user_id: UUID
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    # The strictest security policy's timeout where its user acts (§5.2), read with it.
    timeout_cap_minutes: int | None = None


def expires_at(session: Session, timeout_minutes: int, absolute_lifetime: timedelta) -> datetime:
    """A session ends after the user's idle timeout, and in any case after its absolute
    lifetime, so a stolen token cannot be kept alive forever by activity."""
    idle_end = session.last_seen_at + timedelta(minutes=timeout_minutes)
    return min(idle_end, session.created_at + absolute_lifetime)


def is_active(
    session: Session, timeout_minutes: int, absolute_lifetime: timedelta, now: datetime
) -> bool:
    return session.ended_at is None and now < expires_at(
        session, timeout_minutes, absolute_lifetime
    )


def should_touch(session: Session, timeout_minutes: int, now: datetime) -> bool:
    interval = min(TOUCH_INTERVAL, timedelta(minutes=timeout_minutes) / 10)
    return now - session.last_seen_at >= interval
