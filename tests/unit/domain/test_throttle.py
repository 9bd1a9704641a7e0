"""Throttle arithmetic as plain calls: windows, lockouts that double to a cap, forgetting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from access_api.domain import throttle

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
POLICY = throttle.PER_ACCOUNT


class TestThrottle:
    def test_the_limit_th_failure_locks_and_opens_a_fresh_window(self) -> None:
        bucket = None
        for _ in range(POLICY.limit - 1):
            bucket = throttle.after_failure(bucket, POLICY, NOW)
            assert bucket.locked_until is None
        bucket = throttle.after_failure(bucket, POLICY, NOW)
        assert (bucket.locked_until, bucket.failures, bucket.lockouts) == (
            NOW + timedelta(minutes=1),
            0,
            1,
        )
        assert throttle.retry_after([bucket, None], NOW) == 60
        assert throttle.retry_after([bucket], NOW + timedelta(seconds=59.2)) == 1
        assert throttle.retry_after([bucket], NOW + timedelta(minutes=1)) is None

    def test_a_failure_outside_the_window_starts_counting_again(self) -> None:
        bucket = throttle.after_failure(None, POLICY, NOW)
        later = NOW + POLICY.window
        bucket = throttle.after_failure(bucket, POLICY, later)
        assert (bucket.failures, bucket.window_started_at) == (1, later)

    def test_lockouts_double_to_the_cap_and_are_forgotten_after_a_quiet_spell(self) -> None:
        assert [throttle.lockout_for(POLICY, n).total_seconds() for n in range(6)] == [
            60,
            120,
            240,
            480,
            900,
            900,
        ]
        assert throttle.lockout_for(POLICY, 10_000) == POLICY.max_lockout
        locked = throttle.Bucket(
            failures=POLICY.limit - 1,
            window_started_at=NOW,
            locked_until=None,
            lockouts=3,
            last_failure_at=NOW,
        )
        again = throttle.after_failure(locked, POLICY, NOW + timedelta(minutes=1))
        assert again.locked_until == NOW + timedelta(minutes=1 + 8)
        quiet = throttle.after_failure(locked, POLICY, NOW + POLICY.memory)
        assert (quiet.failures, quiet.lockouts) == (1, 0)

    def test_the_longest_lock_decides(self) -> None:
        short = throttle.after_failure(
            throttle.Bucket(
                failures=4,
                window_started_at=NOW,
                locked_until=None,
                lockouts=0,
                last_failure_at=NOW,
            ),
            POLICY,
            NOW,
        )
        long_ = throttle.Bucket(
            failures=0,
            window_started_at=NOW,
            locked_until=NOW + timedelta(minutes=15),
            lockouts=5,
            last_failure_at=NOW,
        )
        assert throttle.retry_after([short, long_], NOW) == 900

    def test_nothing_locked_means_no_wait(self) -> None:
        assert throttle.retry_after([], NOW) is None
        assert throttle.retry_after([None, throttle.after_failure(None, POLICY, NOW)], NOW) is None

    def test_a_lock_outlives_the_failures_counted_after_it(self) -> None:
        locked = throttle.Bucket(
            failures=0,
            window_started_at=NOW,
            locked_until=NOW + timedelta(minutes=1),
            lockouts=1,
            last_failure_at=NOW,
        )
        after = throttle.after_failure(locked, POLICY, NOW + timedelta(seconds=10))
        assert after.locked_until == locked.locked_until
        assert after.failures == 1
