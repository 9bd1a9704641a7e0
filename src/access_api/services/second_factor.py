"""After a correct password, the second factor the user has: TOTP (or one of its recovery
codes), a code sent by email, or a passkey (WebAuthn)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from access_api.db import Database
from access_api.domain import recovery, two_factor
from access_api.domain.errors import InvalidCredentials, InvalidOtp, OtpRequired
from access_api.domain.mail import login_code_mail
from access_api.domain.recovery import Passkey
from access_api.domain.users import TwoFactor, User
from access_api.repositories.outbox import OutboxRepository
from access_api.repositories.passkeys import PasskeyRepository
from access_api.repositories.recovery import RecoveryRepository
from access_api.repositories.two_factor import TwoFactorRepository
from access_api.services import totp, webauthn
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
    public_url: str = "http://localhost"

    @property
    def _passkeys(self) -> PasskeyRepository:
        return PasskeyRepository(self.factors.session)

    @property
    def _recovery(self) -> RecoveryRepository:
        return RecoveryRepository(self.factors.session)

    async def check(
        self,
        user: User,
        otp: str | None,
        *failures: Attempt,
        assertion: dict[str, Any] | None = None,
        has_passkeys: bool = True,
    ) -> str | None:
        """Pass, or refuse: otp_required without an answer (naming the methods the user has,
        with a passkey challenge when they have passkeys; an email user is sent a code),
        invalid_otp for a wrong code (invalid_credentials for a failed passkey), which counts
        against the given throttle buckets like a wrong password. A caller that knows the
        user has no passkeys says so (has_passkeys=False): nothing to read then."""
        if user.two_factor is TwoFactor.DISABLED and not has_passkeys:
            return None
        keys = await self._passkeys.of_user(user.id)
        if user.two_factor is TwoFactor.DISABLED and not keys:
            return None
        method: str | None
        if assertion is not None and keys:
            method = "webauthn" if await self._passkey(user, keys, assertion) else None
        elif otp:
            method = await self._code(user, otp)
        else:
            raise await self._ask(user, keys)
        if method is None:
            self.throttling.failed(*failures)
            # A wrong code is not a wrong password: say which of the two was wrong.
            raise InvalidCredentials() if assertion is not None and keys else InvalidOtp()
        return method

    async def _code(self, user: User, otp: str) -> str | None:
        """A TOTP or emailed code, or else one of the user's recovery codes (each once): the
        method that accepted it, or None."""
        if user.two_factor is TwoFactor.TOTP and await self._totp(user, otp):
            return "totp"
        if (
            user.two_factor is TwoFactor.EMAIL
            and two_factor.is_email_code_shape(otp)
            and await self.factors.use_code(user.id, self._code_digest(user, otp), self.now)
        ):
            return "email"
        code = recovery.normalize_recovery_code(otp)
        if code is not None and await self._recovery.use_code(
            user.id, recovery_code_digest(self.keyring, user.id, code), self.now
        ):
            return "recovery_code"
        return None

    async def _ask(self, user: User, keys: list[Passkey]) -> OtpRequired:
        methods: list[str] = []
        options: dict[str, Any] | None = None
        if keys:
            methods.append("webauthn")
            challenge = webauthn.new_challenge()
            options = webauthn.authentication_options(
                webauthn.RelyingParty.of(self.public_url),
                challenge,
                [key.credential_id for key in keys],
            )
            self._keep_challenge_after_refusal(user, options["challenge"])
        if user.two_factor is TwoFactor.TOTP:
            methods.append("totp")
        if user.two_factor is TwoFactor.EMAIL:
            methods.append("email")
        if await self._recovery.codes_left(user.id):
            methods.append("recovery_code")
        if user.two_factor is TwoFactor.EMAIL:
            self._send_code_after_refusal(user)
            detail = "a six-digit sign-in code was sent to your email"
        elif user.two_factor is TwoFactor.TOTP:
            detail = "enter the code from your authenticator app"
        else:
            detail = "use your passkey"
        return OtpRequired(detail, methods=methods, webauthn=options)

    async def _passkey(self, user: User, keys: list[Passkey], assertion: dict[str, Any]) -> bool:
        """A signature over a challenge we issued (once, unexpired) by one of the user's
        passkeys, whose counter grew: a cloned authenticator's does not."""
        challenge = webauthn.challenge_of(assertion)
        credential_id = webauthn.credential_id_of(assertion)
        key = next((k for k in keys if k.credential_id == credential_id), None)
        if challenge is None or key is None:
            return False
        digest = passkey_challenge_digest(self.keyring, challenge)
        if not await self._passkeys.use_challenge(user.id, "login", digest, self.now):
            return False
        presented = webauthn.verify_assertion(
            webauthn.RelyingParty.of(self.public_url),
            assertion,
            challenge,
            key.public_key,
            key.sign_count,
        )
        return (
            presented is not None
            and recovery.counter_is_fresh(key.sign_count, presented)
            and await self._passkeys.advance_counter(key.id, key.sign_count, presented, self.now)
        )

    def _keep_challenge_after_refusal(self, user: User, challenge: str) -> None:
        """The otp_required answer rolls the request back: the challenge is kept in a
        transaction of its own."""
        database, now = self.database, self.now
        digest = passkey_challenge_digest(self.keyring, challenge)

        async def keep() -> None:
            async with database.session() as session:
                await PasskeyRepository(session).add_challenge(
                    user.id, "login", digest, now, now + recovery.PASSKEY_CHALLENGE_LIFETIME
                )
                await session.commit()

        self.after_refusal(keep)

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


def recovery_code_digest(keyring: Keyring, user_id: object, code: str) -> str:
    return keyring.digest(f"recovery-code/{user_id}/{code}")


def passkey_challenge_digest(keyring: Keyring, challenge: str) -> str:
    return keyring.digest(f"webauthn-challenge/{challenge}")
