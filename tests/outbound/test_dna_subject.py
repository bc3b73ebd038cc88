"""A DNA profile as part of a subject: through the agencies' local API and through
`ncb-connector search --dna FILE`, against real nodes on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from support.network import DATA, configure, load
from support.processes import cli

from connector.demo import network
from connector.outbound.agencies import add_agency
from connector.vocabulary import AgencyKind, Category

HELD: dict[str, str] = DATA[Category.DNA_PROFILES][0]["loci"]
NEAR = {**HELD, "FGA": "21,23"}
DESK = """\
outbound:
  - name: the NCB desk, DNA
    agency: ncb-desk
    categories: [dna_profiles]
    to: "*"
"""


def _with_desk(node_id: str, directory: Path) -> None:
    configure(node_id, directory)
    (directory / "policies" / "20-agencies.yaml").write_text(DESK)


async def test_a_subject_with_dna_loci_through_the_local_api(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"], _with_desk) as net:
        load(net)
        s = net["FR"].node.settings
        _, token = add_agency(
            s.state_path(s.federation.agencies_file), "ncb-desk", AgencyKind.NCB, now=time.time()
        )
        url = f"http://127.0.0.1:{net['FR'].service.local_port}/local/v1/checks"
        body = {"purpose": "criminal_investigation", "sub": "desk-1", "subject": {"dna_loci": NEAR}}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url, data=orjson.dumps(body), headers={"Authorization": f"Bearer {token}"}
            ) as resp,
        ):
            status, doc = resp.status, await resp.json()
        assert status == 200, doc
        (check,) = doc["checks"]
        assert (check["id"], check["category"]) == ("dna_profile", "dna_profiles")
        (de,) = check["peers"]
        assert de["status"] == "hit"
        assert de["hits"][0]["reasons"] == [{"match": "near", "loci_compared": 7, "locus": "FGA"}]
        # An object is the loci of a DNA check only, bounded as on the wire.
        bad: dict[str, Any] = {**body, "subject": {"dna_loci": {f"L{i}": "1" for i in range(33)}}}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url, data=orjson.dumps(bad), headers={"Authorization": f"Bearer {token}"}
            ) as resp,
        ):
            assert resp.status == 422


async def test_search_dna_file_from_the_terminal(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"], configure) as net:
        load(net)
        config = net["FR"].node.settings.base_dir / "connector.yaml"
        profile = tmp_path / "stain.json"
        profile.write_text(json.dumps({"id": "FR-S-1", "loci": NEAR}))
        searched = await asyncio.to_thread(
            cli, "search", "--dna", str(profile), "--json", config=config, check=False
        )
        assert searched.returncode == 3, searched.stderr  # a hit
        (check,) = json.loads(searched.stdout)["checks"]
        assert check["criteria"] == {"loci": NEAR}
        assert [p["status"] for p in check["peers"]] == ["hit"]
        # Not a profile: said before anything is sent, exit 2.
        junk = tmp_path / "junk.json"
        junk.write_text("[1, 2]")
        refused = await asyncio.to_thread(
            cli, "search", "--dna", str(junk), config=config, check=False
        )
        assert refused.returncode == 2
        assert "not a DNA profile" in refused.stderr
