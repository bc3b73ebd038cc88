"""Agencies check many peers at once through the local API: real nodes, keys, TLS and logs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from support.docs import abridged, example, keys_shown
from support.openapi import schema

from connector.crypto.jws import Signer, SigningKey
from connector.demo import DemoNode, _mrz_td3, network
from connector.outbound.agencies import add_agency, rotate_agency, set_agency_enabled
from connector.peers.trust import Peer, PinnedKey, TrustStore, save_trust_store
from connector.protocol import (
    JOSE_MEDIA_TYPE,
    CheckResult,
    digest,
    open_envelope,
    parse_query,
    sign_answer,
)
from connector.vocabulary import AgencyKind, AnswerLevel

AGENCY_POLICY = """\
outbound:
  - name: border police, documents only
    agency: border-police
    categories: [travel_documents]
    to: "*"
  - name: the NCB desk, everything
    agency: ncb-desk
    to: "*"
"""

DENY_ALL = "# This node answers nobody: every check is denied by default.\n"


def _configure(node_id: str, directory: Path) -> None:
    if node_id == "FR":
        (directory / "policies" / "20-agencies.yaml").write_text(AGENCY_POLICY)
    if node_id == "IT":
        (directory / "policies" / "10-demo.yaml").write_text(DENY_ALL)


async def _never_in_time(request: web.Request) -> web.Response:
    await asyncio.sleep(3)
    return web.Response(status=504)


@pytest.fixture
async def slow_peer() -> AsyncIterator[int]:
    """A small real server on loopback that answers long after any deadline."""
    app = web.Application()
    app.router.add_post("/v1/query", _never_in_time)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(runner.addresses[0][1])
    await runner.cleanup()


class Fed:
    def __init__(self, net: dict[str, DemoNode], session: aiohttp.ClientSession) -> None:
        self.net = net
        self.session = session
        self.fr = net["FR"]
        s = self.fr.node.settings
        self.agencies_file = s.state_path(s.federation.agencies_file)
        self.url = f"http://127.0.0.1:{self.fr.service.local_port}/local/v1"

    def add(self, agency: str, kind: AgencyKind) -> str:
        return add_agency(self.agencies_file, agency, kind, now=time.time())[1]

    async def post(
        self,
        body: dict[str, Any],
        token: str | None,
        *,
        path: str = "/checks",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        async with self.session.post(self.url + path, data=orjson.dumps(body), headers=h) as resp:
            raw = await resp.read()
            if resp.content_type == "application/x-ndjson":
                return resp.status, [orjson.loads(line) for line in raw.splitlines()]
            return resp.status, orjson.loads(raw) if raw else None

    def out_rows(self) -> list[Any]:
        log = self.fr.node.open_enquiry_log()
        try:
            return [r.entry for r in log.list(direction="out")]
        finally:
            log.close()


@pytest.fixture
async def fed(tmp_path: Path, slow_peer: int, session: aiohttp.ClientSession) -> AsyncIterator[Fed]:
    """FR asks: DE holds the stolen passport, NL does not, IT denies everyone, ES is down,
    PT answers too late, PL's answers are signed by a key FR does not pin for PL."""
    async with network(tmp_path, ["FR", "DE", "NL", "IT", "ES", "PL"], _configure) as net:
        fr = net["FR"].node
        trust = fr.live.trust
        pl = trust.peers["PL"]
        impostor = SigningKey.generate().public
        late = Peer(
            id="PT",
            url=f"http://127.0.0.1:{slow_peer}",
            insecure=True,
            keys=(PinnedKey(key=SigningKey.generate().public),),
        )
        trust = trust.with_peer(
            Peer(
                id="PL",
                url=pl.url,
                keys=(PinnedKey(key=impostor),),
                tls_fingerprint=pl.tls_fingerprint,
            )
        ).with_peer(late)
        save_trust_store(fr.live.peers_file, trust)
        fr.live.reload()
        await net["ES"].service.stop()
        yield Fed(net, session)


DOC_CHECK = {
    "id": "doc",
    "category": "travel_documents",
    "criteria": {"number": "DE 123-4567", "country": "DE"},
}


