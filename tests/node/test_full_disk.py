"""A full disk under the enquiry log: 503 and why, nothing answered unlogged, and recovery."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs
from support.processes import fr_query, post_query

from connector.demo import DemoNode, network
from connector.protocol import sign_query

DISK_MB = 8


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB, mounted for the test alone (root only)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        raise AssertionError(f"mount failed: {mounted.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Write until the disk is full; the file that filled it."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as f:
        for _ in range(DISK_MB * 16 + 16):  # bounded: more chunks than the disk holds
            try:
                f.write(chunk)
                f.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        else:
            raise AssertionError("the disk never filled")
    return filler


async def _ask(fr: DemoNode, de: DemoNode, number: str) -> tuple[int, dict[str, object]]:
    token = sign_query(fr_query(number), fr.node.signer)
    status, body = await asyncio.to_thread(post_query, de.service.peer_port, token)
    return status, (json.loads(body) if status != 200 else {})


async def _wait_ready(de: DemoNode, timeout: float = 10) -> None:
    checks = de.node.live.checks
    assert checks is not None
    async with asyncio.timeout(timeout):
        while checks.problems:  # noqa: ASYNC110 - the readiness job runs every 0.2 s
            await asyncio.sleep(0.05)


async def test_a_full_disk_refuses_with_503_and_recovers(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:

        def configure(node_id: str, directory: Path) -> None:
            if node_id != "DE":
                return
            path = directory / "connector.yaml"
            config = yaml.safe_load(path.read_text())
            config["databases"]["enquiries"] = f"sqlite:///{disk}/enquiries.db"
            config["readiness"] = {"min_free_mb": 1, "interval_s": 0.2}
            path.write_text(yaml.safe_dump(config))

        async with network(tmp_path / "nodes", ["FR", "DE"], configure) as net:
            fr, de = net["FR"], net["DE"]
            log = de.service.enquiry_log
            answered = 0
            for i in range(3):
                status, _ = await _ask(fr, de, f"A{i:07d}")
                assert status == 200
                answered += 1
            rows_before = log.head()[0]

            filler = fill(disk)
            with capture_logs() as logs:
                refused = [await _ask(fr, de, f"B{i:07d}") for i in range(5)]
            for status, problem in refused:
                assert status == 503, problem
                assert problem["code"] == "enquiry_log", problem
            # Not one answer left without its row: the log did not move.
            assert log.head()[0] == rows_before
            failures = [e for e in logs if e["event"] == "enquiry_log_commit_failed"]
            assert failures, [e["event"] for e in logs]
            assert all(e["log_level"] == "error" for e in failures)
            assert "full" in str(failures[0]["error"]).lower(), failures[0]
            # /readyz says so too, within one readiness interval.
            checks = de.node.live.checks
            assert checks is not None
            async with asyncio.timeout(10):
                while {"disk", "enquiry_log"} - checks.problems.keys():  # noqa: ASYNC110 - a job
                    await asyncio.sleep(0.05)
            assert f"free under {disk}" in checks.problems["disk"]
            # The log itself was tried with a write, not only the space measured.
            assert checks.problems["enquiry_log"].startswith("the enquiry log accepts no write")
            assert "SQLITE_FULL" in checks.problems["enquiry_log"]

            filler.unlink()
            await _wait_ready(de)
            for i in range(3):
                status, _ = await _ask(fr, de, f"C{i:07d}")
                assert status == 200
                answered += 1
            assert log.head()[0] == rows_before + 3
            report = log.verify()
            assert report.ok, report
            assert report.rows == answered
