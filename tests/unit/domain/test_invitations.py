"""Invitation and mail rules as plain function calls: status, unions, expiry, retry timing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from access_api.domain import invitations
from access_api.domain.access import Grant
from access_api.domain.errors import (
    BulkRefused,
    InvalidToken,
    InvitationNotPending,
    ValidationFailed,
)
from access_api.domain.invitations import Invitation, InvitationStatus, Offer
from access_api.domain.mail import accept_invitation_link, invitation_mail, retry_delay
from access_api.domain.users import check_password

NOW = datetime(2026, 11, 22, 9, tzinfo=UTC)
TENANT = uuid4()


def invitation(days: int = 7, status: InvitationStatus = InvitationStatus.PENDING) -> Invitation:
    made = invitations.new_invitation(
        id=uuid4(),
        root_id=TENANT,
        tenant_id=TENANT,
        email="ada@example.com",
        invited_by=uuid4(),
        offers=[Offer(tenant_id=TENANT, roles=frozenset({"read_only"}), include_descendants=False)],
        expires_in_days=days,
        now=NOW,
    )
    return replace(made, status=status)


class TestStatus:
    def test_a_pending_invitation_expires_by_the_clock_alone(self) -> None:
        made = invitation(days=1)
        assert made.status_at(NOW + timedelta(hours=23)) is InvitationStatus.PENDING
        assert made.status_at(NOW + timedelta(days=1)) is InvitationStatus.EXPIRED
        accepted = invitation(status=InvitationStatus.ACCEPTED)
        assert accepted.status_at(NOW + timedelta(days=30)) is InvitationStatus.ACCEPTED

    def test_expiry_is_one_to_thirty_days(self) -> None:
        for days in (0, 31):
            with pytest.raises(ValidationFailed):
                invitation(days=days)

    def test_only_a_pending_unexpired_link_can_be_accepted(self) -> None:
        assert invitations.ensure_acceptable(invitation(), NOW)
        for dead, at in (
            (invitation(status=InvitationStatus.REVOKED), NOW),
            (invitation(status=InvitationStatus.ACCEPTED), NOW),
            (invitation(days=1), NOW + timedelta(days=2)),
            (None, NOW),
        ):
            with pytest.raises(InvalidToken):
                invitations.ensure_acceptable(dead, at)


class TestUnion:
    def test_offered_roles_add_to_what_a_member_holds_and_never_narrow_it(self) -> None:
        user = uuid4()
        held = Grant(user_id=user, tenant_id=TENANT, roles=frozenset({"admin"}),
                     include_descendants=True)  # fmt: skip
        offered = Offer(tenant_id=TENANT, roles=frozenset({"read_only"}), include_descendants=False)
        (change,) = invitations.union_changes(user, [offered], {(user, TENANT): held}, NOW)
        assert change.after == Grant(
            user_id=user,
            tenant_id=TENANT,
            roles=frozenset({"admin", "read_only"}),
            include_descendants=True,
        )

    def test_nothing_changes_when_everything_offered_is_held(self) -> None:
        user = uuid4()
        held = Grant(user_id=user, tenant_id=TENANT, roles=frozenset({"admin", "read_only"}),
                     include_descendants=False)  # fmt: skip
        offered = Offer(tenant_id=TENANT, roles=frozenset({"admin"}), include_descendants=False)
        assert invitations.union_changes(user, [offered], {(user, TENANT): held}, NOW) == []

    def test_an_ended_grant_counts_as_none(self) -> None:
        user = uuid4()
        ended = Grant(user_id=user, tenant_id=TENANT, roles=frozenset({"admin"}),
                      include_descendants=True, expires_at=NOW - timedelta(days=1))  # fmt: skip
        offered = Offer(tenant_id=TENANT, roles=frozenset({"read_only"}), include_descendants=False)
        (change,) = invitations.union_changes(user, [offered], {(user, TENANT): ended}, NOW)
        assert change.after is not None
        assert (change.after.roles, change.after.include_descendants) == (
            frozenset({"read_only"}),
            False,
        )


class TestRevokeAndResend:
    def test_revoking_leaves_accepted_ones_alone_and_revoked_ones_as_they_are(self) -> None:
        pending, revoked = invitation(), invitation(status=InvitationStatus.REVOKED)
        changes = invitations.plan_revoke(
            [pending.id, revoked.id], {pending.id: pending, revoked.id: revoked}, NOW
        )
        assert [(b.id, a.status) for b, a in changes] == [(pending.id, InvitationStatus.REVOKED)]
        accepted = invitation(status=InvitationStatus.ACCEPTED)
        with pytest.raises(BulkRefused) as refused:
            invitations.plan_revoke([accepted.id], {accepted.id: accepted}, NOW)
        assert isinstance(refused.value.errors[0].error, InvitationNotPending)

    def test_resending_restarts_the_expiry_from_now(self) -> None:
        made = invitation(days=3)
        later = NOW + timedelta(days=10)
        (resent,) = invitations.plan_resend([made.id], {made.id: made}, {}, later)
        assert resent.expires_at == later + timedelta(days=3)
        assert (resent.sent_count, resent.status) == (2, InvitationStatus.PENDING)


class TestMail:
    def test_the_link_is_built_from_the_public_url_and_stands_on_its_own_line(self) -> None:
        link = accept_invitation_link("https://app.example.com/", "inv_a+b/c")
        assert link == "https://app.example.com/accept-invitation?token=inv_a%2Bb%2Fc"
        mail = invitation_mail(
            recipient="ada@example.com",
            tenant_name="Acme\nDental",
            inviter_name=None,
            inviter_email=None,
            accept_link=link,
            expires_at=NOW,
        )
        assert mail.subject == "An administrator invited you to Acme Dental"
        assert f"\n{link}\n" in mail.text

    def test_retries_double_up_to_the_cap(self) -> None:
        base, cap = timedelta(seconds=5), timedelta(minutes=15)
        delays = [retry_delay(n, base, cap).total_seconds() for n in (1, 2, 3, 4, 8, 200)]
        assert delays == [5, 10, 20, 40, 640, 900]


class TestPasswords:
    @pytest.mark.parametrize(
        "password", ["Password 1234!", "qwertyuiopasdf", "abcdabcdabcd", "zyxwvutsrqpo"]
    )
    def test_the_first_passwords_an_attacker_tries_are_refused(self, password: str) -> None:
        with pytest.raises(ValidationFailed) as refused:
            check_password(password, email="ada@example.com")
        assert refused.value.errors[0].code == "password_common"

    def test_a_long_unusual_passphrase_passes(self) -> None:
        assert check_password("a long and unusual passphrase", email="ada@example.com")
