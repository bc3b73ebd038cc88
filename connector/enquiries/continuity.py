"""What a node keeps of its enquiry log outside it, so that a log which forgot is refused."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import structlog

from connector.enquiries.entry import GENESIS
from connector.enquiries.log import EnquiryLog
from connector.errors import ConfigError, EnquiryLogForgotten
from connector.storage.files import atomic_write

log = structlog.get_logger(__name__)

# Beside the log's SQLite file (the state directory), never inside the database it vouches for.
STATE_FILE = Path("enquiry-log-state.json")


@dataclass(frozen=True, slots=True, kw_only=True)
class NewLog:
    """An admin's decision to start on a log that did not hold the kept checkpoint."""

    login: str  # the login that ran `run --new-log`
    sudo_user: str | None  # who became that login through sudo, if anyone
    at: float
    found: str  # what was wrong with the log, in words
    kept_seq: int
    kept_hash: str
    log_head: tuple[int, str]  # the head of the log accepted


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptState:
    """The log's last checkpoint as the node last wrote it, and every `--new-log`."""

    node: str
    seq: int
    hash: str
    at: float
    new_logs: tuple[NewLog, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Admin:
    """Who says `--new-log`: the login, and who became it through sudo."""

    login: str
    sudo_user: str | None


class KeptLog:
    """The kept state's file: read at start, rewritten at each checkpoint."""

    def __init__(self, path: Path, *, node: str) -> None:
        self.path = path
        self.node = node

    def read(self) -> KeptState | None:
        """None when the node never kept anything (a new node, or one from before this)."""
        try:
            data = orjson.loads(self.path.read_bytes())
            return KeptState(
                node=str(data["node"]),
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                at=float(data["at"]),
                new_logs=tuple(
                    NewLog(**{**n, "log_head": tuple(n["log_head"])})
                    for n in data.get("new_logs", [])
                ),
            )
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{self.path}: the enquiry log's kept state is unreadable ({exc}); it holds the "
                "log's last checkpoint — remove it only if the log is known to be whole"
            ) from exc

    def write(self, state: KeptState) -> None:
        try:
            atomic_write(
                self.path, orjson.dumps(dataclasses.asdict(state), option=orjson.OPT_INDENT_2)
            )
        except OSError as exc:
            # A ConfigError, not an OSError: at start that would read as "cannot listen".
            raise ConfigError(
                f"cannot write the enquiry log's kept state {self.path}: {exc.strerror or exc}"
            ) from exc

    def checkpoint(self, seq: int, head: str, at: float) -> None:
        """The log's head as of now; the admins' decisions kept."""
        try:
            old = self.read()
        except ConfigError:
            old = None  # damaged: what is written now is whole again
        new_logs = old.new_logs if old is not None else ()
        self.write(KeptState(node=self.node, seq=seq, hash=head, at=at, new_logs=new_logs))


def what_is_wrong(
    kept: KeptState | None, enquiry_log: EnquiryLog, *, file_missing: bool
) -> str | None:
    """What keeps this log from being the one the node wrote, or None. A node that never
    logged a row (nothing kept, or a checkpoint of row 0) may start on any log."""
    if kept is None or kept.seq == 0:
        return None
    if file_missing:
        return "is missing"
    if enquiry_log.head() == (0, GENESIS):
        return "is empty"
    found = enquiry_log.hash_at(kept.seq)
    if found is None:
        # Archived since (`enquiries archive`): the base is the row before the live table;
        # a row before it is checked by `enquiries verify --archive`, not at every start.
        base = enquiry_log.base()
        if kept.seq < base.seq or (kept.seq, kept.hash) == (base.seq, base.hash):
            return None
    if found != kept.hash:
        return f"does not hold row {kept.seq} as this node logged it (another log, or an old copy)"
    return None


def refusal(kept: KeptState, found: str, *, where: str, state_file: Path) -> EnquiryLogForgotten:
    when = datetime.fromtimestamp(kept.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return EnquiryLogForgotten(
        f"the enquiry log {where} {found}, but this node had logged up to row {kept.seq} "
        f"(checkpoint of {when}, kept in {state_file}): put the log back, or start once with "
        "`ncb-connector run --new-log` to begin a new one (the decision is recorded)"
    )


def accept(
    kept_log: KeptLog,
    kept: KeptState,
    found: str,
    enquiry_log: EnquiryLog,
    *,
    admin: Admin,
    now: float,
) -> NewLog:
    """The admin's `--new-log`: a warning event and a line in the kept state, the new log's
    head its checkpoint from now on."""
    head = enquiry_log.head()
    decision = NewLog(
        login=admin.login,
        sudo_user=admin.sudo_user,
        at=now,
        found=found,
        kept_seq=kept.seq,
        kept_hash=kept.hash,
        log_head=head,
    )
    kept_log.write(
        KeptState(
            node=kept_log.node,
            seq=head[0],
            hash=head[1],
            at=now,
            new_logs=(*kept.new_logs, decision),
        )
    )
    log.warning(
        "enquiry_log_new_accepted",
        login=admin.login,
        sudo_user=admin.sudo_user,
        found=found,
        kept_seq=kept.seq,
        kept_hash=kept.hash,
        log_seq=head[0],
        log_hash=head[1],
        state_file=str(kept_log.path),
    )
    return decision
