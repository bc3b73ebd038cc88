"""What makes a node unready beyond its policy: a full disk, an enquiry log that accepts no
write, a record store that does not answer."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import structlog

from connector.enquiries.log import error_kind

log = structlog.get_logger(__name__)

MIB = 1024 * 1024


def space_problems(free: dict[Path, int], *, floor_mb: int) -> dict[str, str]:
    """Each directory with less than `floor_mb` MiB free, in words."""
    low = [(d, n) for d, n in sorted(free.items()) if n < floor_mb * MIB]
    if not low:
        return {}
    said = "; ".join(f"{n // MIB} MiB free under {d}" for d, n in low)
    return {"disk": f"{said}, below the floor of {floor_mb} MiB (readiness.min_free_mb)"}


class ReadinessChecks:
    """Runs on the node's scheduler and keeps the last findings, which /readyz reports
    without waiting on a disk or a database itself."""

    def __init__(
        self,
        *,
        directories: Iterable[Path],
        floor_mb: int,
        ping_records: Callable[[], Awaitable[None]],
        timeout: float,
        probe_log: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.directories = tuple(dict.fromkeys(directories))
        self.floor_mb = floor_mb
        self.ping_records = ping_records
        self.probe_log = probe_log
        self.timeout = timeout
        self.problems: dict[str, str] = {}

    async def run(self) -> None:
        found: dict[str, str] = {}
        free: dict[Path, int] = {}
        for d in self.directories:
            try:
                free[d] = shutil.disk_usage(d).free
            except OSError as exc:
                found["disk"] = f"cannot see the free space under {d}: {exc.strerror or exc}"
        found |= space_problems(free, floor_mb=self.floor_mb)
        if self.probe_log is not None:
            try:
                await asyncio.wait_for(self.probe_log(), self.timeout)
            except TimeoutError:
                found["enquiry_log"] = (
                    f"the enquiry log did not take a write within {self.timeout:g} s"
                )
            except Exception as exc:  # its kind and code: a driver's message may quote rows
                found["enquiry_log"] = f"the enquiry log accepts no write: {error_kind(exc)}"
        try:
            await asyncio.wait_for(self.ping_records(), self.timeout)
        except TimeoutError:
            found["records"] = f"the record store did not answer within {self.timeout:g} s"
        except Exception as exc:  # any driver's failure: said in words, never a traceback
            found["records"] = f"the record store fails: {type(exc).__name__}"
        for what in found.keys() - self.problems.keys():
            log.error("node_unready", check=what, reason=found[what])
        for what in self.problems.keys() - found.keys():
            log.info("node_ready_again", check=what)
        self.problems = found
