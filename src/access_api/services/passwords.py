"""Password hashing with argon2id at OWASP parameters, always off the event loop."""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from passlib.hash import argon2

# OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
_HASHER: Any = argon2.using(type="ID", memory_cost=19456, rounds=2, parallelism=1)
# Load the argon2 backend now, once, in the importing thread. passlib loads it on first use,
# and until then `_HASHER.verify` is a stub that loads it: a stub handed to a hashing thread
# (run_in_executor takes the bound method when the task is queued) and run after another
# thread loaded the backend raises AssertionError ("failed to replace lazy loader"). A login
# storm on a fresh process answered its first queued logins with 500s that way.
_HASHER.get_backend()


def _shape(stored: str) -> tuple[str, int, int]:
    """A PHC string's parameters ("$argon2id$v=19$m=…,t=…,p=…$"), salt length, hash length."""
    settings, salt, digest = stored.rsplit("$", 2)
    return settings + "$", len(salt), len(digest)


def _base64_length(size: int) -> int:
    return -(-size * 4 // 3)  # unpadded


# What a hash made now looks like, to recognize at a glance one that needs no rehash
# (tests/unit/test_passwords.py checks it against a hash made).
_CURRENT_SHAPE = (
    f"$argon2{_HASHER.type}$v={_HASHER.max_version}"
    f"$m={_HASHER.memory_cost},t={_HASHER.default_rounds},p={_HASHER.parallelism}$",
    _base64_length(_HASHER.default_salt_size),
    _base64_length(_HASHER.checksum_size),
)


def hashing_threads() -> int:
    """One hashing thread per core this process may run on: argon2 is pure CPU (and releases
    the GIL), so a thread beyond the cores only makes every hash slower (two 19 MiB working
    sets fighting for one core's cache) and takes CPU from the event loop."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@cache
def _pool() -> ThreadPoolExecutor:
    """The process's hashing threads, shared by every app in it: the cores are per process."""
    return ThreadPoolExecutor(max_workers=hashing_threads(), thread_name_prefix="argon2")


class Passwords:
    """A hash costs ~17 ms of CPU: done on the hashing pool, one thread per core. A login
    storm queues there (a queued hash whose client went away is dropped unrun) instead of
    contending for the CPU the event loop needs to answer everything else."""

    def __init__(self) -> None:
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        result: str = await asyncio.get_running_loop().run_in_executor(
            _pool(), _HASHER.hash, password
        )
        return result

    async def verify(self, password: str, stored: str | None) -> bool:
        """Check a password. Without a stored hash (unknown email) a dummy hash is checked, so
        the answer takes as long whether or not the account exists."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            stored = self._dummy  # a random secret's hash: no password matches it
        matched: bool = await asyncio.get_running_loop().run_in_executor(
            _pool(), _HASHER.verify, password, stored
        )
        return matched

    def needs_rehash(self, stored: str) -> bool:
        """Whether a stored hash was made with other parameters than today's. A hash of
        today's shape (parameters, salt and hash lengths: all passlib weighs for argon2) is
        recognized at a glance (0.4 us); any other is parsed and judged by passlib (8 us,
        warm)."""
        if stored.count("$") >= 2 and _shape(stored) == _CURRENT_SHAPE:
            return False
        return bool(_HASHER.needs_update(stored))
