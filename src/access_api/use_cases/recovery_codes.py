"""TOTP recovery codes: ten single-use codes, shown once, kept only as keyed digests."""

from __future__ import annotations

import secrets
from uuid import UUID

from access_api.domain import errors as e
from access_api.domain import recovery
from access_api.domain.access import Caller
from access_api.domain.audit import Action, ActorKind
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.users import TwoFactor
from access_api.services.second_factor import recovery_code_digest
from access_api.use_cases.work import Work


def _new_codes() -> list[str]:
    size = recovery.RECOVERY_CODE_GROUPS * recovery.RECOVERY_CODE_GROUP_LENGTH
    alphabet = len(recovery.RECOVERY_CODE_ALPHABET)
    return [
        recovery.recovery_code_from([secrets.randbelow(alphabet) for _ in range(size)])
        for _ in range(recovery.RECOVERY_CODE_COUNT)
    ]


async def issue(work: Work, user_id: UUID) -> list[str]:
    """A new set, replacing any older one whole; the codes are in this answer and nowhere
    else, ever."""
    codes = _new_codes()
    await work.recovery.replace_codes(
        user_id, [recovery_code_digest(work.keyring, user_id, code) for code in codes], work.now
    )
    return codes


async def replace(work: Work, caller: Caller, password: str) -> list[str]:
    """The person at the keyboard (a session, with their password) replaces the whole set:
    lost or used up codes are forgotten at once."""
    if caller.credential is not ActorKind.SESSION:
        raise e.Forbidden("recovery codes can only be replaced from a login session")
    user = await work.users.lock(caller.user_id)
    stored = await work.users.password_hash(caller.user_id)
    if user is None or not await work.passwords.verify(password, stored):
        raise ValidationFailed([FieldError("password", "incorrect", "this is not your password")])
    if user.two_factor is not TwoFactor.TOTP:
        raise e.TwoFactorNotEnabled(
            "recovery codes stand in for an authenticator app: turn TOTP on"
        )
    codes = await issue(work, user.id)
    await work.record(caller.actor, Action.RECOVERY_CODES_REPLACED, tenant=None, target_id=user.id)
    return codes


async def left(work: Work, user_id: UUID) -> int:
    return await work.recovery.codes_left(user_id)
