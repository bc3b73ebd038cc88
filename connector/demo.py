"""`ncb-connector demo`: a small network of nodes on loopback, with sample data and policies."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import random
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pycountry

from connector.crypto.jws import PublicKey
from connector.enquiries.entry import LoggedEntry, VerifyReport
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
from connector.protocol import Check, Criterion, HitClaims
from connector.records.fingerprints.iso19794 import write_2005, write_2011
from connector.records.fingerprints.synthetic import Distortion, impression
from connector.records.fingerprints.synthetic import finger as fingerprint_finger
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
            "id": f"{cc}-TD-26-0117",
            "document_number": f"{cc}1234567",
            "document_country": cc,
            "document_type": "P",
            "status": "stolen",
            "reported_on": "2026-03-14",
            "holder_name": "Jean Exemple",
            "remarks": "theft at home",
        },
        {
            "id": f"{cc}-TD-26-0342",
            "document_number": f"{cc}7654321",
            "document_country": cc,
            "document_type": "I",
            "status": "lost",
            "reported_on": "2026-07-02",
        },
        {
            "id": f"{cc}-TD-26-0951",
            "document_number": f"{cc}0000042",
            "document_country": cc,
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
            service = Service(
                node, shutdown_timeout=2.0, reread=functools.partial(load_settings, paths.config)
            )
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
    criteria: Mapping[str, Criterion],
    category: Category = Category.TRAVEL_DOCUMENTS,
) -> Exchange:
    request = Request(
        agency="ncb",
        agency_kind=AgencyKind.NCB,
        sub=f"ncb-{src.lower()}/duty",
        purpose=purpose,
        case=None,
        checks=(Check(id="1", category=category, criteria=criteria),),
    )
    async with nodes[src].node.desk() as desk:
        return await desk.ask(request, dst)


DNA_POLICY = """\
# Demo: DNA profiles, Prüm's way. Hit or no hit for any Schengen investigation, with
# the match (full or near, and where) from `summary` on; a daily budget per peer.
inbound:
  - name: DNA profiles for Schengen investigations
    from: [group:schengen]
    purposes: [criminal_investigation]
    categories: [dna_profiles]
    answer: summary
    rate: 500/day
outbound:
  - name: the NCB may ask about DNA profiles
    agency: ncb
    categories: [dna_profiles]
    to: "*"
"""

DEMO_STAIN = {
    "D3S1358": "15,16",
    "vWA": "17,18",
    "D8S1179": "13,14",
    "D21S11": "29,30",
    "D18S51": "14,16",
    "TH01": "6,9.3",
    "FGA": "21,22",
    "D1S1656": "12,15",
    "D2S441": "10,11",
    "D10S1248": "13,15",
    "D12S391": "18,20",
    "D22S1045": "15,16",
    "AMEL": "X,Y",
}
"""The crime-scene stain DE holds; FR's profile of a suspect differs from it at FGA."""


def _demo_dna(nodes: dict[str, DemoNode]) -> None:
    """DE holds a stain from an open case."""
    row = {"id": "DE-DNA-26-0007", "case_reference": "DE-K-2026-44", "loci": DEMO_STAIN}
    store = nodes["DE"].node.open_records()
    try:
        import_stream(
            store, io.BytesIO(orjson.dumps(row)), category=Category.DNA_PROFILES, fmt="ndjson"
        )
    finally:
        store.close()


FINGERPRINT_POLICY = """\
# Demo: fingerprints, Prüm's way. Candidates for a human examiner, with the finger and
# the bozorth3 score from `summary` on; a daily budget per peer.
inbound:
  - name: fingerprints for Schengen investigations
    from: [group:schengen]
    purposes: [criminal_investigation]
    categories: [fingerprints]
    answer: summary
    rate: 100/day
outbound:
  - name: the NCB may ask about fingerprints
    agency: ncb
    categories: [fingerprints]
    to: "*"
"""

DEMO_FINGER = 2
"""The finger DE holds a print of: ISO/IEC 19794-2 position 2, the right index."""


def demo_print(impression_no: int, *, version: str = "2005") -> str:
    """Base64 of an ISO/IEC 19794-2 record of one impression of the demo's synthetic right
    index finger (the same finger every time; each impression turned, moved and distorted
    a little, as two real impressions are)."""
    true = fingerprint_finger(random.Random(1874), finger_position=DEMO_FINGER)
    mild = Distortion(rotation=8, shift=15, elastic=2, jitter=1, angle_jitter=1, drop=0.05)
    view = impression(random.Random(impression_no), true, mild)
    data = write_2005([view]) if version == "2005" else write_2011([view])
    return base64.b64encode(data).decode("ascii")


