"""`ncb-connector query`: asking one peer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import orjson

from connector.cli.common import (
    _HELD,
    EXIT_INCOMPLETE,
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
from connector.errors import OutboundDenied, PeerError
from connector.vocabulary import AgencyKind, Category, Purpose


@click.command()
@click.option("--peer", "peer_id", required=True, help="The node asked, e.g. DE.")
@click.option("--category", required=True, type=click.Choice(_HELD))
@click.option("--document-number", help="Travel document number.")
@click.option("--document-country", help="The document's issuing country (alpha-2).")
@click.option("--document-type", help="Document type (P, I, …).")
@click.option("--mrz", help="ICAO 9303 MRZ, lines separated by newlines.")
@old_spelling("--number", "document_number")
@old_spelling("--country", "document_country")
@old_spelling("--type", "document_type")
@click.option(
    "--criteria",
    "criteria_json",
    metavar="JSON",
    help='Criteria as JSON for any category, e.g. \'{"vin": "1M8GDM9AXKP042788"}\' '
    "(see docs/protocol.md §6).",
)
@asker_options
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def query(
    peer_id: str,
    category: str,
    document_number: str | None,
    document_country: str | None,
    document_type: str | None,
    mrz: str | None,
    criteria_json: str | None,
    purpose: str,
    agency: str,
    agency_kind: str,
    sub: str | None,
    case_ref: str | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """Ask one peer; the signed answer is verified and the enquiry logged.

    Exit status, the same for query and search: 0 asked, nothing found; 3 a hit; 4 nothing
    found, but not every peer could be asked or answered (unreachable, timed out, an error,
    a denial by the peer, or no peer the outbound policy allows); 2 bad input."""
    from connector.cli.render import answer_table
    from connector.errors import InvalidCriteria
    from connector.node.node import Node
    from connector.outbound.desk import ask_peer

    criteria: dict[str, Any] | None = None
    if criteria_json is not None:
        try:
            criteria = orjson.loads(criteria_json)
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--criteria") from exc
        if not isinstance(criteria, dict):
            raise click.BadParameter("a JSON object", param_hint="--criteria")
    node = Node.from_settings(_settings(config_path))
    node.load_live()
    try:
        exchange = asyncio.run(
            ask_peer(
                node.desk,
                peer=peer_id.upper(),
                agency=agency,
                agency_kind=AgencyKind(agency_kind),
                sub=sub or _pseudonym(agency, node),
                purpose=Purpose(purpose),
                case=case_ref,
                category=Category(category),
                criteria=criteria,
                mrz=mrz,
                document_number=document_number,
                document_country=document_country,
                document_type=document_type,
            )
        )
    except InvalidCriteria as exc:  # bad input is ours to refuse, not a peer's
        _fail(f"{exc.extra.get('field') or 'criteria'}: {exc.detail}")
        return
    except (PeerError, OutboundDenied) as exc:
        _fail(exc.detail, EXIT_INCOMPLETE)
        return
    if as_json:
        _json(exchange.answer.model_dump(mode="json"))
    else:
        out.print(answer_table(exchange))
    statuses = {r.status for r in exchange.answer.results}
    raise SystemExit(
        asking_exit(hit="hit" in statuses, complete=not statuses & {"denied", "error"})
    )
