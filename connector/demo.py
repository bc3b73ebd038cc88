"""`ncb-connector demo`: a small network of nodes on loopback, with sample data and policies."""

from __future__ import annotations

import asyncio
import contextlib
import io
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pycountry
from rich.console import Console
from rich.panel import Panel

from connector.cli.render import answer_table, enquiries_table, fanout_table
from connector.crypto.jws import PublicKey
from connector.errors import ConnectorError
from connector.node.init import init_node
from connector.node.node import Node
from connector.node.service import Service
from connector.notify.outbox import Outbox
from connector.outbound.agencies import add_agency
from connector.outbound.fanout import CheckOutcome, PeerOutcome
from connector.outbound.request import Request
from connector.peers.client import Exchange
from connector.peers.trust import Peer, PinnedKey, TrustStore, save_trust_store
from connector.protocol import Check, HitClaims
from connector.records.identifiers.mrz import check_digit
from connector.records.importer import import_stream
from connector.settings.config import load_settings
from connector.vocabulary import AgencyKind, Category, Purpose

SCHENGEN = [
    "AT",
    "BE",
    "CH",
    "CZ",
    "DE",
    "DK",
    "EE",
    "ES",
    "FI",
    "FR",
    "GR",
    "HR",
    "HU",
    "IS",
    "IT",
    "LI",
    "LT",
    "LU",
    "LV",
    "MT",
    "NL",
    "NO",
    "PL",
    "PT",
    "SE",
    "SI",
    "SK",
]
# The first three are the story; more nodes (demo --nodes N) join as further peers.
COUNTRIES = [
    "FR",
    "DE",
    "GB",
    "IT",
    "ES",
    "NL",
    "PL",
    "PT",
    "BE",
    "AT",
    "SE",
    "CZ",
    "GR",
    "FI",
    "DK",
    "IE",
    "HU",
    "RO",
    "BG",
    "HR",
    "SK",
    "SI",
    "LT",
    "LV",
    "EE",
    "LU",
    "MT",
    "CY",
    "NO",
    "CH",
    "IS",
    "LI",
    "US",
    "CA",
    "BR",
    "AR",
    "MX",
    "JP",
    "KR",
    "AU",
    "NZ",
    "IN",
    "ZA",
    "NG",
    "KE",
    "EG",
    "MA",
    "TR",
    "UA",
    "GE",
    "AM",
    "MD",
    "RS",
    "BA",
    "AL",
    "MK",
    "ME",
    "SG",
    "TH",
    "PH",
]
# demo --nodes N beyond these: every other ISO 3166-1 country, in code order (196 at most).
COUNTRIES += sorted(c.alpha_2 for c in pycountry.countries if c.alpha_2 not in COUNTRIES)
STORY = COUNTRIES[:3]  # the nodes whose logs the demo prints in full
SHOWN_ROWS = 12  # rows of a log printed; a fan-out to 195 peers logs 195


def demo_policy(node: str) -> str:
    return f"""\
# Demo policy of {node}. Copy and adapt: see docs/policies.md.
groups:
  schengen: [{", ".join(SCHENGEN)}]
inbound:
  - name: stolen documents for Schengen border checks
    from: [group:schengen]
    purposes: [border_control, criminal_investigation]
    categories: [travel_documents]
    answer: full
    redact: [remarks]
  - name: stolen documents, status only, for everyone else
    from: "*"
    purposes: [criminal_investigation]
    categories: [travel_documents]
    answer: summary
outbound:
  - name: the NCB may ask anyone about documents
    agency: ncb
    categories: [travel_documents]
    to: "*"
"""


def _mrz_td3(number: str, country3: str, surname: str, given: str) -> str:
    num = number.ljust(9, "<")
    birth, expiry, personal = "850312", "300101", "<" * 14
    line1 = f"P<{country3}{surname}<<{given}".ljust(44, "<")[:44]
    parts = (
        f"{num}{check_digit(num)}",
        f"{birth}{check_digit(birth)}",
        f"{expiry}{check_digit(expiry)}",
        f"{personal}{check_digit(personal)}",
    )
    composite = parts[0] + parts[1] + parts[2] + parts[3]
    line2 = f"{parts[0]}{country3}{parts[1]}M{parts[2]}{parts[3]}{check_digit(composite)}"
    return line1 + "\n" + line2