async def test_check_across_peers_every_outcome(fed: Fed) -> None:
    token = fed.add("border-police", AgencyKind.BORDER)
    started = time.monotonic()
    status, doc = await fed.post(
        {"purpose": "border_control", "sub": "4711", "checks": [DOC_CHECK], "deadline_ms": 800},
        token,
    )
    elapsed = time.monotonic() - started
    assert status == 200, doc
    assert elapsed < 2.0  # the late peer did not hold the answer beyond the deadline
    (check,) = doc["checks"]
    assert check["national"]["status"] == "no_hit"
    by_peer = {p["peer"]: p for p in check["peers"]}
    assert {p: r["status"] for p, r in by_peer.items()} == {
        "DE": "hit",
        "ES": "unreachable",
        "IT": "denied",
        "NL": "no_hit",
        "PL": "error",
        "PT": "timeout",
    }
    (hit,) = by_peer["DE"]["hits"]
    assert hit["ref"] == "DE:travel_documents:DE-TD-26-0117"
    assert hit["record"]["status"] == "stolen"
    assert by_peer["IT"]["reason"] == "policy"
    # The impostor's answer is an error and shows nothing of what it said.
    assert by_peer["PL"]["hits"] == []
    assert "bad_answer" in by_peer["PL"]["reason"]
    assert doc["complete"] is False
    peers = {p["peer"]: p for p in doc["peers"]}
    de = peers["DE"]
    assert de["status"] == "answered"
    assert de["enquiry"]
    assert de["answer_digest"]
    # One outbound row per peer asked, with the peer's answer reference where there is one.
    rows = {e.peer: e for e in fed.out_rows()}
    assert set(rows) == {"DE", "NL", "IT", "ES", "PL", "PT"}
    assert rows["DE"].id == de["log_id"]
    assert rows["DE"].answer_digest == de["answer_digest"]
    assert rows["DE"].sub == "border-police/4711"
    assert rows["DE"].agency_kind == "border"
    assert rows["PL"].decision == "error"
    assert rows["PL"].error is not None
    assert rows["PT"].error is not None
    assert "peer_timeout" in rows["PT"].error
    # DE logged the same query: signed once for DE, by FR.
    de_log = fed.net["DE"].node.open_enquiry_log()
    try:
        (inbound,) = de_log.list(direction="in")
    finally:
        de_log.close()
    assert inbound.entry.jti == rows["DE"].jti
    assert inbound.entry.id == de["enquiry"]


async def test_response_and_stream_match_the_openapi_file(fed: Fed) -> None:
    async with fed.session.get(fed.url + "/openapi.json") as resp:
        assert resp.status == 200
        openapi = await resp.json()
    assert openapi["openapi"].startswith("3.1")
    token = fed.add("border-police", AgencyKind.BORDER)
    body = {
        "purpose": "border_control",
        "sub": "4711",
        "checks": [DOC_CHECK],
        "peers": ["DE", "NL", "IT"],
        "deadline_ms": 2000,
    }
    status, doc = await fed.post(body, token)
    assert status == 200
    schema("ChecksResponse", openapi).validate(doc)
    assert doc["complete"] is True
    status, events = await fed.post(body, token, path="/checks/stream")
    assert status == 200
    assert [e["event"] for e in events] == ["accepted", "national", "peer", "peer", "peer", "done"]
    validator = schema("StreamEvent", openapi)
    for event in events:
        validator.validate(event)
    assert {e["peer"]: e["results"][0]["status"] for e in events if e["event"] == "peer"} == {
        "DE": "hit",
        "NL": "no_hit",
        "IT": "denied",
    }
    status, problem = await fed.post(body, None)
    assert status == 401
    schema("Problem", openapi).validate(problem)
    # Server-sent events carry the same events.
    async with fed.session.post(
        fed.url + "/checks/stream",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
    ) as resp:
        assert resp.content_type == "text/event-stream"
        text = await resp.text()
    assert [line[7:] for line in text.splitlines() if line.startswith("event: ")] == [
        "accepted",
        "national",
        "peer",
        "peer",
        "peer",
        "done",
    ]


async def test_tokens_missing_wrong_disabled_rotated(fed: Fed) -> None:
    token = fed.add("border-police", AgencyKind.BORDER)
    body = {"purpose": "border_control", "sub": "1", "checks": [DOC_CHECK], "peers": ["DE"]}
    status, problem = await fed.post(body, None)
    assert (status, problem["code"]) == (401, "unauthorized")
    status, problem = await fed.post(body, token[:-4] + "AAAA")
    assert (status, problem["code"]) == (401, "unauthorized")
    status, problem = await fed.post(body, "ncb.customs." + token.rsplit(".", 1)[1])
    assert status == 401
    status, _ = await fed.post(body, token)
    assert status == 200
    # Disabled on the running node: refused at the very next request, no restart.
    set_agency_enabled(fed.agencies_file, "border-police", False, now=time.time())
    status, problem = await fed.post(body, token)
    assert (status, problem["code"]) == (401, "unauthorized")
    assert "disabled" in problem["detail"]
    set_agency_enabled(fed.agencies_file, "border-police", True, now=time.time())
    _, new = rotate_agency(fed.agencies_file, "border-police", now=time.time())
    assert (await fed.post(body, token))[0] == 401
    assert (await fed.post(body, new))[0] == 200


