"""Password hashing with argon2id at OWASP parameters, always off the event loop."""

from __future__ import annotations

import secrets
from typing import Any

import anyio
from passlib.hash import argon2

# OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
_HASHER: Any = argon2.using(type="ID", memory_cost=19456, rounds=2, parallelism=1)


class Passwords:
    """A hash costs ~17 ms of CPU: done in worker threads (argon2 releases the GIL), bounded so a
    login storm queues for CPU instead of starving every other request of threads."""

    def __init__(self, max_concurrent: int = 4) -> None:
        self._limiter = anyio.CapacityLimiter(max_concurrent)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        result: str = await anyio.to_thread.run_sync(_HASHER.hash, password, limiter=self._limiter)
        return result

    async def verify(self, password: str, stored: str | None) -> bool:
        """Check a password. Without a stored hash (unknown email) a dummy hash is checked, so
        the answer takes as long whether or not the account exists."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            stored = self._dummy  # a random secret's hash: no password matches it
        matched: bool = await anyio.to_thread.run_sync(
            _HASHER.verify, password, stored, limiter=self._limiter
        )
        return matched

    def needs_rehash(self, stored: str) -> bool:
        return bool(_HASHER.needs_update(stored))
