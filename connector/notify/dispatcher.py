"""Delivering the outbox: each due notice to its channel, retried with backoff, or dead."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from connector.notify.channels import Channel, DeliveryError
from connector.notify.outbox import Outbox, OutboxRow

log = structlog.get_logger(__name__)

MARK_DELAY_S = 0.05
LEASE_S = 300.0  # longer than any channel's timeout; a crash frees leased notices after it


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    initial_s: float = 5.0
    max_s: float = 900.0
    max_age_s: float = 72 * 3600.0

    def next_attempt(
        self, *, attempts: int, created_at: float, now: float, rng: random.Random
    ) -> float | None:
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
    """Delivers due notices, up to `per_channel` at once on each channel, so a slow receiver
    holds up only its own channel. Passes run as an APScheduler job, on each commit that adds
    notices, and whenever a delivery frees a slot."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        senders: Mapping[str, Channel],
        retry: RetryPolicy,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        per_channel: int = 64,
    ) -> None:
        self.outbox = outbox
        self.senders = senders
        self.retry = retry
        self.clock = clock
        self.rng = rng or random.Random()
        self.per_channel = per_channel
        self._busy: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[object]] = set()
        self._wake_scheduled = False
        self._wake_all = False
        self._wake_channels: set[str] = set()
        self._closed = False
        # Delivered marks wait a moment to share one commit; losing them to a crash means a
        # notice sent twice with its idempotency key, never a notice lost.
        self._marks: list[tuple[str, float, int]] = []
        self._marks_flush: asyncio.TimerHandle | None = None

    def wake(self, channel: str | None = None, *, delay: float = 0.0) -> None:
        """Run a pass soon (for one channel, or all); wakes before it starts merge."""
        if self._closed:
            return
        if channel is None:
            self._wake_all = True
        else:
            self._wake_channels.add(channel)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_later(delay, self._start_pass)

    def _start_pass(self) -> None:
        self._wake_scheduled = False
        channels = None if self._wake_all else sorted(self._wake_channels)
        self._wake_all, self._wake_channels = False, set()
        self._spawn(self.run_once(channels))

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_once(self, channels: Sequence[str] | None = None) -> RunReport:
        """Take what each channel (all, or these) has room for, deliver it, and report the
        outcomes. Each take is an indexed query for one channel; notices for channels no
        longer configured are looked for only on full passes."""
        if self._closed:
            return RunReport(delivered=0, failed=0, dead=0)
        now = self.clock()
        started = []
        for channel in self.senders if channels is None else channels:
            room = self.per_channel - self._busy[channel]
            if room <= 0:
                continue
            for row in self.outbox.take(channel, now=now, limit=room, lease_until=now + LEASE_S):
                self._busy[channel] += 1
                started.append(self._deliver(row))
        if channels is None:
            for row in self.outbox.due_elsewhere(list(self.senders), now=now):
                self._busy[row.notice.channel] += 1
                started.append(self._deliver(row))
        outcomes = await asyncio.gather(*started)
        return RunReport(
            delivered=outcomes.count("delivered"),
            failed=outcomes.count("failed"),
            dead=outcomes.count("dead"),
        )

    async def close(self) -> None:
        """Stop delivering: deliveries in flight are cancelled and stay pending, to be sent
        again after their lease (the receiver may see one twice, with the same key)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._flush_marks()

    def _flush_marks(self) -> None:
        if self._marks_flush is not None:
            self._marks_flush.cancel()
            self._marks_flush = None
        marks, self._marks = self._marks, []
        self.outbox.delivered_many(marks)

    async def _deliver(self, row: OutboxRow) -> str:
        notice = row.notice
        attempts = row.attempts + 1
        sender = self.senders.get(notice.channel)
        try:
            if sender is None:
                # Kept until it is too old: the admin may put the channel back.
                raise DeliveryError(f"no channel named {notice.channel!r} in connector.yaml")
            await sender.send(notice)
        except DeliveryError as exc:
            return self._failed(row, attempts, str(exc), exc.retryable)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sender bug must not stop the other notices
            log.exception("notification_sender_failed", channel=notice.channel, notice=notice.id)
            return self._failed(row, attempts, f"{type(exc).__name__}: {exc}", True)
        finally:
            self._busy[notice.channel] -= 1
            # A slot is free: take this channel's next notice, together with the slots that
            # free up in the next few milliseconds (one query and commit for all of them).
            self.wake(notice.channel, delay=MARK_DELAY_S)
        now = self.clock()
        self._marks.append((notice.id, now, attempts))
        if self._marks_flush is None:
            self._marks_flush = asyncio.get_running_loop().call_later(
                MARK_DELAY_S, self._flush_marks
            )
        log.info(
            "notification_delivered",
            channel=notice.channel,
            notice=notice.id,
            enquiry=notice.enquiry,
            attempts=attempts,
            after_s=round(now - notice.created_at, 3),
        )
        return "delivered"

    def _failed(self, row: OutboxRow, attempts: int, error: str, retryable: bool) -> str:
        now = self.clock()
        retry_at = (
            self.retry.next_attempt(
                attempts=attempts, created_at=row.notice.created_at, now=now, rng=self.rng
            )
            if retryable
            else None
        )
        self.outbox.failed(
            row.notice.id, now=now, attempts=attempts, error=error, retry_at=retry_at
        )
        if retry_at is None:
            log.error(
                "notification_dead",
                channel=row.notice.channel,
                notice=row.notice.id,
                enquiry=row.notice.enquiry,
                attempts=attempts,
                error=error,
            )
            return "dead"
        log.warning(
            "notification_failed",
            channel=row.notice.channel,
            notice=row.notice.id,
            attempts=attempts,
            error=error,
            retry_in_s=round(retry_at - now, 1),
        )
        return "failed"
