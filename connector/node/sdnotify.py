"""The sd_notify(3) protocol over an AF_UNIX datagram socket, without libsystemd."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger(__name__)

#: Longest `sun_path` Linux accepts (108 bytes including the terminating NUL for paths).
_SUN_PATH_MAX = 108


def clock_monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd expects in MONOTONIC_USEC=."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class SystemdNotifier:
    """Tells the service manager about start-up, reloads, shutdown and liveness.

    Built with :meth:`from_env`. When ``NOTIFY_SOCKET`` is unset (not started by systemd,
    or started with a ``Type=`` that does not listen) every method is a no-op that returns
    ``False``. A message that cannot be sent is logged as ``sd_notify_failed`` and never
    raises: a daemon must not die because its supervisor went away.
    """

    def __init__(
        self,
        address: str | None,
        *,
        monotonic_usec: Callable[[], int] = clock_monotonic_usec,
        watchdog_usec: int | None = None,
        timeout: float = 1.0,
    ) -> None:
        self._address: bytes | None = None
        self._display = address
        self._monotonic_usec = monotonic_usec
        self._timeout = timeout
        #: The watchdog interval systemd asked for (``WATCHDOG_USEC``), if it is meant for us.
        self.watchdog_usec = watchdog_usec
        if address:
            self._address = _parse_address(address)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        monotonic_usec: Callable[[], int] = clock_monotonic_usec,
        pid: int | None = None,
    ) -> SystemdNotifier:
        """Reads ``NOTIFY_SOCKET`` (and ``WATCHDOG_USEC``/``WATCHDOG_PID``) from ``env``."""
        return cls(
            env.get("NOTIFY_SOCKET") or None,
            monotonic_usec=monotonic_usec,
            watchdog_usec=_watchdog_usec(env, os.getpid() if pid is None else pid),
        )

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: ``READY=1``, optionally with ``STATUS=``."""
        fields = [("READY", "1")]
        if status is not None:
            fields.append(("STATUS", status))
        return self.notify(*fields)

    def reloading(self) -> bool:
        """A reload begins: ``RELOADING=1`` with ``MONOTONIC_USEC=`` (Type=notify-reload needs it).

        Send :meth:`ready` when the reload is over, whether it succeeded or not.
        """
        return self.notify(("RELOADING", "1"), ("MONOTONIC_USEC", str(self._monotonic_usec())))

    def stopping(self) -> bool:
        """Shutdown begins: ``STOPPING=1``."""
        return self.notify(("STOPPING", "1"))

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``: ``STATUS=``."""
        return self.notify(("STATUS", text))

    def watchdog(self) -> bool:
        """Keep-alive ping for ``WatchdogSec=``: ``WATCHDOG=1``."""
        return self.notify(("WATCHDOG", "1"))

    def notify(self, *fields: tuple[str, str]) -> bool:
        """Sends ``KEY=VALUE`` lines as one datagram; ``True`` when it was sent.

        Newlines in values are replaced by spaces: the protocol is one assignment per line.
        """
        if self._address is None:
            return False
        message = "\n".join(f"{key}={_one_line(value)}" for key, value in fields)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Bounded: a stuck supervisor must not freeze the event loop for long.
                sock.settimeout(self._timeout)
                sock.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            log.warning(
                "sd_notify_failed",
                socket=self._display,
                message=message,
                error=str(exc) or type(exc).__name__,
            )
            return False
        return True


def _parse_address(address: str) -> bytes | None:
    """``/path`` → path; ``@name`` → Linux abstract socket (leading NUL); anything else → None."""
    if address.startswith("/"):
        raw = os.fsencode(address)
        if len(raw) < _SUN_PATH_MAX:
            return raw
        reason = "path too long"
    elif address.startswith("@") and len(address) > 1:
        raw = b"\0" + os.fsencode(address[1:])
        if len(raw) <= _SUN_PATH_MAX:
            return raw
        reason = "name too long"
    else:
        # e.g. "vsock:CID:PORT" (systemd ≥ 254 inside VMs): not spoken here.
        reason = "unsupported address"
    log.warning("sd_notify_socket_unsupported", socket=address, reason=reason)
    return None


def _watchdog_usec(env: Mapping[str, str], pid: int) -> int | None:
    watchdog_pid = env.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(pid):
        return None  # inherited from a parent: the interval is not ours to honour
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")
