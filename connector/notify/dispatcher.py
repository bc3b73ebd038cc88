"""Delivering the outbox: each due notice to its channel, retried with backoff, or dead."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from connector.notify.channels import Channel, DeliveryError
from connector.notify.outbox import Outbox, OutboxRow

log = structlog.get_logger("connector.notify")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    initial_s: float = 5.0
    max_s: float = 900.0
    max_age_s: float = 72 * 3600.0

    def next_attempt(self, *, attempts: int, created_at: float, now: float,
                     rng: random.Random) -> float | None:
        """When to try again after `attempts` failures, or None once the notice is too old.
        Exponential, capped, with full jitter in the upper half so receivers that come back
        are not hit by every node at the same instant."""
        delay = min(self.max_s, self.initial_s * 2 ** max(0, attempts - 1))
        at = now + delay * rng.uniform(0.5, 1.0)
        return None if at - created_at > self.max_age_s else at


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReport:
    delivered: int
    failed: int
    dead: int


class Dispatcher:
    """One pass delivers every due notice, several channels at once. The connector runs it
    as an APScheduler job, and wakes it when a commit adds notices."""

    def __init__(self, *, outbox: Outbox, senders: Mapping[str, Channel], retry: RetryPolicy,
                 clock: Callable[[], float], rng: random.Random | None = None,
                 concurrency: int = 16) -> None:
        self.outbox = outbox
        self.senders = senders
        self.retry = retry
        self.clock = clock
        self.rng = rng or random.Random()
        self._limit = asyncio.Semaphore(concurrency)
        self._running = False
        self._again = False
        self._tasks: set[asyncio.Task[RunReport]] = set()

    def wake(self) -> None:
        """New notices were committed: deliver now rather than at the next scheduled pass."""
        if self._running:
            self._again = True
            return
        task = asyncio.get_running_loop().create_task(self.run_once())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> bool:
        return self._running

    async def run_once(self) -> RunReport:
        if self._running:
            return RunReport(delivered=0, failed=0, dead=0)
        self._running = True
        try:
            outcomes: list[str] = []
            while True:
                self._again = False
                due = self.outbox.due(self.clock())
                if due:
                    outcomes += await asyncio.gather(*(self._deliver(row) for row in due))
                if len(due) < 100 and not self._again:
                    break
            return RunReport(delivered=outcomes.count("delivered"),
                             failed=outcomes.count("failed"), dead=outcomes.count("dead"))
        finally:
            self._running = False

    async def _deliver(self, row: OutboxRow) -> str:
        notice = row.notice
        attempts = row.attempts + 1
        sender = self.senders.get(notice.channel)
        async with self._limit:
            try:
                if sender is None:
                    raise DeliveryError(f"no channel named {notice.channel!r} in "
                                        "connector.yaml", retryable=False)
                await sender.send(notice)
            except DeliveryError as exc:
                return self._failed(row, attempts, str(exc), exc.retryable)
            except Exception as exc:  # a sender bug must not stop the other notices
                log.exception("notification_sender_failed", channel=notice.channel,
                              notice=notice.id)
                return self._failed(row, attempts, f"{type(exc).__name__}: {exc}", True)
        now = self.clock()
        self.outbox.delivered(notice.id, now=now, attempts=attempts)
        log.info("notification_delivered", channel=notice.channel, notice=notice.id,
                 enquiry=notice.enquiry, attempts=attempts,
                 after_s=round(now - notice.created_at, 3))
        return "delivered"

    def _failed(self, row: OutboxRow, attempts: int, error: str, retryable: bool) -> str:
        now = self.clock()
        retry_at = (self.retry.next_attempt(attempts=attempts, created_at=row.notice.created_at,
                                            now=now, rng=self.rng) if retryable else None)
        self.outbox.failed(row.notice.id, now=now, attempts=attempts, error=error,
                           retry_at=retry_at)
        if retry_at is None:
            log.error("notification_dead", channel=row.notice.channel, notice=row.notice.id,
                      enquiry=row.notice.enquiry, attempts=attempts, error=error)
            return "dead"
        log.warning("notification_failed", channel=row.notice.channel, notice=row.notice.id,
                    attempts=attempts, error=error, retry_in_s=round(retry_at - now, 1))
        return "failed"
