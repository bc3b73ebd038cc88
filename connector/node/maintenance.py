"""The maintenance switch: a file in the state directory that the running node follows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import structlog

from connector.errors import ConfigError
from connector.storage.files import atomic_write

log = structlog.get_logger(__name__)

# Beside the enquiry log (the state directory): the one place the service and an admin
# acting as the service user can both write.
MAINTENANCE_FILE = Path("maintenance.json")
# What a peer is told to wait before asking again; the switch is checked this often or more.
RETRY_AFTER_S = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Maintenance:
    """The node is being worked on: peers get 503 and a Retry-After, /readyz is 503."""

    since: float
    login: str  # who switched it on
    sudo_user: str | None  # who became that login through sudo, if anyone
    reason: str | None = None


def read_maintenance(path: Path) -> Maintenance | None:
    """None when the switch is off (no file)."""
    try:
        data = orjson.loads(path.read_bytes())
        return Maintenance(
            since=float(data["since"]),
            login=str(data["login"]),
            sudo_user=data.get("sudo_user"),
            reason=data.get("reason"),
        )
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        # A switch that cannot be read is on: better a node that says so than one that
        # answers peers while an admin believes it does not.
        raise ConfigError(f"{path}: the maintenance switch is unreadable ({exc})") from exc


def switch_on(path: Path, maintenance: Maintenance) -> None:
    try:
        atomic_write(
            path, orjson.dumps(dataclasses.asdict(maintenance), option=orjson.OPT_INDENT_2)
        )
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def switch_off(path: Path) -> bool:
    """False when it was off already."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    return True


class MaintenanceSwitch:
    """The switch as the running node follows it: read at start, then whenever the file
    changes (the policy watch's rounds, and SIGHUP)."""

    def __init__(self, path: Path, *, clock: Callable[[], float]) -> None:
        self.path = path
        self.clock = clock
        self.on: Maintenance | None = None
        self._stamp: tuple[int, int] | None = None

    def check(self) -> None:
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and (stamp is not None or self.on is None):
            return
        self._stamp = stamp
        try:
            found = read_maintenance(self.path)
        except ConfigError as exc:
            found = Maintenance(since=self.clock(), login="?", sudo_user=None, reason=exc.detail)
        was, self.on = self.on, found
        if found is not None and was is None:
            log.warning(
                "maintenance_started",
                login=found.login,
                sudo_user=found.sudo_user,
                reason=found.reason,
                file=str(self.path),
            )
        elif found is None and was is not None:
            log.warning("maintenance_ended", file=str(self.path))

    @property
    def description(self) -> str | None:
        """For the NCB (authenticated /readyz, `maintenance status`): who, since when, why."""
        m = self.on
        if m is None:
            return None
        who = m.login if m.sudo_user is None else f"{m.sudo_user} (as {m.login})"
        since = datetime.fromtimestamp(m.since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"switched on by {who} at {since}" + (f": {m.reason}" if m.reason else "")

    def paused(self) -> tuple[str, float] | None:
        """For a peer: that it is so, and when to ask again; not who or why."""
        if self.on is None:
            return None
        return "the node is under maintenance: ask again later", float(RETRY_AFTER_S)
