"""The service: one record store and enquiry log for both apps, one scheduler for every job."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connector.demo import network
from connector.node.local_app import HEALTH
from connector.node.node import ENQUIRY_LOG, RECORDS
from connector.node.peer_app import DISPATCHER
from connector.node.scheduler import SCHEDULER, Scheduler
from connector.server.local_checks import LOCAL_CHECKS
from connector.trail.entry import TRAIL_FILE, Action, Actor
from connector.trail.file import record

SOURCE = """\
sources:
  - name: dokumente
    url: sqlite:///{path}
    category: travel_documents
    table: gestohlene_dokumente
    key: dok_id
    columns:
      number: dok_nummer
    constants:
      country: DE
      status: stolen
    every: 1h
"""


def _configure(node_id: str, directory: Path) -> None:
    config = directory / "connector.yaml"
    config.write_text(
        config.read_text()
        + "notifications:\n  channels:\n    duty:\n      type: log\n      digest: hourly\n"
    )
    (directory / "sources.yaml").write_text(SOURCE.format(path=directory / "national.db"))


async def test_both_apps_share_the_services_databases_and_scheduler(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"], _configure) as net:
        service = net["FR"].service
        for app in (service.peer_app, service.local_app):
            assert app[RECORDS] is service.records
            assert app[ENQUIRY_LOG] is service.enquiry_log
            assert app[SCHEDULER] is service.scheduler
        assert service.local_app[LOCAL_CHECKS].store is service.records
        assert service.enquiry_log.on_committed == service.peer_app[DISPATCHER].wake
        s = net["FR"].node.settings
        now = datetime.now(UTC)
        jobs = {j.id: j for j in service.scheduler.jobs()}
        assert set(jobs) == {
            "checkpoint",
            "log-watch",
            "policy-watch",
            "outbox",
            "digest:duty",
            "source:dokumente",
            "peer-health",
            "witness",
            "readiness",
            "keyring",
            "admin-audit-watch",
            "approvals",
            "releases",
        }
        assert jobs["checkpoint"].trigger == "interval[0:01:00]"
        assert jobs["witness"].trigger == "interval[0:01:00]"
        assert jobs["approvals"].trigger == "interval[0:00:10]"
        assert jobs["releases"].trigger == "interval[0:00:15]"
        assert jobs["readiness"].trigger == "interval[0:00:10]"
        assert jobs["log-watch"].trigger == "interval[0:00:02]"
        assert jobs["admin-audit-watch"].trigger == "interval[0:00:05]"
        assert jobs["policy-watch"].trigger == f"interval[0:00:0{s.policy_reload_interval:g}]"
        assert jobs["peer-health"].trigger.startswith("interval[")
        assert jobs["digest:duty"].trigger.startswith("cron[")
        # The policy watch waits one interval; the rest ran at once and wait for their next.
        watch = jobs["policy-watch"].next_run_at
        assert watch is not None
        assert watch - now <= timedelta(seconds=s.policy_reload_interval)
        for job_id in ("checkpoint", "source:dokumente", "witness"):
            next_run = jobs[job_id].next_run_at
            assert next_run is not None
            assert next_run - now > timedelta(seconds=30)
        # The first health check ran at start (when FR trusted nobody yet).
        health_file = s.state_path(s.federation.health_file)
        for _ in range(50):
            if health_file.exists():
                break
            await asyncio.sleep(0.1)
        assert health_file.exists()
        assert service.local_app[HEALTH].last == {}


async def test_a_job_is_a_coroutine_and_stops_with_the_scheduler() -> None:
    scheduler = Scheduler()
    with pytest.raises(TypeError, match="coroutine function"):
        scheduler.every("sync", 1, lambda: None, at_once=True)  # type: ignore[arg-type,return-value]
    started = asyncio.Event()
    ended: list[str] = []

    async def long_job() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            ended.append("cancelled")

    later = asyncio.Event()

    async def later_job() -> None:
        later.set()

    scheduler.every("long", 3600, long_job, at_once=True, skip_after=None)
    scheduler.every("later", 3600, later_job, at_once=False)
    scheduler.start()
    await asyncio.wait_for(started.wait(), 5)
    assert not later.is_set()  # its first run is an interval away
    await scheduler.shutdown()
    assert ended == ["cancelled"]  # ended before shutdown returned
    await scheduler.shutdown()  # twice is harmless


def _two_entries(node_id: str, directory: Path) -> None:
    admin = Actor(kind="os", name="alice")
    for target in ("DE", "IT"):
        record(
            directory / TRAIL_FILE,
            actor=admin,
            action=Action.PEER_ADDED,
            target=target,
            details={},
            now=1.0,
        )


async def test_a_trail_cut_under_a_running_node_is_a_warning(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR"], _two_entries) as net:
        path = net["FR"].node.settings.state_path(TRAIL_FILE)
        assert path.parent == tmp_path / "FR"  # where _two_entries wrote
        # The node looked before it served, and saw entry 2 as its head.
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(lines[0])  # the newest entry cut off
        with capture_logs() as logs:
            for _ in range(100):  # the next look comes within one interval (5 s)
                if any(e["event"] == "admin_audit_broken" for e in logs):
                    break
                await asyncio.sleep(0.1)
        (warning,) = [e for e in logs if e["event"] == "admin_audit_broken"]
        assert (warning["finding"], warning["seq"]) == ("cut", 2)
        assert "ends at seq 1" in warning["problem"]
