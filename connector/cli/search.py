"""`ncb-connector search`: a subject checked against the national records and every allowed peer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import click

from connector.cli.common import (
    _fail,
    _json,
    _pseudonym,
    _settings,
    config_option,
    handles_errors,
    out,
)
from connector.errors import OutboundDenied


@click.command()
@click.option("--mrz", help="ICAO 9303 MRZ, lines separated by newlines.")
@click.option("--number", help="Travel document number.")
@click.option("--country", help="The document's issuing country (alpha-2).")
@click.option("--type", "document_type", help="Document type (P, I, …).")
@click.option("--first-name")
@click.option("--last-name")
@click.option("--birth-date", help="YYYY, YYYY-MM or YYYY-MM-DD.")
@click.option("--nationality", help="Alpha-2.")
@click.option("--plate", help="Vehicle registration plate.")
@click.option("--plate-country", help="The plate's country (alpha-2).")
@click.option("--vin", help="Vehicle identification number.")
@click.option("--peer", "peer_ids", multiple=True, help="Ask only these peers (repeatable).")
@click.option(
    "--purpose",
    default="border_control",
    show_default=True,
    type=click.Choice(
        [
            "border_control",
            "criminal_investigation",
            "counter_terrorism",
            "vehicle_check",
            "art_trafficking",
            "identification",
        ]
    ),
)
@click.option(
    "--agency",
    default="ncb",
    show_default=True,
    help="The national agency asking (outbound policy).",
)
@click.option(
    "--agency-kind",
    default="ncb",
    show_default=True,
    type=click.Choice(["ncb", "police", "border", "customs", "immigration"]),
)
@click.option(
    "--sub",
    default=None,
    help="Pseudonymous end user, sent to peers (default: AGENCY/ and a keyed hash "
    "of your login, which this node can map back and peers cannot).",
)
@click.option("--case", "case_ref", default=None)
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
    mrz: str | None,
    number: str | None,
    country: str | None,
    document_type: str | None,
    first_name: str | None,
    last_name: str | None,
    birth_date: str | None,
    nationality: str | None,
    plate: str | None,
    plate_country: str | None,
    vin: str | None,
    peer_ids: tuple[str, ...],
    purpose: str,
    agency: str,
    agency_kind: str,
    sub: str | None,
    case_ref: str | None,
    deadline_ms: int | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """Check a subject (document, person, vehicle) against the national records and every
    allowed peer at once; a table fills in as peers answer.

    Exit status: 0 done, 3 a hit somewhere, 1 nothing could be asked, 2 bad input."""
    from rich.live import Live

    from connector.cli.render import fanout_table
    from connector.node.local_app import search_once
    from connector.node.service import Node
    from connector.outbound.asking import Request
    from connector.outbound.subject import Subject, subject_checks
    from connector.vocabulary import AgencyKind, Purpose

    subject = Subject(
        mrz=mrz,
        document_number=number,
        document_country=country,
        document_type=document_type,
        first_name=first_name,
        last_name=last_name,
        birth_date=birth_date,
        nationality=nationality,
        plate=plate,
        plate_country=plate_country,
        vin=vin,
    )
    checks = subject_checks(subject)
    if not checks:
        _fail("give something to check: --mrz, --number, --last-name, --plate or --vin")
    settings = _settings(config_path)
    node = Node.from_settings(settings)
    node.load_live()
    request = Request(
        agency=agency,
        agency_kind=AgencyKind(agency_kind),
        sub=sub or _pseudonym(agency, node),
        purpose=Purpose(purpose),
        case=case_ref,
        checks=checks,
    )
    ids = [c.id for c in checks]
    live = (
        Live(console=out, refresh_per_second=12, transient=False)
        if out.is_terminal and not as_json
        else None
    )

    def update(prepared: Any, outcomes: Any) -> None:
        if live is not None:
            live.update(
                fanout_table(ids, [p.peer for p in prepared.plans], outcomes, prepared.national)
            )

    started = time.monotonic()
    try:
        with live if live is not None else contextlib.nullcontext():
            prepared, outcomes = asyncio.run(
                search_once(
                    node,
                    request,
                    peers=[p.upper() for p in peer_ids] or "*",
                    deadline_s=(deadline_ms or settings.federation.deadline_ms) / 1000,
                    on_update=update,
                )
            )
    except OutboundDenied as exc:
        _fail(exc.detail, 1)
        return
    elapsed = time.monotonic() - started
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
    if hit:
        raise SystemExit(3)
