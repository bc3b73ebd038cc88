"""The admin audit trail's entries, pure: who acted, the closed list of actions, each line's
hash, and the chain checked line by line."""

from __future__ import annotations

import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import orjson

from connector.enquiries.entry import GENESIS, canonical_hash, utc_iso

TRAIL_FILE = Path("admin-audit.jsonl")  # in the node's state directory (Settings.state_path)

# An entry says what changed, not the secret that changed: a detail named like one of these
# is refused outright, whatever a caller meant to put in it.
_SECRET_WORDS = ("token", "password", "secret", "private")
MAX_DETAILS = 2048  # bytes of JSON: a summary, never a file's content


class Action(StrEnum):
    """What an admin did: `area.verb`, a closed list (docs/operations.md, the admin audit
    trail). A new admin command adds its action here and a row to that table."""

    NODE_INITIALIZED = "node.initialized"
    PEER_ADDED = "peer.added"
    PEER_REMOVED = "peer.removed"
    PEER_UPDATED = "peer.updated"
    KEY_ROTATED = "key.rotated"
    CERTIFICATE_RENEWED = "certificate.renewed"
    ENQUIRIES_ARCHIVED = "enquiries.archived"
    AGENCY_ADDED = "agency.added"
    AGENCY_ROTATED = "agency.rotated"
    AGENCY_DISABLED = "agency.disabled"
    AGENCY_ENABLED = "agency.enabled"
    MAINTENANCE_ON = "maintenance.on"
    MAINTENANCE_OFF = "maintenance.off"
    DATABASES_UPGRADED = "databases.upgraded"
    RECORDS_IMPORTED = "records.imported"
    RECORD_REMOVED = "record.removed"
    RECORDS_REINDEXED = "records.reindexed"
    RECORDS_SYNCED = "records.synced"
    NOTICES_RETRIED = "notices.retried"
    BACKUP_CREATED = "backup.created"
    BACKUP_RESTORED = "backup.restored"
    ENQUIRY_LOG_REPLACED = "enquiry_log.replaced"
    TRAIL_REPAIRED = "trail.repaired"
    USER_ADDED = "user.added"
    USER_PASSWORD_CHANGED = "user.password_changed"
    USER_DISABLED = "user.disabled"
    CONSOLE_LOGIN = "console.login"
    CONSOLE_LOGIN_REFUSED = "console.login_refused"
    CONSOLE_LOGOUT = "console.logout"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_DENIED = "approval.denied"


