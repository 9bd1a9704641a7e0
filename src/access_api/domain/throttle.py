"""Throttling failed attempts: short windows, lockouts that double up to a cap, then forget.

A bucket counts the failures of one thing (an account, a client address) for one purpose
(login, accepting an invitation, ...). Too many failures within a short window lock it for a
while; each further lockout lasts twice as long, up to a cap; a quiet hour forgets the
history. Nothing is ever locked for good: whoever fails keeps the lock short, and the real
user can always log in once it ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

_MAX_DOUBLINGS = 16  # far past any cap: keeps the arithmetic bounded


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    limit: int  # failures within a window that lock the bucket
    window: timedelta  # a window starts at its first failure
    first_lockout: timedelta
    max_lockout: timedelta
    memory: timedelta  # after this long without a failure, lockouts start short again


# One account: a handful of tries (a typo, a forgotten password) before a first minute's pause.
PER_ACCOUNT = Policy(
    limit=5,
    window=timedelta(minutes=5),
    first_lockout=timedelta(minutes=1),
    max_lockout=timedelta(minutes=15),
    memory=timedelta(hours=1),
)
# One client address: an office behind one NAT address fails more often, across many accounts.
PER_ADDRESS = Policy(
    limit=20,
    window=timedelta(minutes=5),
    first_lockout=timedelta(minutes=1),
    max_lockout=timedelta(minutes=15),
    memory=timedelta(hours=1),
)


@dataclass(frozen=True, slots=True)
class Rule:
    """What a bucket counts: name is the purpose and subject, e.g. "login:account"."""

    name: str
    policy: Policy


LOGIN_ACCOUNT = Rule("login:account", PER_ACCOUNT)
LOGIN_ADDRESS = Rule("login:address", PER_ADDRESS)
# Links that carry a token (invitations, two-factor resets): one address trying many.
TOKEN_ADDRESS = Rule("token:address", PER_ADDRESS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    failures: int
    window_started_at: datetime
    locked_until: datetime | None
    lockouts: int
    last_failure_at: datetime


def retry_after(buckets: Iterable[Bucket | None], now: datetime) -> int | None:
    """Seconds until every locked bucket opens again (whole seconds, rounded up), or None
    when none is locked."""
    waits = [
        bucket.locked_until - now
        for bucket in buckets
        if bucket is not None and bucket.locked_until is not None and bucket.locked_until > now
    ]
    if not waits:
        return None
    return max(1, math.ceil(max(waits).total_seconds()))


def lockout_for(policy: Policy, lockouts_before: int) -> timedelta:
    """1, 2, 4, 8 ... minutes (from the policy's first lockout), never more than its cap."""
    doubled: timedelta = policy.first_lockout * (2 ** min(lockouts_before, _MAX_DOUBLINGS))
    return min(doubled, policy.max_lockout)


def after_failure(bucket: Bucket | None, policy: Policy, now: datetime) -> Bucket:
    """Count one more failure; the limit-th within a window locks the bucket and starts a
    new, empty window behind the lock."""
    failures, started, lockouts, locked_until = 0, now, 0, None
    if bucket is not None:
        locked_until = bucket.locked_until
        if now - bucket.last_failure_at < policy.memory:
            lockouts = bucket.lockouts
        if now - bucket.window_started_at < policy.window:
            failures, started = bucket.failures, bucket.window_started_at
    failures += 1
    if failures >= policy.limit:
        return Bucket(
            failures=0,
            window_started_at=now,
            locked_until=now + lockout_for(policy, lockouts),
            lockouts=lockouts + 1,
            last_failure_at=now,
        )
    return Bucket(
        failures=failures,
        window_started_at=started,
        locked_until=locked_until,
        lockouts=lockouts,
        last_failure_at=now,
    )
