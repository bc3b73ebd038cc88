"""An enquiry as logged, pure: its id (a ULID), its row values and hash, the verify report."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from connector.enquiries.sealing import DisclosureFinding, Sealed, SealFinding
from connector.errors import EnquiryLogError

GENESIS = "0" * 64
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two digits (10 bits) at a time: a ULID's 130 bits are 13 lookups instead of 26 shifts.
_CROCKFORD_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_PAIR_SHIFTS = tuple(range(120, -10, -10))

Direction = Literal["in", "out"]
Decision = Literal["answered", "denied", "partial", "error"]


def new_enquiry_id(now: float) -> str:
    """A ULID: 48-bit millisecond time then 80 random bits, Crockford base32, sortable by time."""
    value = (int(now * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join([_CROCKFORD_PAIRS[(value >> s) & 1023] for s in _PAIR_SHIFTS])


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One enquiry as logged; `results` holds per check its status, level, rule and hit refs."""

    id: str
    at: float
    direction: Direction
    peer: str
    iss: str
    jti: str
    sub: str | None
    agency_kind: str | None
    purpose: str | None
    case_ref: str | None
    decision: Decision
    rules: tuple[str, ...]
    policy_digest: str | None
    checks: tuple[dict[str, Any], ...]
    results: tuple[dict[str, Any], ...]
    hit_refs: tuple[str, ...]
    answer_digest: str | None
    error: str | None
    query_token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedEntry:
    seq: int
    entry: Entry
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Base:
    """Where the live log starts: rows 1..`seq` are archived, row `seq`+1 chains from
    `hash`. A log never archived starts at row 1 from GENESIS."""

    seq: int = 0
    hash: str = GENESIS
    last_at: float | None = None  # the newest `at` among the archived rows
    files: tuple[str, ...] = ()  # the archive files written, oldest first


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchivedPart:
    """Rows 1..`last_seq` as archive files hold them, checked row by row: where they end,
    what their rows vouch for outside the log, and the hashes of the rows asked for."""

    last_seq: int
    head: str
    rows: int
    given: Mapping[tuple[str, str], tuple[int, str]]
    sealed: tuple[Sealed, ...]
    hashes: Mapping[int, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    rows: int  # of the live table
    ok: bool
    broken_seq: int | None = None
    problem: str | None = None
    head: str = GENESIS
    # With an intact chain: what the rows it vouches for outside itself say otherwise.
    disclosures: tuple[DisclosureFinding, ...] = ()
    sealed: tuple[SealFinding, ...] = ()
    base: Base = field(default_factory=Base)
    archived_rows: int = 0  # rows checked in archive files; 0 when none were given
    # Not checked, because the rows that back them are archived and no archive was given:
    archived_refs: int = 0  # disclosed refs first given before the base
    checkpoint_archived: bool = False  # the `expect` checkpoint's row

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest row read (the head)."""
        return self.base.seq + self.rows


_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


# Columns added after the first rows were written: hashed only when they hold something, so
# every older row keeps its hash (an older row reads them back as NULL).
_LATER_COLUMNS = ("sealed",)


def row_values(seq: int, entry: Entry, prev_hash: str, sealed: str | None = None) -> dict[str, Any]:
    """The row's columns. `sealed`: the JSON of the companion rows it commits to (table →
    key → digest); left out, not NULL, when there are none, as in rows before it existed."""
    # Shallow on purpose: dataclasses.asdict deep-copies and costs more than the commit.
    values = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
    if sealed is not None:
        values["sealed"] = sealed
    values["rules"] = orjson.dumps(list(entry.rules)).decode()
    values["checks"] = orjson.dumps(list(entry.checks)).decode()
    values["results"] = orjson.dumps(list(entry.results)).decode()
    values["hit_refs"] = orjson.dumps(list(entry.hit_refs)).decode()
    values["seq"] = seq
    values["prev_hash"] = prev_hash
    return values


def row_hash(values: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of every column but `hash`, `prev_hash` included; a
    later column (`sealed`) only when it is not NULL. A row being written has neither `hash`
    nor a NULL later column yet: it is hashed as it is, with no copy."""
    body = values
    if "hash" in values:
        body = {
            k: v
            for k, v in values.items()
            if k != "hash" and not (v is None and k in _LATER_COLUMNS)
        }
    return canonical_hash(body)


def canonical_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON (keys sorted, orjson's compact form) of `body`: what
    every hash chain of this program links (the enquiry log's rows, the admin audit trail's
    entries)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def row_problem(values: dict[str, Any], *, seq: int, prev: str) -> str | None:
    """What is wrong with a row read where row `seq` chaining from `prev` should be, in
    words; None when it is that row and its content matches its hash."""
    if values["seq"] != seq:
        return f"row {seq} is missing (next is {values['seq']})"
    if values["prev_hash"] != prev:
        return "prev_hash does not match the previous row's hash"
    if row_hash(values) != values["hash"]:
        return "the row's content does not match its hash"
    return None


def vouched_for(
    values: Mapping[str, Any],
    given: MutableMapping[tuple[str, str], tuple[int, str]],
    sealed: MutableSequence[Sealed],
) -> None:
    """What a checked row vouches for outside the log: the refs an inbound answer gave a
    peer (the first answer that gave each), and the companion rows it sealed."""
    seq = values["seq"]
    if values["direction"] == "in" and values["hit_refs"] != "[]":
        for ref in orjson.loads(values["hit_refs"]):
            given.setdefault((values["peer"], ref), (seq, values["id"]))
    if values.get("sealed") is not None:
        sealed.append(Sealed(seq=seq, enquiry=values["id"], seals=orjson.loads(values["sealed"])))


def entry_from_row(row: Any) -> LoggedEntry:
    try:
        return decode_row(row._mapping)
    except (ValueError, TypeError, KeyError) as exc:
        raise EnquiryLogError(
            f"row {row._mapping.get('seq')} of the enquiry log is damaged "
            f"({exc}); run `ncb-connector enquiries verify`"
        ) from exc


def decode_row(m: Any) -> LoggedEntry:
    entry = Entry(
        id=m["id"],
        at=m["at"],
        direction=m["direction"],
        peer=m["peer"],
        iss=m["iss"],
        jti=m["jti"],
        sub=m["sub"],
        agency_kind=m["agency_kind"],
        purpose=m["purpose"],
        case_ref=m["case_ref"],
        decision=m["decision"],
        rules=tuple(orjson.loads(m["rules"])),
        policy_digest=m["policy_digest"],
        checks=tuple(orjson.loads(m["checks"])),
        results=tuple(orjson.loads(m["results"])),
        hit_refs=tuple(orjson.loads(m["hit_refs"])),
        answer_digest=m["answer_digest"],
        error=m["error"],
        query_token=m["query_token"],
    )
    return LoggedEntry(seq=m["seq"], entry=entry, prev_hash=m["prev_hash"], hash=m["hash"])


def utc_iso(ts: float, *, timespec: str = "milliseconds") -> str:
    """ISO 8601 in UTC with a Z; `timespec` as datetime.isoformat's (signed manifests keep
    their times exact: "auto")."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
