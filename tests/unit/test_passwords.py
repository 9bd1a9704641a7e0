"""The hashing service as a fresh process first uses it: a login storm's first requests."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from passlib.hash import argon2

from access_api.services.passwords import _CURRENT_SHAPE, _HASHER, Passwords, _shape
from tests.conftest import ROOT

# Eight verifications queued at once on the hashing threads of a process that has never
# hashed: each must answer, none may fail while the first one loads argon2's backend.
_FIRST_USE = textwrap.dedent(
    """
    import asyncio

    from access_api.services.passwords import Passwords

    async def main() -> None:
        passwords = Passwords()
        outcomes = await asyncio.gather(
            *(passwords.verify(word, STORED) for word in ["right", "wrong"] * 4),
            return_exceptions=True,
        )
        print(repr(outcomes))

    asyncio.run(main())
    """
)


def test_verifications_queued_before_the_backend_loaded_all_answer() -> None:
    # The stored hash is made in another process, so this one has loaded nothing yet.
    stored = subprocess.run(
        [
            sys.executable,
            "-c",
            "from access_api.services.passwords import _HASHER; print(_HASHER.hash('right'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    script = _FIRST_USE.replace("STORED", repr(stored))
    ran = subprocess.run(  # noqa: S603 - our own script, with a hash we made
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert ran.stdout.strip() == repr([True, False] * 4), ran.stdout + ran.stderr


def test_a_rehash_is_needed_exactly_when_passlib_says_so() -> None:
    """The glance at a hash's shape (Passwords.needs_rehash) agrees with passlib's judgment on
    hashes of today's parameters and of every other, and on strings that are no hash."""
    passwords = Passwords()
    made = _HASHER.hash("a password")
    assert _shape(made) == _CURRENT_SHAPE
    others = [
        argon2.using(type="ID", memory_cost=19456, rounds=3, parallelism=1).hash("p"),
        argon2.using(type="ID", memory_cost=47104, rounds=1, parallelism=1).hash("p"),
        argon2.using(type="ID", memory_cost=19456, rounds=2, parallelism=2).hash("p"),
        argon2.using(type="I", memory_cost=19456, rounds=2, parallelism=1).hash("p"),
        argon2.using(type="ID", memory_cost=19456, rounds=2, salt_size=8).hash("p"),
        argon2.using(type="ID", memory_cost=19456, rounds=2, digest_size=16).hash("p"),
        argon2.using(type="ID", memory_cost=19456, rounds=2, digest_size=64).hash("p"),
    ]
    assert passwords.needs_rehash(made) is False
    for other in others:
        assert passwords.needs_rehash(other) is bool(_HASHER.needs_update(other)) is True, other
