"""What the chain vouches for outside its own rows — disclosed refs, sealed companion rows; pure."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

# The key a table's declaration sets in `Table.info` to have the log seal its companion rows:
# the columns that never change once committed (an outbox row's delivery state does).
SEALED = "sealed"

# Table name → each sealed row's primary key → the SHA-256 of its sealed columns.
Seals = dict[str, dict[str, str]]


def seal_digest(values: Mapping[str, Any], columns: Sequence[str]) -> str:
    """SHA-256 over the canonical JSON of the sealed columns' values, as the database holds
    them (a notice's body as its JSON text), so a row read back hashes the same."""
    body = {c: values[c] for c in columns}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class DisclosureFinding:
    """A `disclosed_refs` row the chain does not back (added), or one it backs that is gone
    (removed). `seq`/`enquiry`: the first chained answer that gave the ref to the peer."""

    problem: Literal["added", "removed"]
    peer: str
    ref: str
    seq: int | None
    enquiry: str | None
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SealFinding:
    """A row an enquiry row sealed that is gone, changed, or in a table this program does not
    declare (so it cannot be checked)."""

    problem: Literal["missing", "changed", "unknown_table"]
    table: str
    key: str
    seq: int
    enquiry: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Sealed:
    """What one chained row sealed: its seq and enquiry id, and per table each key's digest."""

    seq: int
    enquiry: str
    seals: Seals


def disclosure_findings(
    given: Mapping[tuple[str, str], tuple[int, str]], stored: Iterable[tuple[str, str]]
) -> tuple[DisclosureFinding, ...]:
    """`given`: (peer, ref) → (seq, enquiry id) of the first chained inbound answer that
    carried the ref; `stored`: the (peer, ref) rows of `disclosed_refs`. Every difference,
    sorted by peer and ref."""
    stored_set = set(stored)
    out = [
        DisclosureFinding(
            problem="added",
            peer=peer,
            ref=ref,
            seq=None,
            enquiry=None,
            message=f"disclosed_refs lets {peer} check {ref} by reference, "
            f"but no answer in the chain gave it that ref: the row was added outside the log",
        )
        for peer, ref in stored_set - given.keys()
    ]
    out.extend(
        DisclosureFinding(
            problem="removed",
            peer=peer,
            ref=ref,
            seq=seq,
            enquiry=enquiry,
            message=f"enquiry {enquiry} (row {seq}) gave {ref} to {peer}, "
            f"but disclosed_refs no longer holds it: the row was removed",
        )
        for (peer, ref), (seq, enquiry) in given.items()
        if (peer, ref) not in stored_set
    )
    return tuple(sorted(out, key=lambda f: (f.peer, f.ref)))


def seal_findings(
    sealed: Sequence[Sealed],
    found: Mapping[str, Mapping[str, str]],
    *,
    known_tables: Iterable[str],
) -> tuple[SealFinding, ...]:
    """`found`: per known table, the digest of each sealed key still present (recomputed
    from the row as it is now). Every sealed row that is missing or changed, in chain order."""
    known = set(known_tables)
    out: list[SealFinding] = []
    for s in sealed:
        for table, keys in s.seals.items():
            for key, digest in keys.items():
                if table not in known:
                    problem: Literal["missing", "changed", "unknown_table"] = "unknown_table"
                    message = (
                        f"enquiry {s.enquiry} (row {s.seq}) sealed {key} in table {table}, "
                        f"which this program does not declare: it cannot be checked"
                    )
                elif (now := found.get(table, {}).get(key)) is None:
                    problem = "missing"
                    message = (
                        f"enquiry {s.enquiry} (row {s.seq}) committed row {key} of {table}, "
                        f"which is gone: it was deleted"
                    )
                elif now != digest:
                    problem = "changed"
                    message = (
                        f"row {key} of {table}, committed by enquiry {s.enquiry} (row {s.seq}), "
                        f"is not what was committed: its content was edited"
                    )
                else:
                    continue
                out.append(
                    SealFinding(
                        problem=problem,
                        table=table,
                        key=key,
                        seq=s.seq,
                        enquiry=s.enquiry,
                        message=message,
                    )
                )
    return tuple(out)
