"""After a correct password, the second factor the user has: TOTP, or a code sent by email."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from access_api.db import Database
from access_api.domain import two_factor
from access_api.domain.errors import InvalidCredentials, OtpRequired
from access_api.domain.mail import login_code_mail
from access_api.domain.users import TwoFactor, User
from access_api.repositories.outbox import OutboxRepository
from access_api.repositories.two_factor import TwoFactorRepository
from access_api.services import totp
from access_api.services.keyring import Keyring
from access_api.services.mailer import Dispatcher
from access_api.services.throttle import Attempt, Defer, Throttle


@dataclass(slots=True)
class SecondFactor:
    factors: TwoFactorRepository
    throttling: Throttle
    database: Database
    keyring: Keyring
    dispatcher: Dispatcher
    now: datetime
    after_refusal: Defer

    async def check(self, user: User, otp: str | None, *failures: Attempt) -> None:
        """Pass, or refuse: otp_required without a code (a TOTP user opens their app, an email
        user is sent a code), invalid_credentials for a wrong one, which counts against the
        given throttle buckets like a wrong password."""
        if user.two_factor is TwoFactor.DISABLED:
            return
        if not otp:
            if user.two_factor is TwoFactor.EMAIL:
                self._send_code_after_refusal(user)
                raise OtpRequired("a six-digit sign-in code was sent to your email")
            raise OtpRequired("enter the code from your authenticator app")
        if user.two_factor is TwoFactor.TOTP:
            accepted = await self._totp(user, otp)
        else:
            accepted = two_factor.is_email_code_shape(otp) and await self.factors.use_code(
                user.id, self._code_digest(user, otp), self.now
            )
        if not accepted:
            self.throttling.failed(*failures)
            raise InvalidCredentials()

    async def _totp(self, user: User, code: str) -> bool:
        """The code matches the secret (within the allowed drift) and its step is fresh;
        consuming the step is atomic, so of parallel logins with one code only one wins."""
        current = await self.factors.totp(user.id)
        if current.sealed_secret is None:
            return False
        secret = self.keyring.unseal_text(current.sealed_secret, "totp")
        step = totp.matching_step(secret, code, self.now)
        return (
            step is not None
            and two_factor.is_fresh(step, current.last_step)
            and await self.factors.claim_step(user.id, step)
        )

    def _code_digest(self, user: User, code: str) -> str:
        return self.keyring.digest(f"email-code/{user.id}/{code}")

    def _send_code_after_refusal(self, user: User) -> None:
        """The otp_required answer rolls the request back: the code and its email are written
        in a transaction of their own, at most one a minute."""
        database, now, dispatcher = self.database, self.now, self.dispatcher
        digits = two_factor.EMAIL_CODE_DIGITS
        code = str(secrets.randbelow(10**digits)).zfill(digits)
        digest = self._code_digest(user, code)

        async def send() -> None:
            async with database.session() as session:
                factors = TwoFactorRepository(session)
                last_sent = await factors.last_code_sent_at(user.id, now)
                if not two_factor.should_send_code(last_sent, now):
                    return
                expires_at = now + two_factor.EMAIL_CODE_LIFETIME
                await factors.issue_code(user.id, digest, now, expires_at)
                mail = login_code_mail(recipient=user.email, code=code, expires_at=expires_at)
                await OutboxRepository(session).add([dispatcher.letters.queued(mail, now)])
                await session.commit()
            dispatcher.wake()

        self.after_refusal(send)
