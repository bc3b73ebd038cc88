"""Wire v1 keeps its first names: queries and answers as a peer of the first releases reads them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from support.network import ncb_request
from support.processes import cli

from connector.cli.common import EXIT_HIT
from connector.crypto.jws import Signer, SigningKey, parse_compact
from connector.demo import DemoNode
from connector.outbound.agencies import add_agency
from connector.peers.trust import Peer, PinnedKey, fingerprint_bytes, save_trust_store
from connector.protocol import (
    TYP_ANSWER,
    TYP_QUERY,
    Check,
    digest,
    make_query,
    new_jti,
    open_released,
    sign_query,
    sign_released,
)
from connector.records.criteria import parse_criteria
from connector.vocabulary import (
    AgencyKind,
    Category,
    Purpose,
    current_names,
    wire_criteria,
    wire_record,
)

# What a responder of the first releases allows in a travel document's criteria (§11:
# queries are closed, anything else is a 422).
V1_DOCUMENT_CRITERIA = frozenset({"number", "country", "document_type", "mrz"})


def _payload(token: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(parse_compact(token).payload)
    return payload


@dataclass(kw_only=True)
class StandIn:
    """NL: another team's node on loopback, with a key of its own. `closed` refuses, as a v1
    responder does, a travel document's criterion of another name; `record` is the names its
    answers give a document's number and country (v1's, or today's from a newer peer)."""

    fr: Signer
    closed: bool
    record: Mapping[str, str]
    signer: Signer = field(default_factory=lambda: Signer(SigningKey.generate()))
    received: list[bytes] = field(default_factory=list)
    number: str = "NL1234567"

    async def query(self, request: web.Request) -> web.Response:
        token = await request.read()
        self.received.append(token)
        jws = parse_compact(token)
        jws.verify_with(self.fr.public)
        claims = orjson.loads(jws.payload)
        for check in claims["checks"]:
            unknown = sorted(set(check["criteria"]) - V1_DOCUMENT_CRITERIA)
            if self.closed and check["category"] == "travel_documents" and unknown:
                problem = {"code": "invalid_criteria", "detail": f"unknown member {unknown[0]}"}
                return web.json_response(problem, status=422)
        fields = {"document_number": self.number, "document_country": "NL", "status": "stolen"}
        answer = {
            "iss": "NL",
            "aud": claims["iss"],
            "iat": int(time.time()),
            "jti": new_jti(),
            "in_reply_to": claims["jti"],
            "query_digest": digest(token),
            "enquiry": "01JNL0000000000000000000AB",
            "results": [
                {
                    "check": c["id"],
                    "status": "hit",
                    "level": "full",
                    "hits": [
                        {
                            "ref": "NL:travel_documents:k7Qx2",
                            "score": 1.0,
                            "record": {self.record.get(k, k): v for k, v in fields.items()},
                        }
                    ],
                }
                for c in claims["checks"]
            ],
        }
        body = self.signer.sign_compact(orjson.dumps(answer), typ=TYP_ANSWER)
        return web.Response(body=body, content_type="application/jose")


V1_RECORD = {"document_number": "number", "document_country": "country"}