async def test_category_the_outbound_rule_does_not_allow(fed: Fed) -> None:
    token = fed.add("border-police", AgencyKind.BORDER)
    body = {
        "purpose": "vehicle_check",
        "sub": "1",
        "checks": [{"id": "car", "category": "vehicles", "criteria": {"plate": "AB-123-CD"}}],
    }
    status, problem = await fed.post(body, token)
    assert (status, problem["code"]) == (403, "outbound_denied")
    assert fed.out_rows() == []  # nothing was sent anywhere
    # An agency with no outbound rule at all is refused the same way.
    other = fed.add("customs", AgencyKind.CUSTOMS)
    status, problem = await fed.post({**body, "checks": [DOC_CHECK]}, other)
    assert (status, problem["code"]) == (403, "outbound_denied")


async def test_bad_requests_are_problems(fed: Fed) -> None:
    token = fed.add("border-police", AgencyKind.BORDER)
    status, problem = await fed.post({"purpose": "border_control", "sub": "1"}, token)
    assert (status, problem["code"]) == (422, "invalid_request")
    status, problem = await fed.post(
        {"purpose": "border_control", "sub": "1", "checks": [DOC_CHECK], "peers": ["US"]}, token
    )
    assert (status, problem["code"]) == (422, "invalid_request")
    bad_mrz = {"id": "m", "category": "travel_documents", "criteria": {"mrz": "P<D<<X" * 3}}
    status, problem = await fed.post(
        {"purpose": "border_control", "sub": "1", "checks": [bad_mrz]}, token
    )
    assert (status, problem["code"]) == (422, "invalid_criteria")
    assert problem["field"].startswith("checks.0.criteria.mrz")


async def test_subject_check_is_split_and_sent_once_per_peer(fed: Fed) -> None:
    token = fed.add("ncb-desk", AgencyKind.NCB)
    mrz = _mrz_td3("DE1234567", "D<<", "EXEMPLE", "JEAN")
    status, doc = await fed.post(
        {
            "purpose": "border_control",
            "sub": "desk-7",
            "peers": ["DE", "NL"],
            "subject": {
                "mrz": mrz,
                "first_name": "Jean",
                "last_name": "Exemple",
                "birth_date": "1985-03-12",
                "plate": "AB-123-CD",
                "plate_country": "FR",
            },
        },
        token,
    )
    assert status == 200, doc
    checks = {c["id"]: c for c in doc["checks"]}
    assert {k: c["category"] for k, c in checks.items()} == {
        "document": "travel_documents",
        "wanted_person": "wanted_persons",
        "terrorism_suspect": "terrorism_suspects",
        "vehicle": "vehicles",
    }
    assert checks["wanted_person"]["criteria"]["document_number"] == "DE1234567"
    de = {c["id"]: next(p for p in c["peers"] if p["peer"] == "DE") for c in doc["checks"]}
    assert de["document"]["status"] == "hit"
    assert de["vehicle"]["status"] == "denied"  # DE's policy answers documents only
    de_log = fed.net["DE"].node.open_enquiry_log()
    try:
        (row,) = de_log.list(direction="in")  # one query to DE carrying all four checks
    finally:
        de_log.close()
    assert [c["category"] for c in row.entry.checks] == [
        "travel_documents",
        "wanted_persons",
        "terrorism_suspects",
        "vehicles",
    ]


async def test_a_dead_peer_trips_its_breaker(fed: Fed) -> None:
    token = fed.add("border-police", AgencyKind.BORDER)
    body = {"purpose": "border_control", "sub": "1", "checks": [DOC_CHECK], "peers": ["ES"]}
    reasons = []
    for _ in range(5):
        status, doc = await fed.post(body, token)
        assert status == 200
        reasons.append(doc["checks"][0]["peers"][0]["reason"])
    assert reasons[0] != "circuit_open"
    assert reasons[-2:] == ["circuit_open", "circuit_open"]
    # A skipped peer is not asked, so nothing is signed or logged for it.
    assert len(fed.out_rows()) == reasons.index("circuit_open") <= 3


STAGGER_S = 0.003