def sample_documents(node: str) -> list[dict[str, object]]:
    """A handful of stolen and lost documents each node holds."""
    cc = node[:2]
    return [
        # The NCB's own record references: stable, and saying nothing of the record.
        {
            "id": f"{cc}-P-{cc}1234567",
            "number": f"{cc}1234567",
            "country": cc,
            "document_type": "P",
            "status": "stolen",
            "reported_on": "2026-03-14",
            "holder_name": "Jean Exemple",
            "remarks": "theft at home",
        },
        {
            "id": f"{cc}-I-{cc}7654321",
            "number": f"{cc}7654321",
            "country": cc,
            "document_type": "I",
            "status": "lost",
            "reported_on": "2026-07-02",
        },
        {
            "id": f"{cc}-P-{cc}0000042",
            "number": f"{cc}0000042",
            "country": cc,
            "document_type": "P",
            "status": "revoked",
            "reported_on": "2025-11-20",
            "holder_name": "Erika Mustermann",
        },
    ]


@dataclass(slots=True)
class DemoNode:
    id: str
    node: Node
    service: Service


@contextlib.asynccontextmanager
async def network(
    root: Path,
    ids: list[str],
    configure: Callable[[str, Path], None] | None = None,
) -> AsyncIterator[dict[str, DemoNode]]:
    """Create, start and cross-trust one node per id; stops them all on exit. `configure`
    may edit each node's directory (config, policies) before it starts."""
    nodes: dict[str, DemoNode] = {}
    try:
        for node_id in ids:
            directory = root / node_id
            paths = init_node(directory, node=node_id, peer_port=0, local_port=0)
            (paths.policies / "10-demo.yaml").write_text(demo_policy(node_id), encoding="utf-8")
            if configure is not None:
                configure(node_id, directory)
            settings = load_settings(paths.config)
            node = Node.from_settings(settings)
            node.load_live()
            data = b"".join(orjson.dumps(r) + b"\n" for r in sample_documents(node_id))
            store = node.open_records()
            try:
                import_stream(
                    store, io.BytesIO(data), category=Category.TRAVEL_DOCUMENTS, fmt="ndjson"
                )
            finally:
                store.close()
            service = Service(node, shutdown_timeout=2.0)
            await service.start()
            nodes[node_id] = DemoNode(id=node_id, node=node, service=service)
        entries = {
            n.id: Peer(
                id=n.id,
                url=f"https://127.0.0.1:{n.service.peer_port}",
                keys=(PinnedKey(key=PublicKey(raw=n.node.signer.public.raw)),),
                tls_fingerprint=n.node.tls_fingerprint,
            )
            for n in nodes.values()
        }
        for n in nodes.values():
            trust = TrustStore.of(p for pid, p in entries.items() if pid != n.id)
            save_trust_store(n.node.live.peers_file, trust)
            n.node.live.reload()
        yield nodes
    finally:
        for n in nodes.values():
            await n.service.stop()


async def _ask(
    nodes: dict[str, DemoNode],
    src: str,
    dst: str,
    purpose: Purpose,
    criteria: Mapping[str, str | int | bool],
) -> Exchange:
    request = Request(
        agency="ncb",
        agency_kind=AgencyKind.NCB,
        sub=f"ncb-{src.lower()}/duty",
        purpose=purpose,
        case=None,
        checks=(Check(id="1", category=Category.TRAVEL_DOCUMENTS, criteria=criteria),),
    )
    async with nodes[src].node.desk() as desk:
        return await desk.ask(request, dst)


