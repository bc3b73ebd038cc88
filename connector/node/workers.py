"""Worker processes serving the peer API beside the main one: started, watched, restarted,
reloaded and drained by the main process; and a worker's own entry point."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict

from connector.errors import ConfigError
from connector.logs import configure_logging
from connector.node.worker_metrics import report
from connector.settings.config import Settings, load_settings

log = structlog.get_logger(__name__)

# A worker says this line on its stdout once its listener is open.
READY = b"ready\n"
# How long a worker may take to open its databases and listener.
START_TIMEOUT_S = 60.0
# A worker that exits is started again after this, doubled while it keeps failing.
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
# systemd signals every process of the unit at once, in no set order: a worker that stopped in
# order waits this long for the main process's own SIGTERM before it counts as gone.
STOPPED_GRACE_S = 5.0
# systemd's variables are the main process's: only it speaks to systemd (NotifyAccess=main).
_SYSTEMD_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Brief(BaseModel):
    """What the main process tells a worker on its stdin, one JSON line: the settings the
    node started with (so a worker started later serves the same ports and databases
    whatever connector.yaml says now), those in force after reloads, and where to reread
    connector.yaml on SIGHUP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    peer_port: int
    config: Path | None
    started: Settings
    in_force: Settings


class Workers:
    """The worker processes of a node whose `workers:` is above 1: the main process serves
    the peer API too and is worker 0; these are 1 … count-1. Each is started with a `Brief`,
    is ready when it says so, is started again when it exits while the node runs (its
    absence reported by `missing`, which /readyz shows), gets SIGHUP when the node reloads,
    and SIGTERM when it stops. A worker whose main process dies sees its stdin close and
    stops too."""

    def __init__(
        self,
        *,
        count: int,
        brief: Callable[[int], Brief],
        on_change: Callable[[str | None], None],
        argv: tuple[str, ...] = (sys.executable, "-m", "connector.node.workers"),
    ) -> None:
        self.count = count
        self._brief = brief
        self._on_change = on_change  # told what is missing (None: every worker runs)
        self._argv = argv
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._down: set[int] = set()
        # The main process's questions for the workers' figures (on their stdin), answered on
        # their stdout as "<question> <length>\n" and that many bytes.
        self._asked = 0
        self._answers: dict[tuple[int, int], asyncio.Future[bytes]] = {}

    @property
    def pids(self) -> dict[int, int]:
        """Each running worker's process id, by index."""
        return {i: p.pid for i, p in self._procs.items() if p.returncode is None}

    async def start(self) -> None:
        """Every worker started and ready; ConfigError (the worker's own words in the
        journal before it) if one is not."""
        started = await asyncio.gather(
            *(self._spawn(i) for i in range(1, self.count)), return_exceptions=True
        )
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:
            await self.stop(5.0)
            raise failed[0]
        for i in range(1, self.count):
            self._watch(i)

    async def _spawn(self, index: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_ONLY}
        proc = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        self._procs[index] = proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(self._brief(index).model_dump_json().encode() + b"\n")
        await proc.stdin.drain()
        try:
            said = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            said = b""
        if said != READY:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
            raise ConfigError(
                f"worker {index} of the peer API did not start (exit code {code}); "
                "its reason is in the journal just before this"
            )
        log.info("worker_started", worker=index, pid=proc.pid)
        reader = asyncio.get_running_loop().create_task(self._read_answers(index, proc))
        self._watchers.add(reader)
        reader.add_done_callback(self._watchers.discard)

    async def _read_answers(self, index: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        with contextlib.suppress(ValueError, asyncio.IncompleteReadError):
            while head := await proc.stdout.readline():
                asked, size = (int(n) for n in head.split())
                body = await proc.stdout.readexactly(size)
                answer = self._answers.pop((index, asked), None)
                if answer is not None and not answer.done():
                    answer.set_result(body)

    async def ask(self, timeout: float) -> Mapping[int, bytes]:
        """Each running worker's figures (`worker_metrics.report`), by index; a worker that
        does not answer within `timeout` is left out."""
        self._asked += 1
        asked = self._asked
        loop = asyncio.get_running_loop()
        waiting: dict[int, asyncio.Future[bytes]] = {}
        for index, proc in self._procs.items():
            stdin = proc.stdin
            if index in self._down or proc.returncode is not None or stdin is None:
                continue  # gone, or restarting: it counts with what it last reported
            if stdin.is_closing():
                continue
            waiting[index] = self._answers[(index, asked)] = loop.create_future()
            stdin.write(b"metrics %d\n" % asked)
        if not waiting:
            return {}
        try:
            await asyncio.wait(waiting.values(), timeout=timeout)
        finally:
            for index in waiting:
                self._answers.pop((index, asked), None)
        return {i: f.result() for i, f in waiting.items() if f.done() and not f.cancelled()}

    def _watch(self, index: int) -> None:
        task = asyncio.get_running_loop().create_task(self._keep(index))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _keep(self, index: int) -> None:
        """Wait for the worker to exit; while the node runs, start it again."""
        delay = RESTART_FIRST_S
        while True:
            code = await self._procs[index].wait()
            if self._stopping:
                return
            if code == 0:
                await asyncio.sleep(STOPPED_GRACE_S)
                if self._stopping:
                    return
            self._down.add(index)
            self._said()
            wait = 0.0 if code == 0 else delay  # a stopped worker has waited already
            log.error("worker_exited", worker=index, code=code, restart_in=wait)
            await asyncio.sleep(wait)
            if self._stopping:
                return
            try:
                await self._spawn(index)
            except (ConfigError, OSError) as exc:
                log.error("worker_restart_failed", worker=index, error=str(exc))
                delay = min(delay * 2, RESTART_MAX_S)
                continue
            delay = RESTART_FIRST_S
            self._down.discard(index)
            self._said()

    def _said(self) -> None:
        if self._down:
            down = ", ".join(str(i) for i in sorted(self._down))
            self._on_change(
                f"worker(s) {down} of {self.count} not running: restarting; "
                "the other processes answer meanwhile"
            )
        else:
            self._on_change(None)

    def stopping(self) -> None:
        """The node is stopping: a worker that exits from now on is not started again."""
        self._stopping = True

    def reload(self) -> None:
        """SIGHUP to every running worker: each rereads what the main process does."""
        self._signal(signal.SIGHUP)

    async def stop(self, timeout: float) -> bool:
        """SIGTERM to every worker, each draining its requests in flight; SIGKILL to any
        still running after `timeout`. Whether all stopped by themselves."""
        self.stopping()
        self._signal(signal.SIGTERM)
        for proc in self._procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
        waits = [p.wait() for p in self._procs.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
            clean = True
        except TimeoutError:
            clean = False
            for index, proc in self._procs.items():
                if proc.returncode is None:
                    log.error("worker_killed", worker=index, pid=proc.pid, after_s=timeout)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in self._procs.values()))
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        log.info(
            "workers_stopped",
            workers=len(self._procs),
            codes={str(i): p.returncode for i, p in sorted(self._procs.items())},
        )
        return clean

    def _signal(self, sig: signal.Signals) -> None:
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)


