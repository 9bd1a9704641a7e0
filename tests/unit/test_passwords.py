"""The hashing service as a fresh process first uses it: a login storm's first requests."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
