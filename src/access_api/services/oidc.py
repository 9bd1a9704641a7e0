"""Talking to an OpenID provider: discovery, the authorization URL, the code exchange and the
ID token's validation (authlib's OIDC rules over joserfc's signatures, httpx underneath).

authlib's own httpx client is deprecated in favour of a fork (httpx2); the two requests an
authorization-code login needs are made with httpx here, and everything that decides (PKCE,
metadata validation, claims: issuer, audience, expiry, nonce, at_hash) is authlib's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

_TIMEOUT = httpx.Timeout(5.0)
_CACHE_SECONDS = 300.0
# Clocks of the IdP and ours differ a little; an ID token is judged with this much slack.
LEEWAY_SECONDS = 60


class ProviderUnavailable(Exception):
    """The IdP could not be read (discovery, keys) or refused the code."""


class TokenInvalid(Exception):
    """The ID token failed a check: signature, issuer, audience, expiry, nonce."""


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    state: str
    nonce: str
    code_verifier: str


class OpenIdClient:
    """Discovery documents and key sets are cached per process for a few minutes; each process
    reads them itself, so nothing here must be shared."""

    def __init__(self) -> None:
        self._metadata: dict[str, tuple[float, Metadata]] = {}
        self._keys: dict[str, tuple[float, KeySet]] = {}

    async def metadata(self, issuer: str) -> Metadata:
        cached = self._metadata.get(issuer)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        document = await _get_json(f"{issuer}/.well-known/openid-configuration")
        try:
            meta = OpenIDProviderMetadata(document)
            meta.validate_issuer()
            meta.validate_authorization_endpoint()
            meta.validate_token_endpoint()
            meta.validate_jwks_uri()
        except Exception as exc:
            raise ProviderUnavailable(f"invalid discovery document: {exc}") from exc
        if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
            raise ProviderUnavailable("the discovery document names another issuer")
        found = Metadata(
            issuer=document["issuer"],
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            jwks_uri=document["jwks_uri"],
        )
        self._metadata[issuer] = (time.monotonic() + _CACHE_SECONDS, found)
        return found

    async def _key_set(self, jwks_uri: str, *, fresh: bool = False) -> KeySet:
        cached = self._keys.get(jwks_uri)
        if cached and cached[0] > time.monotonic() and not fresh:
            return cached[1]
        try:
            keys = KeySet.import_key_set(await _get_json(jwks_uri))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as exc:
            raise ProviderUnavailable(f"invalid key set: {exc}") from exc
        self._keys[jwks_uri] = (time.monotonic() + _CACHE_SECONDS, keys)
        return keys

    async def authorization_request(
        self, issuer: str, client_id: str, redirect_uri: str
    ) -> Request:
        """Authorization code with PKCE (S256), a fresh state and nonce."""
        meta = await self.metadata(issuer)
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url = add_params_to_uri(
            meta.authorization_endpoint,
            [
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("scope", "openid email profile"),
                ("state", state),
                ("nonce", nonce),
                ("code_challenge", create_s256_code_challenge(verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        return Request(url=url, state=state, nonce=nonce, code_verifier=verifier)

    async def redeem(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        code: str,
        code_verifier: str,
        nonce: str,
        now: datetime,
    ) -> dict[str, Any]:
        """Exchange the code for tokens and return the ID token's claims, once every check of
        OpenID Connect Core §3.1.3.7 has passed."""
        meta = await self.metadata(issuer)
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
            try:
                answer = await client.post(
                    meta.token_endpoint,
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": redirect_uri,
                        "code_verifier": code_verifier,
                    },
                    auth=(client_id, client_secret),
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(
                    f"token endpoint unreachable: {type(exc).__name__}"
                ) from exc
        if answer.status_code != 200:
            raise ProviderUnavailable(f"token endpoint answered {answer.status_code}")
        id_token = answer.json().get("id_token")
        if not isinstance(id_token, str):
            raise TokenInvalid("no ID token in the token response")
        return await self._validate(id_token, meta, client_id, nonce, answer.json(), now)

    async def _validate(
        self,
        id_token: str,
        meta: Metadata,
        client_id: str,
        nonce: str,
        tokens: dict[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        keys = await self._key_set(meta.jwks_uri)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=["RS256", "PS256", "ES256", "EdDSA"])
            except JoseError:
                # A key the IdP rolled over since we cached its set: read the set once more.
                keys = await self._key_set(meta.jwks_uri, fresh=True)
                token = jwt.decode(id_token, keys, algorithms=["RS256", "PS256", "ES256", "EdDSA"])
            claims = CodeIDToken(
                token.claims,
                dict(token.header),
                options={
                    "iss": {"essential": True, "value": meta.issuer},
                    "aud": {"essential": True, "value": client_id},
                },
                params={"nonce": nonce, "client_id": client_id, **_at_hash(tokens)},
            )
            claims.validate(now=int(now.timestamp()), leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise TokenInvalid(f"{type(exc).__name__}: {exc}") from exc
        return dict(claims)


def _at_hash(tokens: dict[str, Any]) -> dict[str, Any]:
    access_token = tokens.get("access_token")
    return {"access_token": access_token} if isinstance(access_token, str) else {}


async def _get_json(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
        try:
            answer = await client.get(url, headers={"Accept": "application/json"})
            answer.raise_for_status()
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from exc
    if not isinstance(body, dict):
        raise ProviderUnavailable(f"{url}: not a JSON object")
    return body


CLIENT = OpenIdClient()
"""The process's client: its caches are per process by design."""
