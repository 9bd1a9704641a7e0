"""Credential rules as plain calls: throttle arithmetic, key and agent lifecycles, TOTP steps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from access_api.domain import agents, api_keys, throttle, two_factor
from access_api.domain.agents import AgentStatus
from access_api.domain.errors import (
    AgentDeregistered,
    ApiKeyExpired,
    NotFound,
    OtpRequired,
    TwoFactorEnabled,
    Unauthenticated,
    ValidationFailed,
)
from access_api.domain.users import TwoFactor, User

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
POLICY = throttle.PER_ACCOUNT


def user(two_factor_: TwoFactor) -> User:
    return User(
        id=uuid4(),
        email="a@example.com",
        first_name="A",
        last_name="B",
        phone=None,
        session_timeout_minutes=60,
        two_factor=two_factor_,
        created_at=NOW,
        updated_at=NOW,
        last_login_at=None,
    )


def key(**changes: Any) -> api_keys.ApiKey:
    made = api_keys.generate(
        id=uuid4(),
        root_id=uuid4(),
        user_id=uuid4(),
        name=None,
        expires_at=None,
        secret="aak_" + "x" * 40,
        created_by=uuid4(),
        now=NOW,
    )
    return replace(made, **changes)


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


class TestApiKeys:
    def test_a_new_key_needs_a_name_and_a_future_expiry(self) -> None:
        with pytest.raises(ValidationFailed) as refused:
            api_keys.generate(
                id=uuid4(),
                root_id=uuid4(),
                user_id=uuid4(),
                name=" ",
                expires_at=NOW,
                secret="aak_secret",
                created_by=uuid4(),
                now=NOW,
            )
        assert {error.field for error in refused.value.errors} == {"name", "expires_at"}

    def test_a_key_works_until_revoked_expired_or_its_user_leaves(self) -> None:
        live = key(expires_at=NOW + timedelta(hours=1))
        assert api_keys.check_usable(live, member=True, now=NOW) == live
        for candidate, member, at in (
            (None, True, NOW),
            (live, False, NOW),
            (live, True, NOW + timedelta(hours=1)),
            (api_keys.revoke(live, NOW), True, NOW),
        ):
            with pytest.raises(Unauthenticated):
                api_keys.check_usable(candidate, member=member, now=at)

    def test_regenerating_needs_a_live_key(self) -> None:
        with pytest.raises(NotFound):
            api_keys.regenerate(key(revoked_at=NOW), "aak_new", NOW)
        with pytest.raises(ApiKeyExpired):
            api_keys.regenerate(key(expires_at=NOW), "aak_new", NOW)
        assert api_keys.regenerate(key(), "aak_newsecret", NOW).prefix == "aak_newsecre"

    def test_use_is_written_down_at_most_once_a_minute(self) -> None:
        assert api_keys.should_touch(key(), NOW)
        recent = key(last_used_at=NOW)
        assert not api_keys.should_touch(recent, NOW + timedelta(seconds=59))
        assert api_keys.should_touch(recent, NOW + timedelta(seconds=60))


class TestAgents:
    def agent(self) -> agents.Agent:
        tenant = uuid4()
        return agents.provision(
            id=uuid4(),
            root_id=uuid4(),
            tenant_id=tenant,
            reachable={tenant},
            user_id=uuid4(),
            name=" Runner ",
            created_by=uuid4(),
            now=NOW,
        )

    def test_the_lifecycle(self) -> None:
        agent = self.agent()
        assert (agent.status, agent.name) == (AgentStatus.REGISTERED, "Runner")
        off = agents.deregister(agent, NOW)
        assert (off.status, off.token_issued_at) == (AgentStatus.DEREGISTERED, None)
        assert agents.deregister(off, NOW) == off
        with pytest.raises(AgentDeregistered):
            agents.reprovision(off, NOW)
        with pytest.raises(Unauthenticated):
            agents.check_active(off)
        back = agents.reregister(off, NOW + timedelta(minutes=1))
        assert back.status is AgentStatus.REGISTERED
        assert agents.status_changes(off, back) == {
            "status": {"before": "deregistered", "after": "registered"}
        }

    def test_an_agent_works_only_in_a_reachable_account(self) -> None:
        with pytest.raises(NotFound):
            agents.provision(
                id=uuid4(),
                root_id=uuid4(),
                tenant_id=uuid4(),
                reachable=set(),
                user_id=uuid4(),
                name="Runner",
                created_by=uuid4(),
                now=NOW,
            )


class TestTwoFactor:
    def test_codes_are_asked_for_only_from_totp_users(self) -> None:
        assert not two_factor.needs_totp(user(TwoFactor.DISABLED), None)
        assert two_factor.needs_totp(user(TwoFactor.TOTP), "123456")
        with pytest.raises(OtpRequired):
            two_factor.needs_totp(user(TwoFactor.TOTP), None)

    def test_only_a_newer_step_is_fresh(self) -> None:
        assert two_factor.is_fresh(10, None)
        assert two_factor.is_fresh(11, 10)
        assert not two_factor.is_fresh(10, 10)
        assert not two_factor.is_fresh(9, 10)

    def test_enrolment_is_refused_once_totp_is_on(self) -> None:
        two_factor.ensure_can_enrol(user(TwoFactor.EMAIL))
        with pytest.raises(TwoFactorEnabled):
            two_factor.ensure_can_enrol(user(TwoFactor.TOTP))
