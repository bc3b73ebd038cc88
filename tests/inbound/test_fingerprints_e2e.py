"""Fingerprint checks through the peer API between two real nodes, on SQLite and PostgreSQL:
a candidate ranked by bozorth3 with its finger and score, what each answer level shows of
it, the node's threshold, and refusals of templates that do not read or are too long."""

from __future__ import annotations

import base64
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from support.databases import DatabaseUrl
from support.network import POLICY, ask, load, on_databases

from connector.crypto.jws import Signer
from connector.demo import DEMO_FINGER, DemoNode, demo_print, network
from connector.peers.trust import fingerprint_bytes
from connector.protocol import TYP_QUERY, new_jti
from connector.records.fingerprints.iso19794 import read_template, write_2005
from connector.records.fingerprints.synthetic import finger
from connector.settings.config import DEFAULT_FINGERPRINT_THRESHOLD
from connector.vocabulary import Category


def _policy(directory: Path, threshold: int | None) -> None:
    (directory / "policies" / "10-demo.yaml").write_text(
        POLICY.replace(
            "  - name: persons, summary for GB\n",
            "  - name: fingerprints, hit only for GB\n    from: [GB]\n"
            "    categories: [fingerprints]\n    answer: hit\n  - name: persons, summary for GB\n",
        )
    )
    if threshold is not None:
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        config["matching"] = {"fingerprints": {"threshold": threshold}}
        path.write_text(yaml.safe_dump(config))


def _unlabelled(text: str) -> str:
    """The same print with its finger position unknown (0)."""
    (view,) = read_template(base64.b64decode(text)).views
    return base64.b64encode(write_2005([replace(view, finger=0)])).decode()


def _stranger() -> str:
    view = finger(random.Random(99), finger_position=DEMO_FINGER)
    return base64.b64encode(write_2005([view])).decode()


@pytest.mark.parametrize("threshold", [None, 1000])
async def test_a_candidate_through_the_peer_api(
    tmp_path: Path, db_url: DatabaseUrl, threshold: int | None
) -> None:
    databases = on_databases(db_url)

    def configure(node_id: str, directory: Path) -> None:
        databases(node_id, directory)
        _policy(directory, threshold)

    async with network(tmp_path, ["FR", "DE", "GB"], configure) as net:
        load(net)
        results = await ask(
            net,
            "FR",
            [
                (Category.FINGERPRINTS, {"template": demo_print(1), "finger": DEMO_FINGER}),
                (Category.FINGERPRINTS, {"template": demo_print(2)}),
                (Category.FINGERPRINTS, {"template": _stranger()}),
                # Another known finger: the right index held is not compared with it.
                (Category.FINGERPRINTS, {"template": _unlabelled(demo_print(1)), "finger": 7}),
            ],
        )
        if threshold is not None:
            # No mate reaches this node's threshold: no candidate at all.
            assert [results[str(i)].status for i in range(4)] == ["no_hit"] * 4
            return
        assert [results[str(i)].status for i in range(4)] == ["hit", "hit", "no_hit", "no_hit"]
        (candidate,) = results["0"].hits
        assert candidate.ref == "DE:fingerprints:DE-FP-1"
        assert candidate.verification_required is True
        (reason,) = candidate.reasons
        assert reason["finger"] == DEMO_FINGER
        assert reason["bozorth3"] >= DEFAULT_FINGERPRINT_THRESHOLD
        assert candidate.score == round(
            reason["bozorth3"] / (reason["bozorth3"] + DEFAULT_FINGERPRINT_THRESHOLD), 4
        )
        assert candidate.record["case_reference"] == "DE-K-2026-51"
        # At `hit` level (Prüm's first step): the reference, still for an examiner.
        gb = await ask(net, "GB", [(Category.FINGERPRINTS, {"template": demo_print(1)})])
        (only,) = gb["0"].hits
        assert (only.ref, dict(only.record), only.reasons) == ("DE:fingerprints:DE-FP-1", {}, None)
        assert only.verification_required is True


def _query(criteria: dict[str, Any], category: str = "fingerprints") -> bytes:
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
        ({"template": "A" * 40}, "fingerprints", "invalid_criteria", "checks.0.criteria.template"),
        (
            {"template": demo_print(1), "finger": 11},
            "fingerprints",
            "invalid_criteria",
            "checks.0.criteria.finger",
        ),
        # §5.2: a template up to 4096 characters, any other string up to 512.
        ({"template": "A" * 4097}, "fingerprints", "invalid_claims", None),
        ({"number": "A" * 513, "country": "DE"}, "travel_documents", "invalid_claims", None),
    ],
)
async def test_refusals_name_the_field(
    pair: dict[str, DemoNode],
    criteria: dict[str, Any],
    category: str,
    code: str,
    field: str | None,
) -> None:
    status, problem = await _post(pair["DE"], pair["FR"].node.signer, _query(criteria, category))
    assert (status, problem["code"]) == (422, code), problem
    assert problem.get("field") == field