def _demo_notifications(node_id: str, directory: Path) -> None:
    """Each node watches its own stolen passport and is told through a log channel."""
    config = directory / "connector.yaml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + ("notifications:\n  channels:\n    duty-desk:\n      type: log\n"),
        encoding="utf-8",
    )
    cc = node_id[:2]
    (directory / "policies" / "20-watch.yaml").write_text(
        "# Tell the duty desk whenever anyone asks about our most wanted passport.\n"
        f"watch:\n  - name: the stolen {cc} passport\n"
        f"    record: travel_documents/{cc}-P-{cc}1234567\n    notify: [duty-desk]\n",
        encoding="utf-8",
    )


async def run_demo(console: Console, *, nodes: int = 3, keep: Path | None = None) -> int:
    ids = COUNTRIES[:nodes]
    with contextlib.ExitStack() as stack:
        root = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ncb-demo-")))
        console.print(
            Panel.fit(
                f"Starting {len(ids)} nodes on loopback ({', '.join(ids)}): own Ed25519 keys, "
                f"self-signed TLS pinned by fingerprint, own record store and enquiry log.\n"
                f"Working directory: {root}",
                title="ncb-connector demo",
            )
        )
        async with network(root, ids, _demo_notifications) as net:
            for n in net.values():
                console.print(
                    f"  {n.id}  https://127.0.0.1:{n.service.peer_port}  "
                    f"key {n.node.signer.kid[:16]}…  "
                    f"tls {n.node.tls_fingerprint[:23]}…"
                )
            scenarios = [
                (
                    "FR asks DE about a stolen German passport (hit)",
                    "FR",
                    "DE",
                    Purpose.BORDER_CONTROL,
                    {"number": "de 123-4567", "country": "DE"},
                    "hit",
                ),
                (
                    "FR scans the MRZ of a clean German passport (no hit)",
                    "FR",
                    "DE",
                    Purpose.BORDER_CONTROL,
                    {"mrz": _mrz_td3("C01X00T47", "D<<", "MUSTERMANN", "ERIKA")},
                    "no_hit",
                ),
                (
                    "GB, outside Schengen, asks DE for a border check (denied by policy)",
                    "GB",
                    "DE",
                    Purpose.BORDER_CONTROL,
                    {"number": "DE1234567", "country": "DE"},
                    "denied",
                ),
                (
                    "GB asks DE in a criminal investigation (summary level)",
                    "GB",
                    "DE",
                    Purpose.CRIMINAL_INVESTIGATION,
                    {"number": "DE0000042", "country": "DE"},
                    "hit",
                ),
                (
                    "DE asks FR about a revoked French passport, letter O typed for zero (hit)",
                    "DE",
                    "FR",
                    Purpose.BORDER_CONTROL,
                    {"number": "fr-OOOO042", "country": "FR"},
                    "hit",
                ),
            ]
            failures = 0
            for title, src, dst, purpose, criteria, expected in scenarios:
                console.rule(f"[bold]{title}")
                try:
                    exchange = await _ask(net, src, dst, purpose, criteria)
                except ConnectorError as exc:
                    console.print(f"[red]failed:[/] {exc.detail}")
                    failures += 1
                    continue
                console.print(answer_table(exchange))
                got = exchange.answer.results[0].status
                if got != expected:
                    console.print(f"[red]expected {expected}, got {got}[/]")
                    failures += 1
            if len(net) > 3:
                failures += await _fanout_scenario(console, net)
            await asyncio.sleep(0.2)  # let the dispatchers deliver
            console.rule("[bold]Notifications: each node watches its own stolen passport")
            for n in net.values():
                box = Outbox.open(n.node.settings.enquiries_url)
                try:
                    notices = box.list()
                finally:
                    box.close()
                for row in notices:
                    body = row.notice.body
                    asker = body.get("asked_by", {}).get("node")
                    checks = body.get("checks", [])
                    about = ", ".join(
                        f"{m} (answered: {c.get('status')})"
                        for c in checks
                        for m in c.get("matched", [])
                    )
                    console.print(
                        f"  {n.id} → {row.notice.channel} ({row.state}): {asker} asked "
                        f"about {about}; why: {', '.join(body.get('why_notified', []))}"
                    )
            quiet: list[tuple[str, int]] = []
            for i, n in enumerate(net.values()):
                enquiry_log = n.node.open_enquiry_log()
                try:
                    rows = enquiry_log.list()
                    report = enquiry_log.verify()
                finally:
                    enquiry_log.close()
                failures += 0 if report.ok else 1
                if i >= len(STORY) and report.ok:
                    quiet.append((n.id, report.rows))  # the fan-out's peers: one line for all
                    continue
                console.rule(f"[bold]{n.id}: enquiry log")
                shown = rows[:SHOWN_ROWS]
                console.print(enquiries_table(shown) if rows else "  (no enquiries)")
                if len(rows) > len(shown):
                    where = (
                        f"`ncb-connector enquiries list --config {root / n.id}/connector.yaml`"
                        if keep
                        else "run with --keep to list them"
                    )
                    console.print(f"  … and {len(rows) - len(shown)} more ({where})")
                status = "[green]chain verified[/]" if report.ok else f"[red]{report.problem}[/]"
                console.print(f"  {report.rows} row(s), {status}")
            if quiet:
                console.rule(f"[bold]The other {len(quiet)} nodes' enquiry logs")
                low, high = min(r for _, r in quiet), max(r for _, r in quiet)
                console.print(
                    f"  {', '.join(node for node, _ in quiet)}: "
                    f"{low if low == high else f'{low} to {high}'} row(s) each, "
                    f"[green]every chain verified[/]"
                )
        console.rule()
        console.print(
            "[green]demo complete[/]" if not failures else f"[red]{failures} scenario(s) failed[/]"
        )
        return 0 if not failures else 1