def _demo_fingerprints(nodes: dict[str, DemoNode]) -> None:
    """DE holds a print taken at an arrest."""
    row = {"id": "DE-FP-26-0031", "case_reference": "DE-K-2026-51", "template": demo_print(0)}
    store = nodes["DE"].node.open_records()
    try:
        import_stream(
            store, io.BytesIO(orjson.dumps(row)), category=Category.FINGERPRINTS, fmt="ndjson"
        )
    finally:
        store.close()


def _demo_configure(node_id: str, directory: Path) -> None:
    _demo_notifications(node_id, directory)
    (directory / "policies" / "30-dna.yaml").write_text(DNA_POLICY, encoding="utf-8")
    (directory / "policies" / "31-fingerprints.yaml").write_text(
        FINGERPRINT_POLICY, encoding="utf-8"
    )


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
        f"    record: travel_documents/{cc}-TD-26-0117\n    notify: [duty-desk]\n",
        encoding="utf-8",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Starting:
    """The nodes about to start, and the directory they live in."""

    nodes: tuple[str, ...]
    root: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeUp:
    node: str
    peer_port: int
    kid: str
    tls_fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """What the demo does next, in a sentence."""

    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    exchange: Exchange
    expected: str  # the status the scenario's one check should get

    @property
    def got(self) -> str:
        return self.exchange.answer.results[0].status


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """A scenario that could not be run to its end."""

    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FanoutTimed:
    attempt: str
    peers: int
    elapsed_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FanoutAnswered:
    """The fan-out's answers: those of the peers shown, and every peer's status."""

    shown: tuple[str, ...]
    outcomes: Mapping[str, PeerOutcome]
    peers: int
    statuses: tuple[str, ...]
    complete: bool

    @property
    def ok(self) -> bool:
        return self.statuses.count("hit") == 1 and self.complete


@dataclass(frozen=True, slots=True, kw_only=True)
class Notified:
    """A notice in a node's outbox: who asked, about which watched records, and why."""

    node: str
    channel: str
    state: str
    asker: str | None
    matched: tuple[tuple[str, str | None], ...]  # (record, the status it was answered with)
    why: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LogShown:
    """The first rows of a node's enquiry log, and whether its chain verified."""

    node: str
    rows: tuple[LoggedEntry, ...]
    more: int  # rows not shown
    config: Path | None  # where to list them all from: the node's config, when it is kept
    report: VerifyReport


@dataclass(frozen=True, slots=True, kw_only=True)
class QuietLogs:
    """The fan-out's other peers, whose logs all verified: (node, rows) each."""

    rows: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    failures: int


DemoEvent = (
    Starting
    | NodeUp
    | Section
    | Answered
    | Failed
    | FanoutTimed
    | FanoutAnswered
    | Notified
    | LogShown
    | QuietLogs
    | Finished
)