# --- the worker's side ------------------------------------------------------------------------


class _Orphaned(asyncio.Protocol):
    """The worker's stdin: closed when the main process is gone, however it died; meanwhile
    each line on it is a question from the main process, given to `asked`."""

    def __init__(self, gone: asyncio.Event, asked: Callable[[bytes], None] | None = None) -> None:
        self._gone = gone
        self._asked = asked
        self._pending = b""

    def data_received(self, data: bytes) -> None:
        *lines, self._pending = (self._pending + data).split(b"\n")
        if self._asked is not None:
            for line in lines:
                self._asked(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone.set()


async def serve_worker(brief: Brief) -> None:
    """Serve the peer API as worker `brief.index` until SIGTERM, SIGINT or the main process
    is gone; SIGHUP reloads as the main process does."""
    from connector.node.node import Node
    from connector.node.service import Service, settle_heap

    node = Node.from_settings(brief.started)
    node.load_live()
    config = brief.config
    service = Service(
        node,
        reread=None if config is None else functools.partial(load_settings, config),
        worker=brief.index,
        peer_port=brief.peer_port,
    )
    await service.start()
    settle_heap()
    if brief.in_force != brief.started:
        service.take_settings(brief.in_force)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    try:
        sys.stdout.buffer.write(READY)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        stop.set()  # the main process is gone before this one was ready
    # From here on stdout carries only answers, written without blocking the loop.
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)

    def answer(line: bytes) -> None:
        what, _, asked = line.partition(b" ")
        if what == b"metrics" and asked.isdigit() and not out.is_closing():
            body = report(node.metrics)
            out.write(b"%d %d\n" % (int(asked), len(body)) + body)

    await loop.connect_read_pipe(lambda: _Orphaned(stop, answer), sys.stdin)
    try:
        await stop.wait()
    finally:
        await service.stop()


def main() -> None:
    brief = Brief.model_validate_json(sys.stdin.buffer.readline())
    s = brief.in_force
    configure_logging(fmt=s.logging.format, level=s.logging.level)
    structlog.contextvars.bind_contextvars(worker=brief.index)
    try:
        asyncio.run(serve_worker(brief))
    except ConfigError as exc:
        log.error("worker_failed", error=exc.detail)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