@contextlib.asynccontextmanager
async def staggered_peers(client: Peer, n: int) -> AsyncIterator[list[Peer]]:
    """n real peers on loopback, each verifying the query and signing its answer as a node
    does, the k-th answering k × STAGGER_S later than the first."""
    signers = [Signer(SigningKey.generate()) for _ in range(n)]
    ports: dict[int, int] = {}
    ids = [f"Q{chr(65 + k)}" for k in range(n)]

    async def query(request: web.Request) -> web.Response:
        k = ports[request.transport.get_extra_info("sockname")[1]]  # type: ignore[union-attr]
        token = await request.read()
        now = time.time()
        envelope = open_envelope(
            token,
            resolve_kid=lambda kid: (
                (client.id, client.keys[0].key) if kid == client.keys[0].key.kid else None
            ),
            me=ids[k],
            now=now,
        )
        q = parse_query(envelope)
        await asyncio.sleep(k * STAGGER_S)
        answer = sign_answer(
            signer=signers[k],
            iss=ids[k],
            aud=q.iss,
            in_reply_to=q.jti,
            query_digest=digest(token),
            enquiry=f"01TEST{k:020d}",
            now=now,
            results=tuple(
                CheckResult(check=c.id, status="no_hit", level=AnswerLevel.FULL) for c in q.checks
            ),
        )
        return web.Response(body=answer, content_type=JOSE_MEDIA_TYPE)

    app = web.Application()
    app.router.add_post("/v1/query", query)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    peers = []
    for k in range(n):
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[-1][1])
        ports[port] = k
        peers.append(
            Peer(
                id=ids[k],
                url=f"http://127.0.0.1:{port}",
                insecure=True,
                keys=(PinnedKey(key=signers[k].public),),
            )
        )
    try:
        yield peers
    finally:
        await runner.cleanup()


async def test_a_fan_out_shares_a_few_commits(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Every peer asked gets its own row, committed before its result is reported, but the
    rows of one fan-out share commits even when the answers trickle in: each commit stops
    the event loop for an fsync."""
    async with network(tmp_path, ["FR"], _configure) as net:
        fr = net["FR"].node
        me = Peer(
            id="FR",
            url="http://127.0.0.1:1",
            insecure=True,
            keys=(PinnedKey(key=fr.signer.public),),
        )
        async with staggered_peers(me, 8) as peers:
            save_trust_store(fr.live.peers_file, TrustStore.of(peers))
            fr.live.reload()
            fed = Fed(net, session)
            token = fed.add("ncb-desk", AgencyKind.NCB)
            enquiry_log = net["FR"].service.enquiry_log
            before = (enquiry_log.stats.flushes, enquiry_log.stats.rows)
            status, doc = await fed.post(
                {"purpose": "criminal_investigation", "sub": "desk-1", "checks": [DOC_CHECK]}, token
            )
            assert status == 200, doc
            assert [p["status"] for p in doc["peers"]] == ["answered"] * 8
            elapsed = max(p["elapsed_ms"] for p in doc["peers"]) - min(
                p["elapsed_ms"] for p in doc["peers"]
            )
            flushes = enquiry_log.stats.flushes - before[0]
            assert enquiry_log.stats.rows - before[1] == 8
            # The answers came one every 3 ms, slower than the log's own 2 ms window; the
            # fan-out's rows still shared commits.
            assert elapsed > 5 * STAGGER_S * 1000
            assert flushes <= 3, enquiry_log.stats.batch_sizes[-flushes:]
            assert {p["log_id"] for p in doc["peers"]} == {e.id for e in fed.out_rows()}


async def test_the_documented_request_and_answers_are_what_the_api_gives(fed: Fed) -> None:
    """docs/local-api.md's request, sent as it is; its response and stream, abridged there,
    show only members the real ones have, events in the real order."""
    request = example("local-api.md", "checks-request")
    body = orjson.loads(request.split("-d '", 1)[1].rsplit("'", 1)[0])
    token = fed.add("border-police", AgencyKind.BORDER)
    status, doc = await fed.post(body, token)
    assert status == 200, doc
    keys_shown(abridged(example("local-api.md", "checks-response")), doc, "response")
    assert [c["id"] for c in doc["checks"]] == [
        "document",
        "wanted_person",
        "terrorism_suspect",
        "vehicle",
    ]  # an MRZ names a person too (local-api.md)
    status, events = await fed.post(body, token, path="/checks/stream")
    assert status == 200
    shown = [
        abridged(line)
        for line in example("local-api.md", "checks-stream").splitlines()
        if line != "…"
    ]
    real = {e["event"]: e for e in events}
    assert [e["event"] for e in shown] == ["accepted", "national", "peer", "done"]
    assert [e["event"] for e in events][:2] == ["accepted", "national"]
    assert events[-1]["event"] == "done"
    for event in shown:
        keys_shown(event, real[event["event"]], event["event"])