async def run_demo(*, nodes: int = 3, keep: Path | None = None) -> AsyncIterator[DemoEvent]:
    """The demo as it happens, for the command line to show."""
    ids = COUNTRIES[:nodes]
    with contextlib.ExitStack() as stack:
        root = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ncb-demo-")))
        yield Starting(nodes=tuple(ids), root=root)
        async with network(root, ids, _demo_configure) as net:
            _demo_dna(net)
            _demo_fingerprints(net)
            for n in net.values():
                yield NodeUp(
                    node=n.id,
                    peer_port=n.service.peer_port,
                    kid=n.node.signer.kid,
                    tls_fingerprint=n.node.tls_fingerprint,
                )
            scenarios: list[tuple[str, str, str, Purpose, Mapping[str, Criterion], str]] = [
                (
                    "FR asks DE about a stolen German passport (hit)",
                    "FR",
                    "DE",
                    Purpose.BORDER_CONTROL,
                    {"document_number": "de 123-4567", "document_country": "DE"},
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
                    {"document_number": "DE1234567", "document_country": "DE"},
                    "denied",
                ),
                (
                    "GB asks DE in a criminal investigation (summary level)",
                    "GB",
                    "DE",
                    Purpose.CRIMINAL_INVESTIGATION,
                    {"document_number": "DE0000042", "document_country": "DE"},
                    "hit",
                ),
                (
                    "DE asks FR about a revoked French passport, letter O typed for zero (hit)",
                    "DE",
                    "FR",
                    Purpose.BORDER_CONTROL,
                    {"document_number": "fr-OOOO042", "document_country": "FR"},
                    "hit",
                ),
                (
                    "FR sends DE a suspect's DNA profile, one allele off a stain (near match)",
                    "FR",
                    "DE",
                    Purpose.CRIMINAL_INVESTIGATION,
                    {"loci": {**DEMO_STAIN, "FGA": "21,23", "AMEL": "X,Y"}},
                    "hit",
                ),
                (
                    "FR sends DE a suspect's right index print (a candidate for an examiner)",
                    "FR",
                    "DE",
                    Purpose.CRIMINAL_INVESTIGATION,
                    {"template": demo_print(1, version="2011"), "finger": DEMO_FINGER},
                    "hit",
                ),
            ]
            failures = 0
            for title, src, dst, purpose, criteria, expected in scenarios:
                yield Section(title=title)
                category = (
                    Category.DNA_PROFILES
                    if "loci" in criteria
                    else Category.FINGERPRINTS
                    if "template" in criteria
                    else Category.TRAVEL_DOCUMENTS
                )
                try:
                    exchange = await _ask(net, src, dst, purpose, criteria, category)
                except ConnectorError as exc:
                    yield Failed(detail=exc.detail)
                    failures += 1
                    continue
                answered = Answered(exchange=exchange, expected=expected)
                yield answered
                if answered.got != expected:
                    failures += 1
            if len(net) > 3:
                async for event in _fanout_scenario(net):
                    yield event
                    if isinstance(event, Failed) or (
                        isinstance(event, FanoutAnswered) and not event.ok
                    ):
                        failures += 1
            await asyncio.sleep(0.2)  # let the dispatchers deliver
            yield Section(title="Notifications: each node watches its own stolen passport")
            for n in net.values():
                box = Outbox.open(n.node.settings.enquiries_url)
                try:
                    notices = box.list()
                finally:
                    box.close()
                for row in notices:
                    body = row.notice.body
                    yield Notified(
                        node=n.id,
                        channel=row.notice.channel,
                        state=row.state,
                        asker=body.get("asked_by", {}).get("node"),
                        matched=tuple(
                            (m, c.get("status"))
                            for c in body.get("checks", [])
                            for m in c.get("matched", [])
                        ),
                        why=tuple(body.get("why_notified", [])),
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
                yield Section(title=f"{n.id}: enquiry log")
                shown = rows[:SHOWN_ROWS]
                yield LogShown(
                    node=n.id,
                    rows=tuple(shown),
                    more=len(rows) - len(shown),
                    config=root / n.id / "connector.yaml" if keep else None,
                    report=report,
                )
            if quiet:
                yield Section(title=f"The other {len(quiet)} nodes' enquiry logs")
                yield QuietLogs(rows=tuple(quiet))
        yield Finished(failures=failures)


async def _fanout_scenario(net: dict[str, DemoNode]) -> AsyncIterator[DemoEvent]:
    """FR's NCB desk checks one passport against every other node at once, through FR's
    local API with an agency token, as a border post's software would."""
    fr = net["FR"]
    s = fr.node.settings
    _, token = add_agency(
        s.state_path(s.federation.agencies_file), "ncb", AgencyKind.NCB, now=fr.node.clock()
    )
    peers = [n for n in net if n != "FR"]
    yield Section(
        title=f"FR's NCB checks a German passport number against all {len(peers)} peers at once"
    )
    body = {
        "purpose": "border_control",
        "sub": "desk-1",
        "deadline_ms": 3000,
        "checks": [
            {
                "id": "doc",
                "category": "travel_documents",
                "criteria": {"document_number": "DE1234567", "document_country": "DE"},
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
                yield Failed(detail=doc.get("detail"))
                return
            yield FanoutTimed(attempt=attempt, peers=len(peers), elapsed_ms=doc["elapsed_ms"])
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
    yield FanoutAnswered(
        shown=("DE", *[p for p in peers if p != "DE"][:9]),
        outcomes=outcomes,
        peers=len(peers),
        statuses=tuple(c["status"] for c in doc["checks"][0]["peers"]),
        complete=doc["complete"],
    )


__all__ = ["DemoEvent", "network", "run_demo"]