async def _fanout_scenario(console: Console, net: dict[str, DemoNode]) -> int:
    """FR's NCB desk checks one passport against every other node at once, through FR's
    local API with an agency token, as a border post's software would."""
    fr = net["FR"]
    s = fr.node.settings
    _, token = add_agency(
        s.state_path(s.federation.agencies_file), "ncb", AgencyKind.NCB, now=fr.node.clock()
    )
    peers = [n for n in net if n != "FR"]
    console.rule(
        f"[bold]FR's NCB checks a German passport number against all {len(peers)} peers at once"
    )
    body = {
        "purpose": "border_control",
        "sub": "desk-1",
        "deadline_ms": 3000,
        "checks": [
            {
                "id": "doc",
                "category": "travel_documents",
                "criteria": {"number": "DE1234567", "country": "DE"},
            }
        ],
    }
    url = f"http://127.0.0.1:{fr.service.local_port}/local/v1/checks"
    async with aiohttp.ClientSession() as session:
        for attempt in ("first (new connections)", "second (connections reused)"):
            async with session.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                doc = await resp.json()
            if resp.status != 200:
                console.print(f"[red]failed:[/] {doc.get('detail')}")
                return 1
            console.print(f"  {attempt}: {len(peers)} peers answered in {doc['elapsed_ms']:.0f} ms")
    outcomes = {
        p["peer"]: PeerOutcome(
            peer=p["peer"],
            status=p["status"],
            elapsed_ms=p["elapsed_ms"],
            detail=p["detail"],
            enquiry=p["enquiry"],
            checks=(
                CheckOutcome(
                    check="doc",
                    status=c["status"],
                    level=c.get("level"),
                    hits=tuple(HitClaims.model_validate(h) for h in c["hits"]),
                    reason=c.get("reason"),
                ),
            ),
        )
        for p, c in zip(doc["peers"], doc["checks"][0]["peers"], strict=True)
    }
    shown = ["DE", *[p for p in peers if p != "DE"][:9]]
    console.print(
        fanout_table(["doc"], shown, outcomes, title=f"first {len(shown)} of {len(peers)} peers")
    )
    statuses = [c["status"] for c in doc["checks"][0]["peers"]]
    console.print("  " + ", ".join(f"{statuses.count(x)} {x}" for x in sorted(set(statuses))))
    return 0 if statuses.count("hit") == 1 and doc["complete"] else 1


__all__ = ["network", "run_demo"]
