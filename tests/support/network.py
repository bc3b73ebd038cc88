"""Two nodes with a record of every category, a policy that answers them, and one way to ask."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from connector.demo import DEMO_STAIN, DemoNode, demo_print
from connector.outbound.request import Request
from connector.protocol import Check
from connector.records.importer import import_stream
from connector.vocabulary import AgencyKind, Category, Purpose
from support.databases import DatabaseUrl

POLICY = """\
inbound:
  - name: everything for FR
    from: [FR]
    answer: full
  - name: persons, summary for GB
    from: [GB]
    categories: [wanted_persons, artworks]
    answer: summary
outbound:
  - agency: ncb
    to: "*"
"""

DATA: dict[Category, list[dict[str, Any]]] = {
    Category.VEHICLES: [
        {
            "vin": "1M8GDM9AXKP042788",
            "status": "stolen",
            "make": "Motor Coach",
            "plate": "B-XY 123",
            "plate_country": "DE",
        }
    ],
    Category.ARTWORKS: [
        {
            "id": "DE-ART-7",
            "title": {"de": "Die Brücke von Argenteuil", "fr": "Le Pont d'Argenteuil"},
            "artist": "Claude Monet",
            "description": "oil on canvas, 1874",
        }
    ],
    Category.WANTED_PERSONS: [
        {
            "id": "DE-2025-000123",
            "last_name": "Щербаков",
            "first_name": "Иван",
            "birth_date": "1980-02",
            "nationality": ["RU"],
            "document_numbers": ["75 1234567"],
            "warrant_country": "DE",
            "charges": ["fraud"],
        }
    ],
    Category.TERRORISM_SUSPECTS: [{"id": "DE-TS-9", "last_name": "Doe", "organisation": "example"}],
    Category.DNA_PROFILES: [
        {
            "id": "DE-DNA-1",
            "profile_type": "stain",
            "case_reference": "DE-K-2026-44",
            # Seven of the demo stain's loci (and amelogenin): a partial stain.
            "loci": {
                locus: DEMO_STAIN[locus]
                for locus in (
                    "D3S1358",
                    "vWA",
                    "D8S1179",
                    "D21S11",
                    "D18S51",
                    "TH01",
                    "FGA",
                    "AMEL",
                )
            },
        }
    ],
    # The demo's right index finger, as taken at an arrest (impression 0).
    Category.FINGERPRINTS: [
        {"id": "DE-FP-1", "case_reference": "DE-K-2026-51", "template": demo_print(0)}
    ],
}


def configure(node_id: str, directory: Path) -> None:
    (directory / "policies" / "10-demo.yaml").write_text(POLICY)


def load(net: dict[str, DemoNode]) -> None:
    for category, rows in DATA.items():
        import_rows(net, category, rows)


def import_rows(net: dict[str, DemoNode], category: Category, rows: list[dict[str, Any]]) -> None:
    """Into DE's records, as `records import` would."""
    store = net["DE"].node.open_records()
    try:
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        report = import_stream(store, io.BytesIO(data), category=category, fmt="ndjson")
        assert report.rejected == 0, report.errors
    finally:
        store.close()


def ncb_request(
    *checks: tuple[Category, Mapping[str, Any]], purpose: Purpose = Purpose.CRIMINAL_INVESTIGATION
) -> Request:
    """The NCB's own request (agency `ncb`): check `i` of each (category, criteria) given."""
    return Request(
        agency="ncb",
        agency_kind=AgencyKind.NCB,
        sub="ncb/1",
        purpose=purpose,
        case=None,
        checks=tuple(
            Check(id=str(i), category=c, criteria=crit) for i, (c, crit) in enumerate(checks)
        ),
    )


async def ask(
    net: dict[str, DemoNode], src: str, checks: list[tuple[Category, dict[str, Any]]]
) -> dict[str, Any]:
    request = ncb_request(*checks)
    async with net[src].node.desk() as desk:
        ex = await desk.ask(request, "DE")
    return {r.check: r for r in ex.answer.results}


def on_databases(db_url: DatabaseUrl) -> Callable[[str, Path], None]:
    """`configure`, with each node's records and enquiry log in databases of the backend."""

    def configure_with(node_id: str, directory: Path) -> None:
        configure(node_id, directory)
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        config["databases"] = {
            "records": db_url(f"{node_id}_records"),
            "enquiries": db_url(f"{node_id}_enquiries"),
        }
        path.write_text(yaml.safe_dump(config))

    return configure_with
