"""WebAuthn (passkeys) through py_webauthn: options to hand the browser, and the checks of
what it answers. The relying party is the host of PUBLIC_URL, the origin PUBLIC_URL itself."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import webauthn
from webauthn.helpers import bytes_to_base64url, parse_client_data_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from access_api.domain.errors import PasskeyRejected
from access_api.domain.recovery import PASSKEY_CHALLENGE_LIFETIME

RP_NAME = "access-api"
CHALLENGE_BYTES = 32


@dataclass(frozen=True, slots=True)
class RelyingParty:
    id: str
    origin: str

    @classmethod
    def of(cls, public_url: str) -> RelyingParty:
        parts = urlsplit(public_url)
        return cls(id=parts.hostname or "localhost", origin=f"{parts.scheme}://{parts.netloc}")


@dataclass(frozen=True, slots=True)
class NewCredential:
    credential_id: str  # base64url
    public_key: bytes
    sign_count: int


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def challenge_of(credential: dict[str, Any]) -> str | None:
    """The challenge (base64url) the browser signed, read from its clientDataJSON; None when
    the answer is not even shaped like one."""
    try:
        response = credential["response"]
        client_data = parse_client_data_json(
            webauthn.base64url_to_bytes(response["clientDataJSON"])
        )
    except (KeyError, TypeError, ValueError, WebAuthnException):
        return None
    return bytes_to_base64url(client_data.challenge)


def credential_id_of(credential: dict[str, Any]) -> str | None:
    value = credential.get("id") if isinstance(credential, dict) else None
    return value if isinstance(value, str) and value else None


def _timeout_ms() -> int:
    return int(PASSKEY_CHALLENGE_LIFETIME.total_seconds() * 1000)


def registration_options(
    rp: RelyingParty, user_id: UUID, email: str, name: str, challenge: bytes, existing: list[str]
) -> dict[str, Any]:
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_id=user_id.bytes,
        user_name=email,
        user_display_name=name or email,
        challenge=challenge,
        timeout=_timeout_ms(),
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c)) for c in existing
        ],
    )
    result: dict[str, Any] = json.loads(webauthn.options_to_json(options))
    return result


def verify_registration(
    rp: RelyingParty, credential: dict[str, Any], challenge: str
) -> NewCredential:
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as error:
        raise PasskeyRejected(f"the passkey was not accepted: {error}") from error
    return NewCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
    )


def authentication_options(
    rp: RelyingParty, challenge: bytes, allowed: list[str]
) -> dict[str, Any]:
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=_timeout_ms(),
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c)) for c in allowed
        ],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    result: dict[str, Any] = json.loads(webauthn.options_to_json(options))
    return result


def verify_assertion(
    rp: RelyingParty,
    credential: dict[str, Any],
    challenge: str,
    public_key: bytes,
    sign_count: int,
) -> int | None:
    """The authenticator's new sign count when the assertion is good, else None. py_webauthn
    refuses a counter that did not grow, as the domain rule says (counter_is_fresh)."""
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError):
        return None
    return int(verified.new_sign_count)
