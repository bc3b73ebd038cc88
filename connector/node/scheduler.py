"""The node's one scheduler: every periodic job is a job of one APScheduler AsyncIOScheduler."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import iscoroutinefunction_partial

Job = Callable[[], Awaitable[object]]

# APScheduler's default: a run that cannot start within a second of its time is skipped.
SKIP_AFTER_S = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheduled:
    """A job as the scheduler holds it."""

    id: str
    trigger: str
    next_run_at: datetime | None


class Scheduler:
    """Jobs are coroutines, so each runs on the event loop, never in a worker thread beside
    the loop's own use of a database connection. No job runs twice at once, and the runs a
    busy loop missed are made up by one."""

    def __init__(self, *, now: Callable[[], datetime] | None = None) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._now = now or (lambda: datetime.now(UTC))
        self._running: set[asyncio.Task[Any]] = set()

    def every(
        self,
        job_id: str,
        seconds: float,
        job: Job,
        *,
        at_once: bool,
        skip_after: int | None = SKIP_AFTER_S,
    ) -> None:
        """`job` every `seconds`, the first run at once or after one interval. `skip_after`:
        how late a run may start and still run (None: however late)."""
        self.add(
            job_id,
            IntervalTrigger(seconds=seconds, timezone=UTC),
            job,
            at_once=at_once,
            skip_after=skip_after,
        )

    def add(
        self,
        job_id: str,
        trigger: Any,
        job: Job,
        *,
        at_once: bool = False,
        skip_after: int | None = SKIP_AFTER_S,
    ) -> None:
        """`job` when an APScheduler `trigger` fires (a digest's cron, say)."""
        if not iscoroutinefunction_partial(job):
            # APScheduler would run it in a thread pool.
            raise TypeError(f"job {job_id}: a coroutine function, so it runs on the event loop")
        kwargs: dict[str, Any] = {"next_run_time": self._now()} if at_once else {}

        @functools.wraps(job)
        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job()
            finally:
                self._running.discard(task)

        self._scheduler.add_job(
            run,
            trigger,
            id=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=skip_after,
            **kwargs,
        )

    def reschedule(self, job_id: str, seconds: float) -> None:
        """A job's interval changed by a reload; its next run is one new interval away."""
        self._scheduler.reschedule_job(
            job_id, trigger=IntervalTrigger(seconds=seconds, timezone=UTC)
        )

    def remove(self, job_id: str) -> None:
        """A job no longer wanted; a run in progress finishes."""
        self._scheduler.remove_job(job_id)

    def jobs(self) -> list[Scheduled]:
        return [
            Scheduled(id=j.id, trigger=str(j.trigger), next_run_at=_next_run(j))
            for j in self._scheduler.get_jobs()
        ]

    def start(self) -> None:
        self._scheduler.start()

    async def shutdown(self) -> None:
        """Stop; runs in progress are cancelled and have ended when this returns, so what
        they use may close next."""
        if not self._scheduler.running:
            return
        self._scheduler.shutdown(wait=False)
        # APScheduler stops on the loop's next turn, cancelling the runs it has not started.
        await asyncio.sleep(0)
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _next_run(job: Any) -> datetime | None:
    # A job added before the scheduler started has no next run time yet.
    next_run: datetime | None = getattr(job, "next_run_time", None)
    return next_run


SCHEDULER = web.AppKey("scheduler", Scheduler)
