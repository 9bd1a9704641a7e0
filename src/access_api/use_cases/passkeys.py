"""Passkeys (WebAuthn) as a second factor: registration, listing and deletion by their owner.
Their use at login lives in services/second_factor.py."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from access_api.domain import errors as e
from access_api.domain import recovery
from access_api.domain.access import Caller
from access_api.domain.audit import Action, ActorKind
from access_api.domain.recovery import Passkey
from access_api.domain.users import User
from access_api.ids import new_id
from access_api.services import webauthn
from access_api.services.second_factor import passkey_challenge_digest
from access_api.use_cases.work import Work


async def _person(work: Work, caller: Caller) -> User:
    """Second factors belong to the person at the keyboard: a session, not an API key."""
    if caller.credential is not ActorKind.SESSION:
        raise e.Forbidden("passkeys can only be managed from a login session")
    user = await work.users.get(caller.user_id)
    if user is None:
        raise e.Unauthenticated()
    return user


def _rp(work: Work) -> webauthn.RelyingParty:
    return webauthn.RelyingParty.of(work.settings.public_url)


async def options(work: Work, caller: Caller) -> dict[str, Any]:
    """Registration options for navigator.credentials.create(); their challenge works once,
    for a few minutes."""
    user = await _person(work, caller)
    existing = [key.credential_id for key in await work.passkeys.of_user(user.id)]
    made = webauthn.registration_options(
        _rp(work),
        user.id,
        user.email,
        f"{user.first_name} {user.last_name}".strip(),
        webauthn.new_challenge(),
        existing,
    )
    await work.passkeys.add_challenge(
        user.id,
        "register",
        passkey_challenge_digest(work.keyring, made["challenge"]),
        work.now,
        work.now + recovery.PASSKEY_CHALLENGE_LIFETIME,
    )
    return made


async def register(
    work: Work, caller: Caller, name: str | None, credential: dict[str, Any]
) -> Passkey:
    """Verify what the authenticator made (attestation none) against a challenge we issued to
    this user, and keep its public key and counter."""
    user = await _person(work, caller)
    keys = await work.passkeys.of_user(user.id)
    label = recovery.passkey_name(name, len(keys))
    challenge = webauthn.challenge_of(credential)
    digest = passkey_challenge_digest(work.keyring, challenge or "")
    if challenge is None or not await work.passkeys.use_challenge(
        user.id, "register", digest, work.now
    ):
        raise e.PasskeyRejected("this answer is to no live challenge; ask for new options")
    made = webauthn.verify_registration(_rp(work), credential, challenge)
    if await work.passkeys.credential_known(made.credential_id):
        raise e.PasskeyRejected("this passkey is already registered")
    passkey = Passkey(
        id=new_id(),
        user_id=user.id,
        name=label,
        credential_id=made.credential_id,
        public_key=made.public_key,
        sign_count=made.sign_count,
        created_at=work.now,
        last_used_at=None,
    )
    await work.passkeys.add(passkey)
    await work.record(
        caller.actor,
        Action.PASSKEY_REGISTERED,
        tenant=None,
        target_id=passkey.id,
        changes={"name": {"before": None, "after": passkey.name}},
    )
    return passkey


async def list_mine(work: Work, caller: Caller) -> list[Passkey]:
    user = await _person(work, caller)
    return await work.passkeys.of_user(user.id)


async def delete(work: Work, caller: Caller, passkey_id: UUID) -> None:
    user = await _person(work, caller)
    gone = await work.passkeys.delete(user.id, passkey_id)
    if gone is None:
        raise e.NotFound(f"no passkey {passkey_id}")
    await work.record(
        caller.actor,
        Action.PASSKEY_DELETED,
        tenant=None,
        target_id=passkey_id,
        changes={"name": {"before": gone.name, "after": None}},
    )
