"""DNA checks through the peer API between two real nodes, on SQLite and PostgreSQL: a full
and a near match, what each answer level shows of them, and criteria errors by locus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from support.databases import DatabaseUrl
from support.network import DATA, POLICY, ask, load, on_databases

from connector.crypto.jws import Signer
from connector.demo import DemoNode, network
from connector.peers.trust import fingerprint_bytes
from connector.protocol import TYP_QUERY, new_jti
from connector.vocabulary import Category

HELD: dict[str, str] = DATA[Category.DNA_PROFILES][0]["loci"]


def _policy(node_id: str, directory: Path) -> None:
    (directory / "policies" / "10-demo.yaml").write_text(
        POLICY.replace(
            "  - name: persons, summary for GB\n",
            "  - name: DNA, hit only for GB\n    from: [GB]\n    categories: [dna_profiles]\n"
            "    answer: hit\n  - name: persons, summary for GB\n",
        )
    )


async def test_full_and_near_matches_through_the_peer_api(
    tmp_path: Path, db_url: DatabaseUrl
) -> None:
    databases = on_databases(db_url)

    def configure(node_id: str, directory: Path) -> None:
        databases(node_id, directory)
        _policy(node_id, directory)

    async with network(tmp_path, ["FR", "DE", "GB"], configure) as net:
        load(net)
        near = {**HELD, "FGA": "21,23", "D8": HELD["D8S1179"]}
        del near["D8S1179"]
        two_off = {**HELD, "FGA": "19,23"}
        results = await ask(
            net,
            "FR",
            [
                (Category.DNA_PROFILES, {"loci": HELD}),
                (Category.DNA_PROFILES, {"loci": near}),
                (Category.DNA_PROFILES, {"loci": two_off}),
                (Category.DNA_PROFILES, {"loci": near, "min_loci": 7}),
            ],
        )
        assert [results[str(i)].status for i in range(4)] == ["hit", "hit", "no_hit", "no_hit"]
        (full,) = results["0"].hits
        assert full.ref == "DE:dna_profiles:DE-DNA-1"
        assert full.reasons == [{"match": "full", "loci_compared": 7}]
        assert full.record["case_reference"] == "DE-K-2026-44"
        (nearly,) = results["1"].hits
        assert nearly.reasons == [{"match": "near", "loci_compared": 7, "locus": "FGA"}]
        # At `hit` level (Prüm's first step): the reference, nothing of the record.
        gb = await ask(net, "GB", [(Category.DNA_PROFILES, {"loci": near})])
        (only,) = gb["0"].hits
        assert (only.ref, dict(only.record), only.reasons) == ("DE:dna_profiles:DE-DNA-1", {}, None)


def _query(criteria: dict[str, Any], category: str = "dna_profiles") -> bytes:
    now = int(time.time())
    return orjson.dumps(
        {
            "iss": "FR",
            "aud": "DE",
            "iat": now,
            "exp": now + 60,
            "jti": new_jti(),
            "sub": "ncb/1",
            "agency_kind": "ncb",
            "purpose": "criminal_investigation",
            "checks": [{"id": "1", "category": category, "criteria": criteria}],
        }
    )


async def _post(node: DemoNode, signer: Signer, body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"https://127.0.0.1:{node.service.peer_port}/v1/query",
            data=signer.sign_compact(body, typ=TYP_QUERY),
            headers={"Content-Type": "application/jose"},
            ssl=aiohttp.Fingerprint(fingerprint_bytes(node.node.tls_fingerprint)),
        ) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


@pytest.mark.parametrize(
    ("criteria", "category", "code", "field"),
    [
        (
            {"loci": {**HELD, "D8S1179": "13,14,15"}},
            "dna_profiles",
            "invalid_criteria",
            "checks.0.criteria.loci.D8S1179",
        ),
        (
            {"loci": {**HELD, "D77S1": "13"}},
            "dna_profiles",
            "invalid_criteria",
            "checks.0.criteria.loci.D77S1",
        ),
        (
            {"loci": dict(list(HELD.items())[:5])},
            "dna_profiles",
            "invalid_criteria",
            "checks.0.criteria.loci",
        ),
        (
            {"loci": HELD, "min_loci": 4},
            "dna_profiles",
            "invalid_criteria",
            "checks.0.criteria.min_loci",
        ),
        # §5.2: an object only as the `loci` of a DNA check, bounded: refused before §6.
        ({"number": {"a": "b"}, "country": "DE"}, "travel_documents", "invalid_claims", None),
        ({"loci": {f"L{i}": "13" for i in range(33)}}, "dna_profiles", "invalid_claims", None),
        ({"loci": {"D8S1179": "1" * 17}}, "dna_profiles", "invalid_claims", None),
        ({"loci": {"D8S1179": 13}}, "dna_profiles", "invalid_claims", None),
    ],
)
async def test_refusals_name_the_locus(
    pair: dict[str, DemoNode],
    criteria: dict[str, Any],
    category: str,
    code: str,
    field: str | None,
) -> None:
    status, problem = await _post(pair["DE"], pair["FR"].node.signer, _query(criteria, category))
    assert (status, problem["code"]) == (422, code), problem
    assert problem.get("field") == field
