"""A fingerprint as part of a subject: through the agencies' local API and through
`ncb-connector search --fingerprint FILE`, against real nodes on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import aiohttp
import orjson
from support.network import configure, load
from support.processes import cli

from connector.demo import DEMO_FINGER, demo_print, network
from connector.outbound.agencies import add_agency
from connector.vocabulary import AgencyKind

DESK = """\
outbound:
  - name: the NCB desk, fingerprints
    agency: ncb-desk
    categories: [fingerprints]
    to: "*"
"""


def _with_desk(node_id: str, directory: Path) -> None:
    configure(node_id, directory)
    (directory / "policies" / "20-agencies.yaml").write_text(DESK)


async def test_a_subject_with_a_fingerprint_through_the_local_api(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"], _with_desk) as net:
        load(net)
        s = net["FR"].node.settings
        _, token = add_agency(
            s.state_path(s.federation.agencies_file), "ncb-desk", AgencyKind.NCB, now=time.time()
        )
        url = f"http://127.0.0.1:{net['FR'].service.local_port}/local/v1/checks"
        body = {
            "purpose": "criminal_investigation",
            "sub": "desk-1",
            "subject": {"fingerprint": demo_print(3, version="2011")},
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url, data=orjson.dumps(body), headers={"Authorization": f"Bearer {token}"}
            ) as resp,
        ):
            status, doc = resp.status, await resp.json()
        assert status == 200, doc
        (check,) = doc["checks"]
        assert (check["id"], check["category"]) == ("fingerprint", "fingerprints")
        (de,) = check["peers"]
        assert de["status"] == "hit"
        (hit,) = de["hits"]
        assert hit["verification_required"] is True
        assert hit["reasons"][0]["finger"] == DEMO_FINGER


async def test_search_fingerprint_file_from_the_terminal(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"], configure) as net:
        load(net)
        config = net["FR"].node.settings.base_dir / "connector.yaml"
        record = tmp_path / "latent.fmr"
        record.write_bytes(base64.b64decode(demo_print(4)))  # the ISO record itself
        searched = await asyncio.to_thread(
            cli, "search", "--fingerprint", str(record), "--json", config=config, check=False
        )
        assert searched.returncode == 3, searched.stderr  # a hit
        (check,) = json.loads(searched.stdout)["checks"]
        assert check["criteria"] == {"template": demo_print(4)}
        (de,) = check["peers"]
        assert de["status"] == "hit"
        assert de["hits"][0]["verification_required"] is True
        # Not a minutiae record: said before anything is sent, exit 2.
        junk = tmp_path / "junk.json"
        junk.write_text('{"loci": {}}')
        refused = await asyncio.to_thread(
            cli, "search", "--fingerprint", str(junk), config=config, check=False
        )
        assert refused.returncode == 2
        assert "not a fingerprint" in refused.stderr
        # A record that does not read: the criteria error, before anything is sent.
        short = tmp_path / "short.fmr"
        short.write_bytes(base64.b64decode(demo_print(4))[:40])
        unread = await asyncio.to_thread(
            cli, "search", "--fingerprint", str(short), config=config, check=False
        )
        assert unread.returncode == 2
        assert "template" in unread.stderr