ActorKind = Literal["os", "console"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who made a change: an OS user running a command (`uid`, and `sudo_user` when it ran
    through sudo), or an account of an operator console (`name` only)."""

    kind: ActorKind
    name: str
    uid: int | None = None
    sudo_user: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.uid is not None:
            doc["uid"] = self.uid
        if self.sudo_user is not None:
            doc["sudo_user"] = self.sudo_user
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Actor:
        kind = doc["kind"]
        if kind not in ("os", "console"):
            raise ValueError(f"actor kind {kind!r}")
        return cls(
            kind=kind,
            name=str(doc["name"]),
            uid=None if doc.get("uid") is None else int(doc["uid"]),
            sudo_user=None if doc.get("sudo_user") is None else str(doc["sudo_user"]),
        )

    @property
    def shown(self) -> str:
        """As a table shows it: `alice (sudo → root)`, `ncb-connector`, `console:alice`."""
        name = self.name if self.kind == "os" else f"{self.kind}:{self.name}"
        return name if self.sudo_user is None else f"{self.sudo_user} (sudo → {name})"


def os_actor(*, euid: int, environ: Mapping[str, str]) -> Actor:
    """The OS user a command runs as (its effective uid's name: the one that can write the
    node's files, whatever $USER claims), and who ran sudo, as sudo sets SUDO_USER."""
    try:
        name = pwd.getpwuid(euid).pw_name
    except KeyError:  # a uid without a passwd entry (a container): the number is the name
        name = str(euid)
    return Actor(kind="os", name=name, uid=euid, sudo_user=environ.get("SUDO_USER") or None)


Detail = str | int | float | bool | None | Sequence["Detail"] | Mapping[str, "Detail"]


def checked_details(details: Mapping[str, Detail]) -> dict[str, Any]:
    """`details` as an entry holds them: JSON, small, and with no key named like a secret."""
    for key in details:
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ValueError(f"an audit entry never holds a secret: detail {key!r} refused")
    encoded = orjson.dumps(dict(details))
    if len(encoded) > MAX_DETAILS:
        raise ValueError(f"audit details of {len(encoded)} bytes: at most {MAX_DETAILS}")
    loaded: dict[str, Any] = orjson.loads(encoded)
    return loaded


@dataclass(frozen=True, slots=True, kw_only=True)
class TrailEntry:
    """One line of the trail; `hash` is SHA-256 over the canonical JSON of the others."""

    seq: int
    at: str  # ISO 8601 UTC, to the millisecond, as written
    actor: Actor
    action: str  # an Action's value; kept as written, so a line from a newer version reads
    target: str
    details: dict[str, Any]
    prev: str
    hash: str

    @property
    def when(self) -> float:
        return datetime.fromisoformat(self.at.replace("Z", "+00:00")).timestamp()

    def to_json(self) -> dict[str, Any]:
        return {**_body(self), "hash": self.hash}


def _body(e: TrailEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": e.at,
        "actor": e.actor.to_json(),
        "action": e.action,
        "target": e.target,
        "details": e.details,
        "prev": e.prev,
    }


def new_entry(
    *,
    after: TrailEntry | None,
    at: float,
    actor: Actor,
    action: Action,
    target: str,
    details: Mapping[str, Detail],
) -> TrailEntry:
    """The entry that follows `after` (None: the first one)."""
    draft = TrailEntry(
        seq=1 if after is None else after.seq + 1,
        at=utc_iso(at),
        actor=actor,
        action=action.value,
        target=target,
        details=checked_details(details),
        prev=GENESIS if after is None else after.hash,
        hash="",
    )
    body = _body(draft)
    return TrailEntry(**{**body, "actor": actor, "hash": canonical_hash(body)})


def line_of(entry: TrailEntry) -> bytes:
    return orjson.dumps(entry.to_json()) + b"\n"


def parse_line(line: bytes) -> tuple[TrailEntry, bool]:
    """An entry from its line, and whether its hash is that of its content (hashed as the
    line holds it, never as this version would write it). ValueError: not an entry."""
    try:
        doc = orjson.loads(line)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        details = doc["details"]
        if not isinstance(details, dict):
            raise ValueError("details is not an object")
        entry = TrailEntry(
            seq=_int(doc["seq"]),
            at=str(doc["at"]),
            actor=Actor.from_json(doc["actor"]),
            action=str(doc["action"]),
            target=str(doc["target"]),
            details=details,
            prev=str(doc["prev"]),
            hash=str(doc["hash"]),
        )
        entry.when  # noqa: B018  (a time that does not read is no entry: `list --since` reads it)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not an entry ({exc})") from exc
    body = {k: v for k, v in doc.items() if k != "hash"}
    return entry, canonical_hash(body) == entry.hash


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"seq {value!r} is not a number")
    return value


Finding = Literal["malformed", "edited", "deleted", "reordered", "unchained", "partial", "cut"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrailReport:
    """`audit verify`: how many entries hold, the head, and the first thing wrong (its line,
    1-based, and seq when the line has one)."""

    entries: int
    head: TrailEntry | None
    finding: Finding | None = None
    line: int | None = None
    seq: int | None = None
    problem: str | None = None
    expect_held: bool | None = None  # None: no --expect given

    @property
    def ok(self) -> bool:
        return self.finding is None


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """The whole lines of a trail file and what follows the last newline (b"": nothing)."""
    *lines, rest = data.split(b"\n")
    return lines, rest


def verify_trail(data: bytes, *, expect: tuple[int, str] | None = None) -> TrailReport:
    """Walk the chain from the first line: each line an entry, its hash its content's, its
    seq one more than the line before and its `prev` that line's hash. The first thing
    wrong is named; `expect` (SEQ, HASH, taken earlier) also proves nothing up to it was cut
    or rewritten since."""
    lines, rest = split_lines(data)
    head: TrailEntry | None = None
    expect_held = None if expect is None else False
    for number, line in enumerate(lines, start=1):
        try:
            entry, whole = parse_line(line)
        except ValueError as exc:
            return _broken(head, number - 1, "malformed", number, None, f"line {number} {exc}")
        wanted = 1 if head is None else head.seq + 1
        before = "the start" if head is None else f"seq {head.seq}"
        count = number - 1
        if not whole:
            problem = f"line {number} (seq {entry.seq}) was edited: its hash is not its content's"
            return _broken(head, count, "edited", number, entry.seq, problem)
        if entry.seq > wanted and _seq_later(lines[number:], wanted):
            problem = (
                f"line {number} (seq {entry.seq}) follows {before}, and seq {wanted} comes "
                "later: out of order (lines moved)"
            )
            return _broken(head, count, "reordered", number, entry.seq, problem)
        if entry.seq > wanted:
            problem = (
                f"line {number} (seq {entry.seq}) follows {before}: "
                f"{entry.seq - wanted} entr{'y' if entry.seq - wanted == 1 else 'ies'} "
                f"(seq {wanted}{'' if entry.seq - wanted == 1 else f'–{entry.seq - 1}'}) deleted"
            )
            return _broken(head, count, "deleted", number, entry.seq, problem)
        if entry.seq < wanted:
            problem = (
                f"line {number} (seq {entry.seq}) follows {before}: "
                "out of order (lines moved or repeated)"
            )
            return _broken(head, count, "reordered", number, entry.seq, problem)
        if entry.prev != (GENESIS if head is None else head.hash):
            problem = (
                f"line {number} (seq {entry.seq}) does not chain onto {before}: an entry was "
                "replaced, or removed and the rest renumbered and rehashed"
            )
            return _broken(head, count, "unchained", number, entry.seq, problem)
        if expect is not None and entry.seq == expect[0]:
            if entry.hash != expect[1]:
                problem = (
                    f"line {number} (seq {entry.seq}) is not the entry the checkpoint holds: "
                    "the trail up to it was rewritten"
                )
                return _broken(entry, count, "cut", number, entry.seq, problem)
            expect_held = True
        head = entry
    count = len(lines)
    if rest:
        problem = (
            f"line {count + 1} is partial ({len(rest)} bytes, no newline): a write that did "
            "not finish; the next change recorded cuts it off and says so (trail.repaired)"
        )
        return _broken(head, count, "partial", count + 1, None, problem)
    if expect is not None and not expect_held:
        problem = (
            f"the trail ends at seq {0 if head is None else head.seq}, but the checkpoint "
            f"holds seq {expect[0]}: entries were cut from its end"
        )
        return _broken(head, count, "cut", None, expect[0], problem)
    return TrailReport(entries=count, head=head, expect_held=expect_held)


def _seq_later(lines: Sequence[bytes], seq: int) -> bool:
    for line in lines:
        try:
            if parse_line(line)[0].seq == seq:
                return True
        except ValueError:
            continue
    return False


def _broken(
    head: TrailEntry | None,
    entries: int,
    finding: Finding,
    line: int | None,
    seq: int | None,
    problem: str,
) -> TrailReport:
    return TrailReport(
        entries=entries, head=head, finding=finding, line=line, seq=seq, problem=problem
    )
