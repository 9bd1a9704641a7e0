"""Requests in flight in this process, so background work (outbox delivery) gives way to them.

The server delivers mail and webhooks from its own event loop. A delivery is CPU in Python
(claim, unseal, render, hand over, mark: each a part of a millisecond), and the loop runs it
whenever a request waits on the database: every delivery made during a request lengthens that
request. A dispatcher therefore waits for a quiet moment (no request in flight for 10 ms)
before taking the next message, but never longer than its give-way bound: under constant load
it still delivers at least one message per bound, and a message is only delayed, never lost.
A separate `access-api worker` process needs none of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

SETTLE_SECONDS = 0.01


class Traffic:
    """Counted by the request middleware (started/ended around every HTTP request), read by
    the dispatchers (quiet)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._quiet_since = -math.inf  # monotonic time the last request ended (none yet)

    def started(self) -> None:
        self.in_flight += 1
        if self.in_flight == 1:
            self._quiet.clear()

    def ended(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._quiet_since = time.monotonic()
            self._quiet.set()

    async def quiet(self, within: float, settle: float = SETTLE_SECONDS) -> bool:
        """Wait until no request has been in flight for `settle` seconds (a client sending
        requests back to back leaves gaps of a millisecond or two between them, which are not
        quiet), or `within` seconds in all, whichever comes first; True when it is quiet. An
        idle server is quiet at once: a batch of mail is not paced when nobody is waiting."""
        deadline = time.monotonic() + within
        while True:
            if self.in_flight:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(deadline - time.monotonic()):
                        await self._quiet.wait()
                if self.in_flight:
                    return False  # the bound ran out
            now = time.monotonic()
            idle = now - self._quiet_since
            if idle >= settle:
                return True
            if now >= deadline:
                return False
            await asyncio.sleep(min(settle - idle, deadline - now))
