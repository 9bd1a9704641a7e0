"""Everything keyed by the server secret: token digests, signatures and sealed secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_BYTES = 32
_NONCE_BYTES = 12


class SealBroken(ValueError):
    """A sealed value was tampered with, or sealed under another key or purpose."""


def new_token(prefix: str) -> str:
    """A random bearer secret; the prefix tells credentials apart at a glance and in logs."""
    return f"{prefix}_{secrets.token_urlsafe(TOKEN_BYTES)}"


class Keyring:
    """Subkeys derived per purpose, so a digest made for one use never validates another."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        # Keyed once: each digest copies the keyed state (the key's two padded blocks hashed)
        # instead of keying a new HMAC, a quarter of a digest's cost.
        self._token_hmac = hmac.new(self._derive("token-digest"), digestmod=hashlib.sha256)
        # Derived once per purpose (a handful of fixed names), not on every seal or signature.
        self._ciphers: dict[str, AESGCM] = {}

    def _derive(self, purpose: str) -> bytes:
        return hmac.new(self._secret, f"access-api/{purpose}".encode(), hashlib.sha256).digest()

    def _cipher(self, purpose: str) -> AESGCM:
        cipher = self._ciphers.get(purpose)
        if cipher is None:
            cipher = self._ciphers[purpose] = AESGCM(self._derive(f"seal/{purpose}"))
        return cipher

    def digest(self, token: str) -> str:
        """A keyed hash to store and look up bearer secrets by: one indexed query, and a
        stolen database alone does not let anyone check guesses offline."""
        keyed = self._token_hmac.copy()
        keyed.update(token.encode())
        return keyed.hexdigest()

    def sign(self, data: bytes, purpose: str) -> bytes:
        return hmac.new(self._derive(purpose), data, hashlib.sha256).digest()

    def verify(self, data: bytes, signature: bytes, purpose: str) -> bool:
        return hmac.compare_digest(self.sign(data, purpose), signature)

    def seal(self, plaintext: bytes, purpose: str) -> bytes:
        """Encrypt and authenticate (AES-256-GCM) a secret that must be kept and read back."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._cipher(purpose).encrypt(nonce, plaintext, purpose.encode())

    def unseal(self, sealed: bytes, purpose: str) -> bytes:
        try:
            return self._cipher(purpose).decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], purpose.encode()
            )
        except InvalidTag as exc:
            raise SealBroken(purpose) from exc

    def seal_text(self, plaintext: str, purpose: str) -> str:
        return base64.urlsafe_b64encode(self.seal(plaintext.encode(), purpose)).decode()

    def unseal_text(self, sealed: str, purpose: str) -> str:
        return self.unseal(base64.urlsafe_b64decode(sealed), purpose).decode()
