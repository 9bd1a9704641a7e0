"""The outbox dispatcher loop every channel shares: claim with a lease, deliver, record the
outcome (sent, or due again after a backoff, or given up), repeat; woken at once after a
commit, polling otherwise. A channel (mail, webhooks) says only how one message is delivered.

Delivery is at least once: a message is claimed with a lease (committed), delivered, and
marked sent in its own short transaction right after the receiver accepted it. A process
dying in between leaves the message to be delivered again once its lease runs out, with the
same message id, so the receiving side can drop the duplicate. Nothing is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from access_api.db import Database
from access_api.domain.mail import retry_delay
from access_api.repositories.outbox import ClaimedMessage, OutboxRepository
from access_api.services.clock import Clock
from access_api.services.traffic import Traffic

STOP_GRACE_SECONDS = 10.0
_MARK_RETRIES = 5


class DeliveryFailed(Exception):
    """One attempt failed; permanent when no retry could ever help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(slots=True)
class Delivery:
    sent: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Pacing:
    """How a channel claims and retries: lease, poll interval, backoff and attempts."""

    lease: timedelta
    poll_seconds: float
    retry_base: timedelta
    retry_cap: timedelta
    max_attempts: int


class OutboxDispatcher:
    """Delivers one channel of the outbox. Subclasses implement `attempt` (raise
    DeliveryFailed, or any exception, to fail) and may hook the outcomes."""

    channel: str
    log: logging.Logger

    def __init__(self, *, database: Database, clock: Clock, pacing: Pacing) -> None:
        self.database = database
        self._clock = clock
        self._pacing = pacing
        self._lease = pacing.lease
        self._wake = asyncio.Event()
        self._traffic: Traffic | None = None
        self._give_way_seconds = 0.0

    # --- what a channel provides ----------------------------------------------------------

    async def attempt(self, claimed: ClaimedMessage) -> None:
        """Deliver one message; return only once the receiver accepted it."""
        raise NotImplementedError

    async def release(self) -> None:
        """Close what a batch kept open (an SMTP connection)."""

    def is_permanent(self, error: BaseException) -> bool:
        return isinstance(error, DeliveryFailed) and error.permanent

    async def after_sent(self, claimed: ClaimedMessage) -> None:
        """The message was delivered and marked so."""

    def delivered_as(self) -> str:
        """How the log names a delivery (a channel that only logs says it did not send)."""
        return "delivered"

    async def after_failed(self, claimed: ClaimedMessage, given_up: bool) -> None:
        """The attempt failed and was recorded."""

    # --- the loop -------------------------------------------------------------------------

    def give_way_to(self, traffic: Traffic, seconds: float) -> None:
        """In the server's own process: before each message, wait (up to `seconds`) until no
        request is in flight, so deliveries do not lengthen requests (services/traffic.py)."""
        self._traffic = traffic
        self._give_way_seconds = seconds

    def wake(self) -> None:
        """New messages were committed: deliver now rather than at the next poll."""
        self._wake.set()

    def now(self) -> datetime:
        return self._clock.now()

    async def deliver_due(self, stop: asyncio.Event | None = None) -> Delivery:
        """Deliver every message due now, one at a time, then release the transport."""
        delivery = Delivery()
        try:
            while stop is None or not stop.is_set():
                if self._traffic is not None:
                    await self._traffic.quiet(self._give_way_seconds)
                claimed = await self._claim()
                if claimed is None:
                    break
                if await self._deliver(claimed):
                    delivery.sent += 1
                else:
                    delivery.failed += 1
        finally:
            await self.release()
        return delivery

    async def _claim(self) -> ClaimedMessage | None:
        now = self._clock.now()
        async with self.database.one_statement() as session:
            claimed = await OutboxRepository(session).claim(now, now + self._lease, self.channel)
            await session.commit()
        return claimed

    async def _deliver(self, claimed: ClaimedMessage) -> bool:
        try:
            await self.attempt(claimed)
        except Exception as error:  # any failure of the attempt is recorded and retried
            await self._failed(claimed, error, permanent=self.is_permanent(error))
            return False
        await self._sent(claimed)
        return True

    async def _sent(self, claimed: ClaimedMessage) -> None:
        """Record the delivery at once. The database may hiccup exactly now: a few quick
        retries, within the lease, keep the message from being delivered a second time."""
        for attempt in range(1, _MARK_RETRIES + 1):
            try:
                async with self.database.one_statement() as session:
                    await OutboxRepository(session).mark_sent(claimed.id, self._clock.now())
                    await session.commit()
            except Exception:
                if attempt == _MARK_RETRIES:
                    raise
                await asyncio.sleep(min(0.2 * 2**attempt, self._lease.total_seconds() / 10))
            else:
                self.log.info(
                    "%s %s %s to %s",
                    self.channel,
                    claimed.message_id,
                    self.delivered_as(),
                    claimed.recipient,
                )
                await self.after_sent(claimed)
                return

    async def _failed(
        self, claimed: ClaimedMessage, error: BaseException, *, permanent: bool
    ) -> None:
        now = self._clock.now()
        pacing = self._pacing
        give_up = permanent or claimed.attempts >= pacing.max_attempts
        retry_at = (
            None
            if give_up
            else now + retry_delay(claimed.attempts, pacing.retry_base, pacing.retry_cap)
        )
        reason = (
            error.reason
            if isinstance(error, DeliveryFailed)
            else f"{type(error).__name__}: {error}"
        ).strip()
        async with self.database.session() as session:
            await OutboxRepository(session).mark_failed(claimed.id, reason, retry_at, now)
            await session.commit()
        if retry_at is None:
            self.log.error(
                "%s %s given up after %d attempt(s): %s",
                self.channel,
                claimed.message_id,
                claimed.attempts,
                reason,
            )
        else:
            self.log.warning(
                "%s %s failed (attempt %d), retry at %s: %s",
                self.channel,
                claimed.message_id,
                claimed.attempts,
                retry_at.isoformat(),
                reason,
            )
        await self.after_failed(claimed, retry_at is None)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until stopped: at once when woken, otherwise every poll interval (another
        process's messages, retries that came due). A failing database slows it down, never
        ends it."""
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.deliver_due(stop)
                failures = 0
            except Exception:
                failures += 1
                self.log.warning("%s dispatch interrupted; retrying", self.channel, exc_info=True)
            delay = self._pacing.poll_seconds if not failures else min(2.0**failures, 60.0)
            await self._idle(stop, delay)

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        if stop.is_set() or self._wake.is_set():
            return
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def close(self) -> None:
        await self.release()


async def stop_in_time(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Let a dispatcher finish the message in hand (so it is marked sent), then end it."""
    stop.set()
    try:
        await asyncio.wait_for(task, timeout=STOP_GRACE_SECONDS)
    except TimeoutError:
        logging.getLogger("access_api.outbox").warning(
            "dispatcher did not stop within %ss; cancelled", STOP_GRACE_SECONDS
        )