async def _serve(stand_in: StandIn, fr: DemoNode) -> AsyncIterator[web.AppRunner]:
    app = web.Application()
    app.router.add_post("/v1/query", stand_in.query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    node = fr.node
    trust = node.live.trust.with_peer(
        Peer(
            id="NL",
            url=f"http://127.0.0.1:{port}",
            insecure=True,
            keys=(PinnedKey(key=stand_in.signer.public),),
        )
    )
    save_trust_store(node.live.peers_file, trust)
    node.live.reload()
    try:
        yield runner
    finally:
        await runner.cleanup()


@pytest.fixture(params=["v1", "newer"])
async def nl(request: pytest.FixtureRequest, pair: dict[str, DemoNode]) -> AsyncIterator[StandIn]:
    """A v1-era peer (closed criteria, records under v1 names) or a newer one (today's)."""
    v1 = request.param == "v1"
    stand_in = StandIn(fr=pair["FR"].node.signer, closed=v1, record=V1_RECORD if v1 else {})
    async for _ in _serve(stand_in, pair["FR"]):
        yield stand_in


def test_the_codec_names_v1_and_reads_both() -> None:
    docs, vehicles, persons = (
        Category.TRAVEL_DOCUMENTS,
        Category.VEHICLES,
        Category.WANTED_PERSONS,
    )
    today = {"document_number": "X1", "document_country": "DE", "document_type": "P"}
    assert wire_criteria(docs, today) == {"number": "X1", "country": "DE", "document_type": "P"}
    assert wire_criteria(vehicles, {"plate": "B-XY 1", "plate_country": "DE"}) == {
        "plate": "B-XY 1",
        "country": "DE",
    }
    # v1 asked persons by `document_number` and answered with `document_numbers`.
    assert wire_criteria(persons, {"document_number": "75 1"}) == {"document_number": "75 1"}
    assert wire_record(persons, {"document_number": ["75 1"]}) == {"document_numbers": ["75 1"]}
    # v1's vehicle records already said `plate_country`.
    held = {"plate": "B-XY 1", "plate_country": "DE"}
    assert wire_record(vehicles, held) is held
    for category, record in ((docs, today), (persons, {"document_number": ["75 1"]})):
        assert current_names(category, wire_record(category, record)) == record
        assert current_names(category, record) is record


@pytest.mark.parametrize(
    "criteria",
    [
        {"number": "de 123-4567", "country": "DE"},
        {"document_number": "de 123-4567", "document_country": "DE"},
    ],
)
async def test_our_query_says_v1_names_whichever_the_agency_used(
    pair: dict[str, DemoNode], criteria: dict[str, str]
) -> None:
    request = ncb_request((Category.TRAVEL_DOCUMENTS, criteria))
    async with pair["FR"].node.desk() as desk:
        ex = await desk.ask(request, "DE")
    # The signed query DE received: what a v1 peer reads.
    sent = _payload(ex.query_token)["checks"][0]["criteria"]
    assert sent == {"number": "de 123-4567", "country": "DE"}
    (result,) = ex.answer.results
    assert result.status == "hit"
    # DE's signed answer names the record's members as v1 did; FR reads today's names.
    (raw_hit,) = _payload(ex.answer_token)["results"][0]["hits"]
    assert (raw_hit["record"]["number"], raw_hit["record"]["country"]) == ("DE1234567", "DE")
    assert "document_number" not in raw_hit["record"]
    assert result.hits[0].record["document_number"] == "DE1234567"
    assert result.hits[0].record["document_country"] == "DE"


@pytest.mark.parametrize(
    ("number", "country"), [("number", "country"), ("document_number", "document_country")]
)
async def test_a_responder_accepts_both_spellings_on_the_wire(
    pair: dict[str, DemoNode], session: aiohttp.ClientSession, number: str, country: str
) -> None:
    de, fr = pair["DE"], pair["FR"].node
    now = int(time.time())
    claims = {
        "iss": "FR",
        "aud": "DE",
        "iat": now,
        "exp": now + 60,
        "jti": new_jti(),
        "sub": "ncb/1",
        "agency_kind": "ncb",
        "purpose": "border_control",
        "checks": [
            {
                "id": "a",
                "category": "travel_documents",
                "criteria": {number: "de 123-4567", country: "DE"},
            }
        ],
    }
    token = fr.signer.sign_compact(orjson.dumps(claims), typ=TYP_QUERY)
    async with session.post(
        f"https://127.0.0.1:{de.service.peer_port}/v1/query",
        data=token,
        headers={"Content-Type": "application/jose"},
        ssl=aiohttp.Fingerprint(fingerprint_bytes(de.node.tls_fingerprint)),
    ) as resp:
        assert resp.status == 200, await resp.text()
        answer = _payload(await resp.read())
    (result,) = answer["results"]
    assert result["status"] == "hit"
    assert result["hits"][0]["record"]["number"] == "DE1234567"


def test_a_vehicle_check_names_the_plate_country_as_v1_did() -> None:
    signer = Signer(SigningKey.generate())
    check = Check(
        id="v", category=Category.VEHICLES, criteria={"plate": "B-XY 1", "plate_country": "DE"}
    )
    query = make_query(
        iss="FR",
        aud="DE",
        sub="ncb/1",
        agency_kind=AgencyKind.NCB,
        purpose=Purpose.VEHICLE_CHECK,
        checks=(check,),
    )
    sent = _payload(sign_query(query, signer))["checks"][0]["criteria"]
    assert sent == {"plate": "B-XY 1", "country": "DE"}
    assert parse_criteria(Category.VEHICLES, sent) == parse_criteria(
        Category.VEHICLES, check.criteria
    )


async def test_a_peer_of_either_era_answers_and_is_read_by_todays_names(
    pair: dict[str, DemoNode], nl: StandIn, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    fr = pair["FR"]
    request = ncb_request(
        (Category.TRAVEL_DOCUMENTS, {"document_number": nl.number, "document_country": "NL"})
    )
    async with fr.node.desk() as desk:
        ex = await desk.ask(request, "NL")
    assert _payload(nl.received[-1])["checks"][0]["criteria"] == {
        "number": nl.number,
        "country": "NL",
    }
    (result,) = ex.answer.results
    assert result.status == "hit"
    assert result.hits[0].record == {
        "document_number": nl.number,
        "document_country": "NL",
        "status": "stolen",
    }

    # The operator's `query`, a process of its own on FR's configuration.
    config = tmp_path / "FR" / "connector.yaml"
    ask = (
        "query",
        "--peer",
        "NL",
        "--category",
        "travel_documents",
        "--document-number",
        nl.number,
        "--document-country",
        "NL",
    )
    shown = await asyncio.to_thread(cli, *ask, config=config, check=False)
    assert shown.returncode == EXIT_HIT, shown.stdout + shown.stderr
    assert f"document_number={nl.number}" in shown.stdout, shown.stdout + shown.stderr
    assert "document_country=NL" in shown.stdout
    as_json = await asyncio.to_thread(cli, *ask, "--json", config=config, check=False)
    assert f'"document_number":"{nl.number}"' in as_json.stdout.replace(" ", "")

    # An agency asking through the local API.
    s = fr.node.settings
    token = add_agency(
        s.state_path(s.federation.agencies_file), "ncb", AgencyKind.NCB, now=time.time()
    )[1]
    body = {
        "purpose": "border_control",
        "sub": "1",
        "checks": [
            {
                "id": "d",
                "category": "travel_documents",
                "criteria": {"document_number": nl.number, "document_country": "NL"},
            }
        ],
        "peers": ["NL"],
    }
    async with session.post(
        f"http://127.0.0.1:{fr.service.local_port}/local/v1/checks",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        answered = await resp.json()
    assert resp.status == 200, answered
    text = orjson.dumps(answered).decode()
    assert f'"document_number":"{nl.number}"' in text
    assert '"number"' not in text


@pytest.mark.parametrize(("number", "field"), [("number", "number"), ("document_number", None)])
async def test_a_refusal_names_the_criterion_as_the_peer_spelled_it(
    pair: dict[str, DemoNode], session: aiohttp.ClientSession, number: str, field: str | None
) -> None:
    de, fr = pair["DE"], pair["FR"].node
    now = int(time.time())
    claims = {
        "iss": "FR",
        "aud": "DE",
        "iat": now,
        "exp": now + 60,
        "jti": new_jti(),
        "sub": "ncb/1",
        "agency_kind": "ncb",
        "purpose": "border_control",
        "checks": [{"id": "a", "category": "travel_documents", "criteria": {number: "DE#1"}}],
    }
    token = fr.signer.sign_compact(orjson.dumps(claims), typ=TYP_QUERY)
    async with session.post(
        f"https://127.0.0.1:{de.service.peer_port}/v1/query",
        data=token,
        headers={"Content-Type": "application/jose"},
        ssl=aiohttp.Fingerprint(fingerprint_bytes(de.node.tls_fingerprint)),
    ) as resp:
        problem = await resp.json(content_type=None)
    assert resp.status == 422
    assert problem["code"] == "invalid_criteria"
    assert problem["field"] == f"checks.0.criteria.{field or number}"


def test_a_released_answer_is_read_by_todays_names() -> None:
    de = Signer(SigningKey.generate())
    v1_hit = {"ref": "DE:travel_documents:DE-TD-26-0117", "score": 1.0}
    results = [
        {
            "check": "a",
            "status": "hit",
            "level": "full",
            "hits": [{**v1_hit, "record": {"number": "DE1234567", "country": "DE"}}],
        },
        {
            "check": "b",
            "status": "hit",
            "level": "summary",
            "hits": [{"ref": "DE:wanted_persons:r1", "score": 0.9, "record": {"last_name": "Doe"}}],
        },
    ]
    now = time.time()
    token = sign_released(
        signer=de,
        iss="DE",
        aud="FR",
        in_reply_to="q" * 22,
        query_digest="d" * 43,
        enquiry="01JDE0000000000000000000AB",
        approval="ap1",
        status="approved",
        results=results,
        now=now,
    )
    answer = open_released(
        token,
        keys=(de.public,),
        peer="DE",
        me="FR",
        query_jti="q" * 22,
        query_digest="d" * 43,
        check_ids=("a", "b"),
        approval="ap1",
        now=now,
    )
    first, second = answer.results
    assert first.hits[0].record == {"document_number": "DE1234567", "document_country": "DE"}
    assert second.hits[0].record == {"last_name": "Doe"}
