"""`ncb-connector search`: a subject checked against the national records and every allowed peer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import click

from connector.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INCOMPLETE,
    F,
    _fail,
    _json,
    _pseudonym,
    _settings,
    asker_options,
    asking_exit,
    config_option,
    handles_errors,
    old_spelling,
    out,
)
from connector.errors import OutboundDenied
from connector.vocabulary import AgencyKind, Purpose


def _subject_options(fn: F) -> F:
    """An option per field of the subject (outbound/subject.py), in the subject's order."""
    from connector.outbound.subject import subject_fields

    for f in reversed(subject_fields()):
        path = (
            click.Path(exists=True, dir_okay=False, path_type=Path)
            if f.loci or f.template
            else None
        )
        if f.old is not None:
            fn = old_spelling(f.old, f.name, type=path)(fn)
        if f.loci or f.template:
            fn = click.option(f.option, f.name, type=path, metavar="FILE", help=f.help)(fn)
        else:
            fn = click.option(f.option, f.name, help=f.help)(fn)
    return fn


def _dna_profile(path: Path) -> dict[str, str]:
    """The loci of a profile file: a JSON object of locus → alleles, or an import row (an
    object with `loci`), alone or as the first line of NDJSON. Checked like any check's
    criteria before anything is sent."""
    import orjson

    text = path.read_bytes().strip()
    try:
        given = orjson.loads(text.splitlines()[0] if text else b"")
    except orjson.JSONDecodeError:
        given = None
    loci = given.get("loci", given) if isinstance(given, dict) else None
    if isinstance(loci, dict) and loci:
        found = {k: v for k, v in loci.items() if isinstance(k, str) and isinstance(v, str)}
        if len(found) == len(loci):
            return found
    _fail(
        f"{path}: not a DNA profile: give a JSON object of locus → alleles, e.g. "
        '{"D8S1179": "13,14", "TH01": "6,9.3", …}, or an import row with "loci"',
        EXIT_BAD_INPUT,
    )
    return {}


def _fingerprint(path: Path) -> str:
    """A fingerprint file's template, base64: an ISO/IEC 19794-2 record as bytes, its base64
    text, or an import row (a JSON object with `template`), alone or as the first line of
    NDJSON. Checked like any check's criteria before anything is sent."""
    import base64

    import orjson

    data = path.read_bytes()
    if data.startswith(b"FMR\x00"):
        return base64.b64encode(data).decode("ascii")
    text = data.strip()
    if text.startswith(b"{"):
        try:
            row = orjson.loads(text.splitlines()[0])
        except orjson.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("template"), str):
            return str(row["template"])
    elif text and len(text) <= 8192 and b"\n" not in text:
        return text.decode("ascii", errors="replace")
    _fail(
        f"{path}: not a fingerprint: give an ISO/IEC 19794-2 minutiae record (the file "
        'itself, or its base64), or an import row with "template"',
        EXIT_BAD_INPUT,
    )
    return ""


@click.command()
@_subject_options
@click.option("--peer", "peer_ids", multiple=True, help="Ask only these peers (repeatable).")
@asker_options
@click.option(
    "--deadline-ms",
    type=click.IntRange(50, 30_000),
    default=None,
    help="Default: federation.deadline_ms.",
)
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def search(
    peer_ids: tuple[str, ...],
    purpose: str,
    agency: str,
    agency_kind: str,
    sub: str | None,
    case_ref: str | None,
    deadline_ms: int | None,
    as_json: bool,
    config_path: Path,
    **subject: Any,
) -> None:
    """Check a subject (document, person, vehicle, DNA profile, fingerprint) against the
    national records and every allowed peer at once; a table fills in as peers answer.

    Exit status, the same for query and search: 0 asked, nothing found; 3 a hit; 4 nothing
    found, but not every peer could be asked or answered (unreachable, timed out, an error,
    a denial by the peer, or no peer the outbound policy allows); 2 bad input."""
    from rich.live import Live

    from connector.cli.render import fanout_table
    from connector.node.node import Node
    from connector.outbound.desk import search_peers
    from connector.outbound.subject import Subject

    if subject.get("dna_loci") is not None:
        subject["dna_loci"] = _dna_profile(subject["dna_loci"])
    if subject.get("fingerprint") is not None:
        subject["fingerprint"] = _fingerprint(subject["fingerprint"])
    node = Node.from_settings(_settings(config_path))
    node.load_live()
    live = (
        Live(console=out, refresh_per_second=12, transient=False)
        if out.is_terminal and not as_json
        else None
    )

    def update(prepared: Any, outcomes: Any) -> None:
        if live is not None:
            ids = [c.id for c in prepared.request.checks]
            live.update(
                fanout_table(ids, [p.peer for p in prepared.plans], outcomes, prepared.national)
            )

    started = time.monotonic()
    try:
        with live if live is not None else contextlib.nullcontext():
            prepared, outcomes = asyncio.run(
                search_peers(
                    node.desk,
                    subject=Subject(**subject),
                    peers=[p.upper() for p in peer_ids] or "*",
                    agency=agency,
                    agency_kind=AgencyKind(agency_kind),
                    sub=sub or _pseudonym(agency, node),
                    purpose=Purpose(purpose),
                    case=case_ref,
                    deadline_ms=deadline_ms,
                    on_update=update,
                )
            )
    except OutboundDenied as exc:
        _fail(exc.detail, EXIT_INCOMPLETE)
        return
    elapsed = time.monotonic() - started
    checks = prepared.request.checks
    ids = [c.id for c in checks]
    peers_order = [p.peer for p in prepared.plans]
    if as_json:
        from connector.server.local_checks import _check_json, _national_json, _peer_json

        _json(
            {
                "checks": [
                    {
                        "id": c.id,
                        "category": c.category.value,
                        "criteria": dict(c.criteria),
                        "national": _national_json(prepared.national[i]),
                        "peers": [
                            {"peer": p, **_check_json(outcomes[p].checks[i])} for p in peers_order
                        ],
                    }
                    for i, c in enumerate(checks)
                ],
                "peers": [_peer_json(outcomes[p]) for p in peers_order],
            }
        )
    elif live is None:
        out.print(fanout_table(ids, peers_order, outcomes, prepared.national))
    if not as_json:
        counts: dict[str, int] = {}
        for o in outcomes.values():
            counts[o.status] = counts.get(o.status, 0) + 1
        out.print(
            f"{len(peers_order)} peer(s) in {elapsed * 1000:.0f} ms: "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        )
    hit = any(c.status == "hit" for o in outcomes.values() for c in o.checks) or any(
        r.status == "hit" for r in prepared.national
    )
    # A check the outbound policy keeps from a peer was never meant to be asked there.
    complete = all(
        c.status in ("hit", "no_hit") or c.reason == "outbound_policy"
        for o in outcomes.values()
        for c in o.checks
    )
    raise SystemExit(asking_exit(hit=hit, complete=complete))
